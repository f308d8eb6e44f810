"""Host-side logic of the cuda backend (CPU): weight packing, tiling plans, fallback choice."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tf2rt.backends.cuda.packing import (
    cta_count, from_mma_fragments, pack_rows, round_tf32_pair, split_onnx_weights, to_bf16_bits, to_mma_fragments,
    unpack_rows)
from tf2rt.backends.cuda.persistent import gate_defines, kernel_source
from tf2rt.backends.cuda.plan import (DeviceLimits, RnnProblem, choose_upc, crossover_batch, floor_parts, make_plan,
                                      projection_us, weight_read_us)
from tf2rt.errors import ShapeError, Tf2rtError
from tf2rt.layouts import ONNX_GRU, ONNX_LSTM

H100 = DeviceLimits()


def test_pack_rows_places_every_gate_row_in_its_cta_block():
    gates, hidden, k, upc = 4, 10, 5, 3
    m = np.arange(gates * hidden * k, dtype=np.float32).reshape(gates * hidden, k) + 1  # all distinct, no zeros
    packed = pack_rows(m, gates, hidden, upc, "float32")
    assert packed.shape == (cta_count(hidden, upc), gates * upc, 8)
    for cta in range(packed.shape[0]):
        for g in range(gates):
            for u in range(upc):
                j = cta * upc + u
                row = packed[cta, g * upc + u]
                if j < hidden:
                    np.testing.assert_array_equal(row[:k], m[g * hidden + j])
                    assert not row[k:].any()  # K padding
                else:
                    assert not row.any()  # units past H
    np.testing.assert_array_equal(unpack_rows(packed, gates, hidden, k), m)


def test_pack_rows_rejects_wrong_shapes():
    with pytest.raises(ShapeError, match="weight matrix"):
        pack_rows(np.zeros((7, 4), np.float32), 4, 2, 1, "float32")
    with pytest.raises(ShapeError, match="multiple of 8"):
        pack_rows(np.zeros((8, 4), np.float32), 4, 2, 1, "float32", kp=12)


def test_mma_fragments_follow_the_ptx_a_layout():
    a = (np.arange(2 * 24 * 32, dtype=np.float32) + 1).reshape(2, 24, 32)
    f = to_mma_fragments(a)
    np.testing.assert_array_equal(from_mma_fragments(f, 24, 32), a)
    frags = f.reshape(2, 2, 2, 32, 8)  # [cta, row tile, k step, lane, 8]
    for lane in (0, 5, 31):
        g, t = divmod(lane, 4)
        for mt in range(2):
            for ks in range(2):
                tile = np.zeros((16, 16), np.float32)
                rows = a[1, mt * 16:(mt + 1) * 16, ks * 16:(ks + 1) * 16]
                tile[: rows.shape[0]] = rows
                want = [tile[g, 2 * t], tile[g, 2 * t + 1], tile[g + 8, 2 * t], tile[g + 8, 2 * t + 1],
                        tile[g, 2 * t + 8], tile[g, 2 * t + 9], tile[g + 8, 2 * t + 8], tile[g + 8, 2 * t + 9]]
                np.testing.assert_array_equal(frags[1, mt, ks, lane], want)
    with pytest.raises(ShapeError, match="multiple of 16"):
        to_mma_fragments(np.zeros((1, 16, 24), np.float32))


def test_tf32_fragments_follow_the_ptx_m16n8k8_a_layout():
    # PTX m16n8k8 .tf32 A fragment: a0 = (g, t), a1 = (g+8, t), a2 = (g, t+4), a3 = (g+8, t+4).
    a = (np.arange(2 * 20 * 24, dtype=np.float32) + 1).reshape(2, 20, 24)
    f = to_mma_fragments(a, kstep=8)
    np.testing.assert_array_equal(from_mma_fragments(f, 20, 24, kstep=8), a)
    frags = f.reshape(2, 2, 3, 32, 4)  # [cta, row tile, k step, lane, 4]
    for lane in (0, 6, 31):
        g, t = divmod(lane, 4)
        for mt in range(2):
            for ks in range(3):
                tile = np.zeros((16, 8), np.float32)
                rows = a[0, mt * 16:(mt + 1) * 16, ks * 8:(ks + 1) * 8]
                tile[: rows.shape[0]] = rows
                want = [tile[g, t], tile[g + 8, t], tile[g, t + 4], tile[g + 8, t + 4]]
                np.testing.assert_array_equal(frags[0, mt, ks, lane], want)
    with pytest.raises(ShapeError, match="multiple of 8"):
        to_mma_fragments(np.zeros((1, 16, 12), np.float32), kstep=8)


def test_tf32_pairs_split_exactly_and_stay_close():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(20000).astype(np.float32) * 10.0 ** rng.integers(-6, 6, 20000),
                        np.float32([0.0, -0.0, 1.0, -1.0, 1 + 2**-23, 3.14159265, -2.7182818])]).astype(np.float32)
    r = round_tf32_pair(x)
    # close: within 2^-22 of the magnitude (tiny absolute slack for values near underflow)
    assert np.all(np.abs(r.astype(np.float64) - x) <= 2.0**-22 * np.abs(x.astype(np.float64)) + 1e-45)
    # splits exactly: a masked TF32 part plus a rest that is itself a TF32 number
    tf32_mask = np.uint32(0xFFFFE000)
    hi = (r.view(np.uint32) & tf32_mask).view(np.float32)
    lo = (r - hi).astype(np.float32)
    assert np.array_equal(lo.view(np.uint32) & ~tf32_mask, np.zeros_like(lo, np.uint32))
    assert np.array_equal(hi.astype(np.float64) + lo.astype(np.float64), r.astype(np.float64))
    # values that already are pairs (e.g. TF32 numbers) do not move, and rounding is idempotent
    assert np.array_equal(round_tf32_pair(r), r)
    t = (x.view(np.uint32) & tf32_mask).view(np.float32)
    assert np.array_equal(round_tf32_pair(t), t)
    # hi keeps 1 (10 mantissa bits), lo = 2^-11 + 2^-23 needs 13 bits: its last one rounds off
    assert round_tf32_pair(np.float32([1 + 2**-11 + 2**-23]))[0] == np.float32(1 + 2**-11)
    assert round_tf32_pair(np.float32([1 + 2**-23]))[0] == np.float32(1 + 2**-23)  # lo = 2^-23 is a TF32 number


def test_split_bf16_bits_keeps_about_16_bits():
    from tf2rt.backends.cuda.packing import split_bf16_bits

    a = np.random.default_rng(3).standard_normal((40, 24)).astype(np.float32) * 3
    hi, lo = split_bf16_bits(a)
    f = lambda b: (b.astype(np.uint32) << 16).view(np.float32).astype(np.float64)  # noqa: E731
    assert hi.dtype == lo.dtype == np.uint16
    assert np.all(np.abs(f(hi) + f(lo) - a) <= np.abs(a) * 2.0**-16)
    assert np.abs(f(hi) - a).max() > 100 * np.abs(f(hi) + f(lo) - a).max()  # lo carries the next 8 bits


def test_bf16_bits_match_torch(torch):
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32) * 10
    want = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(to_bf16_bits(x), want)


def test_split_onnx_weights_per_direction_and_errors():
    rng = np.random.default_rng(1)
    W, R = rng.standard_normal((2, 12, 5)), rng.standard_normal((2, 12, 3))
    B, P = rng.standard_normal((2, 24)), rng.standard_normal((2, 9))
    d = split_onnx_weights("lstm", W, R, B, P)
    assert len(d) == 2 and d[1].hidden == 3 and d[1].input_size == 5
    np.testing.assert_array_equal(d[1].Rb, B[1, 12:].astype(np.float32))
    np.testing.assert_array_equal(d[0].P, P[0].astype(np.float32))
    with pytest.raises(ShapeError, match="B is"):
        split_onnx_weights("lstm", W, R, B[:, :10], None)
    with pytest.raises(ShapeError, match="peepholes"):
        split_onnx_weights("gru", W[:, :9], R[:, :9], None, P)


def test_gate_indices_come_from_the_gate_order_data():
    d = gate_defines()
    assert [d[m] for m in ("GI", "GO", "GF", "GC")] == [ONNX_LSTM.gates.index(g) for g in ("input", "output", "forget", "cell")]
    assert [d[m] for m in ("GZ", "GR", "GH")] == [ONNX_GRU.gates.index(g) for g in ("update", "reset", "hidden")]
    src = kernel_source()
    assert "persistent_rnn" in src and "mma.sync.aligned.m16n8k16" in src


def test_plan_two_layer_lstm_is_one_wavefront_launch_on_chip():
    p = RnnProblem("lstm", 512, 512, 1, 100, layers=2, dtype="float16")
    plan = make_plan(p, H100)
    assert plan.engine == "persistent" and plan.mode == "wavefront"
    k = plan.kernel
    assert k.grid <= H100.sm_count and k.smem_bytes <= H100.smem_per_block
    assert k.upc * k.ctas_per_group >= 512 and k.mma
    assert plan.steps == 101 and plan.floor_us >= plan.steps * H100.exchange_us
    assert make_plan(RnnProblem("lstm", 512, 512, 1, 1, layers=2, dtype="float16"), H100).kernel.fuse_input
    d = plan.describe()
    assert d["engine"] == "persistent" and d["grid"] == k.grid and "floor_us" in d


def test_plan_floor_grows_with_sequence_length():
    f = [make_plan(RnnProblem("gru", 256, 256, 1, t, layers=2), H100).floor_us for t in (10, 100, 1000)]
    assert f[0] < f[1] < f[2]


def test_weights_larger_than_l2_are_read_from_device_memory():
    # 2-layer bidirectional GRU, input 300 -> H=1024 fp32: layer 0 W [3H, 300], layer 1 W
    # [3H, 2H] (both directions' outputs), R [3H, H] each, times two directions
    p = RnnProblem("gru", 1024, 300, 8, 1, layers=2, directions=2, dtype="float32")
    assert p.weight_bytes == 2 * 3 * 1024 * (300 + 2048 + 2 * 1024) * 4
    assert p.weight_bytes > H100.l2_size
    assert weight_read_us(p, H100) == pytest.approx(p.weight_bytes / H100.hbm_bytes_per_s * 1e6)
    small = RnnProblem("gru", 256, 300, 8, 1, layers=2, directions=2, dtype="float32")
    assert weight_read_us(small, H100) == pytest.approx(small.weight_bytes / H100.l2_bytes_per_s * 1e6)


def test_full_floor_counts_operand_traffic_math_and_launch():
    # 2-layer LSTM H=512 fp16 wavefront at batch 64: every layer-1 CTA receives its own h
    # and the layer below's h (2 x 512 values per batch row), every layer-0 CTA its own h.
    p = RnnProblem("lstm", 512, 512, 64, 100, layers=2, dtype="float16")
    plan = make_plan(p, H100, prefer="persistent")
    k = plan.kernel
    parts = floor_parts(p, k, H100)
    ctas = -(-512 // k.upc)
    want_operand = ctas * (512 + 2 * 512) * 64 * 2 / H100.l2_bytes_per_s * 1e6
    assert parts["operand"] == pytest.approx(want_operand)
    rows = -(-4 * k.upc // 16) * 16
    want_math = 2 * rows * 1024 * 64 / (4096 * H100.clock_ghz * 1e9) * 1e6
    assert parts["math"] == pytest.approx(want_math)
    assert parts["exchange"] == H100.exchange_us
    per_step = parts["exchange"] + max(parts["weights"], parts["operand"], parts["math"])
    # every weight once per call: W and R of both layers, fp16, 8 MB -> from L2
    assert p.weight_bytes == 2 * (4 * 512) * (512 + 512) * 2
    read = p.weight_bytes / H100.l2_bytes_per_s * 1e6
    assert weight_read_us(p, H100) == pytest.approx(read)
    # the first layer's projection GEMM (deeper wavefront layers project in the kernel):
    # 2 T B K 4H at the fp16 tensor-core rate
    proj = 2 * 100 * 64 * 512 * 2048 / (4096 * H100.sm_count * H100.clock_ghz * 1e9) * 1e6
    assert projection_us(p, k, H100) == pytest.approx(proj)
    assert plan.full_floor_us == pytest.approx(H100.launch_us + read + proj + 101 * per_step)
    assert plan.floor_us == pytest.approx(101 * (parts["exchange"] + parts["weights"]))
    # The operand and the math grow with the batch. The weight stream does not; it is zero
    # where the fragments live in registers (this build) and streams out of shared memory
    # at batch 8 (the two-barrier step keeps them there).
    k8 = make_plan(RnnProblem("lstm", 512, 512, 8, 100, layers=2, dtype="float16"), H100, prefer="persistent").kernel
    small = floor_parts(RnnProblem("lstm", 512, 512, 8, 100, layers=2, dtype="float16"), k8, H100)
    assert parts["operand"] == pytest.approx(8 * small["operand"])
    assert parts["math"] == pytest.approx(8 * small["math"])
    assert k.wreg and parts["weights"] == 0.0
    assert not k8.wreg and small["weights"] == pytest.approx(k8.weight_bytes / (128 * H100.clock_ghz * 1e9) * 1e6)
    # fp32 has no packed halves: twice the operand bytes, and a slower multiply-add rate.
    p32 = RnnProblem("lstm", 512, 512, 8, 100, layers=2, dtype="float32")
    k32 = make_plan(p32, H100, prefer="persistent").kernel
    f32 = floor_parts(p32, k32, H100)
    assert f32["operand"] == pytest.approx(2 * small["operand"] * (k32.kp + k32.kx_eff) / (k.kp + k.kx_eff))
    assert f32["math"] > small["math"]
    assert make_plan(p32, H100).describe()["full_floor_us"] > make_plan(p32, H100).describe()["floor_us"]
    # One launch a layer: every layer's projection is a GEMM; fp32 at a third of the rate
    # (three bf16 passes); none for a first layer that projects inside the kernel.
    lw = RnnProblem("lstm", 1024, 256, 64, 100, layers=3, dtype="float32")
    klw = make_plan(lw, H100, prefer="persistent").kernel
    assert klw.groups == 1
    want = 2 * 100 * 64 * 4096 * (256 + 1024 + 1024) / (4096 / 3 * H100.sm_count * H100.clock_ghz * 1e9) * 1e6
    assert projection_us(lw, klw, H100) == pytest.approx(want)
    short = RnnProblem("lstm", 512, 512, 1, 1, layers=2, dtype="float16")
    assert make_plan(short, H100).kernel.fuse_input and projection_us(short, make_plan(short, H100).kernel, H100) == 0


def test_plan_falls_back_when_weights_do_not_fit():
    p = RnnProblem("lstm", 4096, 4096, 1, 100, layers=1, dtype="float32")
    plan = make_plan(p, H100)
    assert plan.engine == "cudnn" and "shared memory" in plan.reason
    lbr0 = make_plan(RnnProblem("gru", 4096, 4096, 1, 100, linear_before_reset=False), H100)
    assert lbr0.engine == "torch"  # cuDNN has no reset-before GRU either


def test_plan_uses_the_measured_crossover_and_honours_prefer():
    big = RnnProblem("lstm", 1024, 1024, 64, 100, layers=2, dtype="float16")
    assert crossover_batch("lstm", "float16", 1024, 100) < 64
    assert make_plan(big, H100).engine == "cudnn"
    assert make_plan(big, H100, prefer="persistent").engine == "persistent"
    # a small fp32 GRU at batch 64: cuDNN measured 3x faster (the exchange dominates)
    assert crossover_batch("gru", "float32", 128, 50) < 64
    assert make_plan(RnnProblem("gru", 128, 64, 64, 50, dtype="float32"), H100).engine == "cudnn"
    small = RnnProblem("lstm", 256, 256, 1, 100, layers=2, dtype="float16")
    assert make_plan(small, H100).engine == "persistent"
    assert make_plan(small, H100, prefer="cudnn").engine == "cudnn"


def test_plan_sends_forms_cudnn_lacks_to_the_right_engine():
    exotic = RnnProblem("lstm", 64, 64, 1, 10, default_activations=False)
    assert make_plan(exotic, H100).engine == "torch"
    peep = RnnProblem("lstm", 64, 64, 64, 10, peepholes=True)
    assert make_plan(peep, H100).engine == "persistent"  # cuDNN has no peepholes: kernel regardless of batch
    rev = RnnProblem("gru", 64, 64, 1, 10, reverse=True)
    assert make_plan(rev, H100).mode == "layerwise"
    old = DeviceLimits(compute_capability=(6, 1))
    assert make_plan(RnnProblem("lstm", 64, 64, 1, 10), old).engine == "cudnn"


def test_choose_upc_fits_all_groups_on_the_sms():
    for hidden in (1, 64, 271, 512, 1024, 4096):
        for groups in (1, 2, 3):
            upc = choose_upc(hidden, groups, 132)
            assert groups * cta_count(hidden, upc) <= 132
            assert upc == 1 or groups * cta_count(hidden, upc - 1) > 132


def test_units_per_cta_option_sets_a_floor_on_the_planners_tiling():
    """options.upc gives each CTA at least that many units (fewer CTAs at each exchange);
    below the planner's own choice, or above the layer, it changes nothing it cannot."""
    from tf2rt.backends.cuda.options import CudaOptions

    prob = RnnProblem("lstm", 512, 512, 1, 100, layers=2, dtype="float16")
    base = make_plan(prob, H100, options=CudaOptions()).kernel
    assert (base.upc, base.grid) == (8, 128)  # two layers of 64 CTAs
    wide = make_plan(prob, H100, options=CudaOptions(upc=16)).kernel
    assert (wide.upc, wide.grid) == (16, 64) and wide.two_barrier == base.two_barrier
    assert make_plan(prob, H100, options=CudaOptions(upc=2)).kernel == base
    tiny = RnnProblem("gru", 24, 24, 1, 10, dtype="float16")
    assert make_plan(tiny, H100, options=CudaOptions(upc=64)).kernel.upc == 24


def test_two_barrier_step_is_chosen_only_where_it_applies(monkeypatch):
    monkeypatch.delenv("TF2RT_CUDA_STEP", raising=False)
    one = make_plan(RnnProblem("lstm", 512, 512, 1, 100, layers=2, dtype="float16"), H100).kernel
    assert one.two_barrier and one.defines()["STEP_TWO_BARRIER"] == 1
    # its second partial-sum buffer is counted in the shared memory it asks for
    from dataclasses import replace
    assert one.smem_bytes > replace(one, two_barrier=False).smem_bytes
    assert make_plan(RnnProblem("gru", 128, 128, 8, 9, layers=2, dtype="bfloat16"), H100).kernel.two_barrier
    # fp32 too (the kernel keeps IEEE division in fp32 gates), its products on tensor cores
    # as three TF32 passes: K steps of 8, fp32 staging rows [8][K + 4]
    p32 = RnnProblem("gru", 128, 128, 8, 9, layers=2, dtype="float32")
    f32 = make_plan(p32, H100).kernel
    assert f32.two_barrier and f32.tf32 and f32.mma and f32.kstep == 8 and f32.defines()["TF32X3"] == 1
    assert f32.frag_regs == 2 * replace(f32, tf32=False, wtype=1).frag_regs
    cuda_cores = replace(f32, tf32=False)
    assert f32.smem_bytes - cuda_cores.smem_bytes > 0  # split-K partial sums, padded staging rows
    # below batch 4 the CUDA cores stay faster (TF32_MIN_BATCH); the switch forces either way
    p32_b1 = RnnProblem("gru", 128, 128, 1, 9, layers=2, dtype="float32")
    assert not make_plan(p32_b1, H100).kernel.tf32 and make_plan(replace(p32_b1, batch=4), H100).kernel.tf32
    monkeypatch.setenv("TF2RT_CUDA_TF32X3", "0")
    off = make_plan(p32, H100).kernel
    assert off.two_barrier and not off.tf32 and not off.mma and off.frag_regs == 0
    monkeypatch.setenv("TF2RT_CUDA_TF32X3", "1")
    assert make_plan(p32_b1, H100).kernel.tf32
    monkeypatch.delenv("TF2RT_CUDA_TF32X3")
    # more than one batch chunk, or two exchanges a step (GRU reset-before): original step
    assert not make_plan(RnnProblem("lstm", 128, 128, 64, 9, dtype="float16"), H100, prefer="persistent").kernel.two_barrier
    lbr0 = RnnProblem("gru", 128, 128, 1, 9, linear_before_reset=False, dtype="float16")
    assert not make_plan(lbr0, H100).kernel.two_barrier
    monkeypatch.setenv("TF2RT_CUDA_STEP", "1")
    old = make_plan(RnnProblem("lstm", 512, 512, 1, 100, layers=2, dtype="float16"), H100).kernel
    assert not old.two_barrier and old.defines()["STEP_TWO_BARRIER"] == 0


def test_weight_fragments_go_to_registers_only_within_the_register_budget(monkeypatch):
    monkeypatch.delenv("TF2RT_CUDA_WREG", raising=False)
    monkeypatch.delenv("TF2RT_CUDA_STEP", raising=False)
    # 2-layer LSTM H=512 fp16 wavefront: 32 rows per CTA = 2 row tiles, K split 4 ways over
    # the 8 warps -> 8 K steps of R and 8 of W per warp -> 16 fragments x 4 registers
    k = make_plan(RnnProblem("lstm", 512, 512, 1, 100, layers=2, dtype="float16"), H100).kernel
    assert (k.upc, k.rows_padded, k.fused) == (8, 32, True)
    assert k.frag_regs == 64 and k.wreg and k.defines()["WREG"] == 1
    # batch 8 already needs ~220 registers for its step state: fragments stay in shared memory
    assert not make_plan(RnnProblem("lstm", 512, 512, 8, 100, layers=2, dtype="float16"), H100).kernel.wreg
    # H=1024, one launch a layer: batch 1-4 keep fragments in registers where the build has no
    # input-weight fragments (the GEMM projects the input); with in-kernel input products
    # (short sequences) batch 2 would spill (ptxas)
    assert make_plan(RnnProblem("lstm", 1024, 1024, 1, 100, dtype="float16"), H100).kernel.wreg
    for batch in (2, 4):
        kb = make_plan(RnnProblem("lstm", 1024, 1024, batch, 100, dtype="float16"), H100, prefer="persistent").kernel
        assert kb.wreg and not kb.fused and kb.defines()["FUSED"] == 0
    short = make_plan(RnnProblem("lstm", 1024, 1024, 2, 2, dtype="float16"), H100, prefer="persistent").kernel
    assert short.fused and not short.wreg and short.defines()["FUSED"] == 1
    monkeypatch.setenv("TF2RT_CUDA_WREG", "0")
    assert not make_plan(RnnProblem("lstm", 512, 512, 1, 100, layers=2, dtype="float16"), H100).kernel.wreg


def test_first_layer_projects_its_input_in_kernel_only_for_short_sequences(monkeypatch):
    monkeypatch.delenv("TF2RT_CUDA_STEP", raising=False)
    wave = make_plan(RnnProblem("lstm", 512, 128, 1, 500, layers=2, dtype="float16"), H100)
    assert wave.mode == "wavefront" and not wave.kernel.fuse_input and wave.kernel.kx == 512
    # deeper wavefront layers do their input product before waiting on their own h
    assert wave.kernel.split_x and wave.kernel.defines()["SPLITX"] == 1
    short = make_plan(RnnProblem("lstm", 512, 128, 1, 3, layers=2, dtype="float16"), H100)
    assert short.kernel.fuse_input and short.kernel.kx == 512
    # one layer: nothing to split
    assert not make_plan(RnnProblem("lstm", 512, 128, 1, 3, dtype="float16"), H100).kernel.split_x


def test_stream_sessions_refuse_stacks_they_cannot_run():
    from tf2rt.backends.cuda.resident import StreamSession
    from tf2rt.backends.cuda.rnn import node_spec
    from tf2rt.errors import UnsupportedError

    rng = np.random.default_rng(0)

    def spec(direction, lbr=1, dirs=1):
        return node_spec("GRU", {"hidden_size": 32, "direction": direction, "linear_before_reset": lbr},
                         rng.standard_normal((dirs, 96, 16)), rng.standard_normal((dirs, 96, 32)),
                         rng.standard_normal((dirs, 192)), None)

    with pytest.raises(UnsupportedError, match="unidirectional"):
        StreamSession([spec("bidirectional", dirs=2)], 1, limits=H100)
    with pytest.raises(UnsupportedError, match="unidirectional"):
        StreamSession([spec("reverse")], 1, limits=H100)
    with pytest.raises(UnsupportedError, match="linear_before_reset"):
        StreamSession([spec("forward", lbr=0)], 1, limits=H100)
    with pytest.raises(UnsupportedError, match="batch <= 8"):
        StreamSession([spec("forward")], 16, limits=H100)


def test_large_batches_get_the_flag_exchange_step_on_tensor_cores(monkeypatch):
    monkeypatch.delenv("TF2RT_CUDA_STEP", raising=False)
    monkeypatch.setenv("TF2RT_CUDA_BF16X3", "0")  # fp32 as three TF32 passes (bf16x3: its own test)
    k = make_plan(RnnProblem("lstm", 512, 512, 64, 100, layers=2, dtype="float16"), H100, prefer="persistent").kernel
    assert k.large_batch and k.wreg and not k.two_barrier and k.bch == 64 and k.defines()["STEP_LARGE_BATCH"] == 1
    # all 64 rows staged (8 n-tiles) for h and the layer below's h, partial sums per n-tile, no weights
    assert k.smem_bytes + 1024 <= H100.smem_per_block
    # GRU reset-before and hidden sizes not a multiple of 8 keep the original step
    for prob in (RnnProblem("gru", 256, 256, 64, 100, dtype="float16", linear_before_reset=False),
                 RnnProblem("lstm", 271, 271, 64, 100, dtype="float16")):
        assert not make_plan(prob, H100, prefer="persistent").kernel.large_batch
    # fp32: the large-batch step with three TF32 passes; one launch a layer where the
    # wavefront's staged rows (h and the layer below's, fp32) would not fit shared memory
    f32 = make_plan(RnnProblem("lstm", 512, 512, 64, 100, layers=2, dtype="float32"), H100, prefer="persistent")
    assert f32.kernel.large_batch and f32.kernel.tf32 and f32.kernel.kstep == 8 and f32.mode == "layerwise"
    assert f32.kernel.smem_bytes + 1024 <= H100.smem_per_block
    f32w = make_plan(RnnProblem("gru", 256, 256, 64, 100, layers=2, dtype="float32"), H100, prefer="persistent")
    assert f32w.kernel.large_batch and f32w.kernel.tf32 and f32w.mode == "wavefront"
    # fragments that would take too many registers stay in shared memory
    wide = make_plan(RnnProblem("lstm", 1024, 1024, 16, 100, layers=2, dtype="float32"), H100, prefer="persistent")
    assert wide.kernel.large_batch and wide.kernel.tf32 and not wide.kernel.wreg and wide.kernel.frag_regs > 64
    # fp32 at batch 8 keeps the two-barrier step with packed words, also at H=1024
    k8 = make_plan(RnnProblem("lstm", 1024, 1024, 8, 100, layers=2, dtype="float32"), H100, prefer="persistent").kernel
    assert k8.two_barrier and k8.tf32 and k8.packf and not k8.large_batch
    monkeypatch.setenv("TF2RT_CUDA_TF32X3", "0")  # no TF32: the CUDA-core original step
    k32 = make_plan(RnnProblem("lstm", 512, 512, 64, 100, layers=2, dtype="float32"), H100, prefer="persistent").kernel
    assert not k32.large_batch and not k32.tf32
    monkeypatch.delenv("TF2RT_CUDA_TF32X3")
    # batch 8: the two-barrier step, except at H >= 1024 where the large-batch step measured faster
    assert make_plan(RnnProblem("lstm", 512, 512, 8, 100, layers=2, dtype="float16"), H100).kernel.two_barrier
    big = make_plan(RnnProblem("lstm", 1024, 1024, 8, 100, layers=2, dtype="float16"), H100,
                    prefer="persistent").kernel
    assert big.large_batch and not big.two_barrier
    monkeypatch.setenv("TF2RT_CUDA_STEP", "2")
    assert not make_plan(RnnProblem("lstm", 512, 512, 64, 100, layers=2, dtype="float16"), H100,
                         prefer="persistent").kernel.large_batch


def test_fp32_h1024_large_batch_splits_fragments_and_rings_the_rows(monkeypatch):
    """fp32 H=1024 (128 KB of weights a CTA): above batch 16 neither registers nor shared
    memory alone hold them next to the staged rows (TF32X3 builds; bf16x3: its own test)."""
    monkeypatch.delenv("TF2RT_CUDA_WPART", raising=False)
    monkeypatch.setenv("TF2RT_CUDA_BF16X3", "0")

    def kern(batch, **kw):
        return make_plan(RnnProblem("lstm", 1024, 1024, batch, 100, layers=2, dtype="float32", **kw), H100,
                         prefer="persistent").kernel

    k16 = kern(16)  # fits as before: every fragment in shared memory
    assert k16.large_batch and not k16.wpart and k16.smem_weight_bytes == k16.weight_bytes == 32 * 1024 * 4
    k32 = kern(32)  # half the fragments in registers, every row staged
    assert k32.large_batch and k32.wpart == 16 and k32.nit_r == 32 and k32.frag_regs == 64 and not k32.ring_slots
    assert k32.smem_weight_bytes == k32.weight_bytes // 2 and k32.staged_rows == 32
    k64 = kern(64)  # and the rows through a ring of two two-tile groups
    assert k64.wpart == 16 and (k64.group_tiles, k64.ring_slots) == (2, 2) and k64.staged_rows == 32
    d = k64.defines()
    assert (d["WPART"], d["RING_SLOTS"], d["FUSED"]) == (16, 2, 0) and "GROUP_TILES" not in d  # the kernel's default
    assert replace(k64, group_tiles=1, ring_slots=3).defines()["GROUP_TILES"] == 1
    # one copy of the partial sums (no input products in the kernel), which also holds the
    # initial state: weights 64 KB, rows 32 x (1024 + 4) fp32, partial sums 8 n-tiles x 2
    # row tiles x 4 K slices x 128 fp32, biases
    assert k64.smem_bytes == 65536 + 32 * 1028 * 4 + 8 * 2 * 4 * 128 * 4 + 32 * 4 * 2 + 3 * 8 * 4
    for k in (k32, k64):
        assert k.smem_bytes + 1024 <= H100.smem_per_block < replace(k, wpart=0, ring_slots=0).smem_bytes
    monkeypatch.setenv("TF2RT_CUDA_WPART", "0")  # without them: the original step, as before
    assert not kern(64).large_batch
    monkeypatch.setenv("TF2RT_CUDA_WPART", "1")  # with them also where shared memory alone would do
    assert kern(16).wpart == 16


def test_bf16x3_products_for_fp32_builds(monkeypatch):
    monkeypatch.delenv("TF2RT_CUDA_BF16X3", raising=False)  # the default
    monkeypatch.delenv("TF2RT_CUDA_WPART", raising=False)

    def kern(hidden, batch, **kw):
        return make_plan(RnnProblem("lstm", hidden, hidden, batch, 100, layers=2, dtype="float32", **kw), H100,
                         prefer="persistent").kernel

    k = kern(1024, 64)
    assert k.bf16x3 and not k.tf32 and k.mma and k.kstep == 16 and k.defines()["BF16X3"] == 1
    # 8 registers a K step (hi and lo): 8 steps in registers, the other 8 in shared memory
    assert k.wpart == 8 and k.nit_r == 16 and k.frag_regs == 64 and k.ring_slots == 2
    # staged rows as two bf16 planes [rows][K + 8]: 32 x 1032 x 4 bytes
    assert k.smem_bytes == 65536 + 32 * 1032 * 4 + 8 * 2 * 4 * 128 * 4 + 32 * 4 * 2 + 3 * 8 * 4
    assert k.smem_bytes + 1024 <= H100.smem_per_block
    assert kern(512, 64).bf16x3 and kern(512, 64).wreg  # (fragments fit registers)
    wave = kern(256, 64)  # a wavefront: the deeper layer's in-kernel input products too
    assert wave.bf16x3 and not wave.tf32 and wave.fused and wave.wreg and wave.frag_regs == 32
    assert not kern(512, 8).bf16x3  # a two-barrier wavefront (in-kernel input products)
    assert kern(1024, 8).bf16x3 and kern(1024, 8).two_barrier  # a two-barrier step a layer at a time
    d = make_plan(RnnProblem("lstm", 1024, 1024, 64, 100, layers=2, dtype="float32"), H100,
                  prefer="persistent").describe()
    assert (d["products"], d["weights"], d["step"]) == ("fp32 as three bf16 tensor-core passes",
                                                        "registers + shared memory", "large-batch")
    monkeypatch.setenv("TF2RT_CUDA_BF16X3", "0")
    assert kern(1024, 64).tf32 and not kern(1024, 64).bf16x3
    assert kern(1024, 64).products == "fp32 as three TF32 tensor-core passes"
    # the floor's math term runs at the rate of the form the build uses
    p = RnnProblem("lstm", 1024, 1024, 64, 100, layers=2, dtype="float32")
    monkeypatch.delenv("TF2RT_CUDA_BF16X3")
    kb = kern(1024, 64)
    mb = floor_parts(p, kb, H100)["math"]
    assert mb == pytest.approx(2 * 32 * 1024 * 64 / (4096 / 3 * H100.clock_ghz * 1e9) * 1e6)


def test_wait_for_gives_up_after_the_timeout_with_a_clear_error():
    from tf2rt.backends.cuda import wait_for

    t = [0.0]

    def clock():
        t[0] += 0.25  # every look at the clock: a quarter second later
        return t[0]

    polls = []
    with pytest.raises(Tf2rtError, match="did not finish this call within 2 s"):
        wait_for(lambda: polls.append(1) and False, 2.0, clock)
    assert 7 <= len(polls) <= 10  # it kept polling until the deadline, then stopped
    n = iter([False, False, True])
    wait_for(lambda: next(n), 2.0, clock)  # finishes in time: no error
    done_later = iter([False] * 1000 + [True])
    wait_for(lambda: next(done_later), None, clock)  # no limit: waits as long as it takes


def test_fp32_products_use_bf16_parts_only_for_small_weights(monkeypatch):
    """Three bf16 passes carry ~16 bits an operand: weights with rows of large norm (where a
    recurrence amplifies rounding) keep three TF32 passes (plan.BF16X3_MAX_ROW_NORM)."""
    from tf2rt.backends.cuda.plan import BF16X3_ENV, BF16X3_MAX_ROW_NORM

    monkeypatch.delenv(BF16X3_ENV, raising=False)
    for batch in (8, 64):  # two-barrier and large-batch step
        small = make_plan(RnnProblem("lstm", 1024, 1024, batch, 100, layers=2, row_norm=0.6), H100).kernel
        large = make_plan(RnnProblem("lstm", 1024, 1024, batch, 100, layers=2, row_norm=BF16X3_MAX_ROW_NORM * 1.5),
                          H100).kernel
        assert small.bf16x3 and not small.tf32, batch
        assert large.tf32 and not large.bf16x3, batch
    monkeypatch.setenv(BF16X3_ENV, "1")  # forced
    assert make_plan(RnnProblem("lstm", 1024, 1024, 64, 100, layers=2, row_norm=9.0), H100).kernel.bf16x3


def test_problem_records_the_largest_weight_row_norm():
    from tf2rt.backends.cuda.rnn import node_spec, problem_for

    rng = np.random.default_rng(4)
    specs = [node_spec("GRU", {"hidden_size": 4, "linear_before_reset": 1},
                       (rng.standard_normal((1, 12, n_in)) * scale).astype(np.float32),
                       (rng.standard_normal((1, 12, 4)) * scale).astype(np.float32), None, None)
             for n_in, scale in ((5, 0.1), (4, 0.7))]
    want = max(float(np.linalg.norm(m, axis=1).max()) for s in specs for w in s.weights for m in (w.W, w.R))
    assert want > 0.7 and problem_for(specs, 2, 3, "float32").row_norm == pytest.approx(want)


def test_build_options_come_from_the_environment_once(monkeypatch):
    """CudaOptions.from_env() maps every TF2RT_CUDA_* switch; a plan given options ignores
    the environment (the runner reads it once, when it is created)."""
    from tf2rt.backends.cuda.options import CudaOptions

    for name in ("STEP", "WREG", "WPART", "BF16X3", "TF32X3", "GEMV", "XPROJ", "PDL", "GEMV_PF",
                 "RESIDENT", "L2_PERSIST", "ROW", "UPC", "L2_WINDOWS"):
        monkeypatch.delenv(f"TF2RT_CUDA_{name}", raising=False)
    assert CudaOptions.from_env() == CudaOptions()
    env = {"TF2RT_CUDA_STEP": "1", "TF2RT_CUDA_WREG": "0", "TF2RT_CUDA_WPART": "1", "TF2RT_CUDA_BF16X3": "0",
           "TF2RT_CUDA_TF32X3": "1", "TF2RT_CUDA_GEMV": "0", "TF2RT_CUDA_XPROJ": "plain",
           "TF2RT_CUDA_PDL": "1", "TF2RT_CUDA_GEMV_PF": "3",
           "TF2RT_CUDA_RESIDENT": "0", "TF2RT_CUDA_L2_PERSIST": "1", "TF2RT_CUDA_ROW": "0",
           "TF2RT_CUDA_UPC": "16", "TF2RT_CUDA_L2_WINDOWS": "front"}
    assert CudaOptions.from_env(env) == CudaOptions(step="1", wreg=False, wpart="1", bf16x3="0", tf32x3="1",
                                                     gemv=False, xproj="plain", pdl=True,
                                                     gemv_prefetch=3, resident=False, l2_persist=True,
                                                     row=False, upc=16, l2_windows="front")
    prob = RnnProblem("lstm", 512, 512, 1, 100, layers=2, dtype="float16")
    default = make_plan(prob, H100).kernel
    monkeypatch.setenv("TF2RT_CUDA_STEP", "1")
    assert not make_plan(prob, H100).kernel.two_barrier  # no options: the environment now
    assert make_plan(prob, H100, options=CudaOptions()).kernel == default  # options win
    assert make_plan(prob, H100, options=CudaOptions(step="1")).kernel == make_plan(prob, H100).kernel


def test_first_run_measurement_times_candidates_in_turns(monkeypatch):
    """The runner's first-run measurement times its candidates in turns and keeps each
    one's best round: a candidate timed while the GPU was still slow (here the first
    round) is not held to that round."""
    import tf2rt.backends.cuda as cuda

    order = []
    slow_first = {"persistent": [30.0, 12.0, 12.5], "step": [11.0, 11.5, 11.2]}

    def fake_time_each(fn, reps, warmup):
        order.append(fn)
        return [slow_first[fn].pop(0)] * reps

    monkeypatch.setattr(cuda, "_time_each", fake_time_each)
    times = cuda._time_in_turns({"persistent": "persistent", "step": "step"}, rounds=3, reps=5)
    assert order == ["persistent", "step"] * 3
    assert times == {"persistent": 12.0, "step": 11.0}


def test_first_run_candidates_per_sequence_length_and_options(monkeypatch):
    """What the first-run measurement times: one-step stacks also as the single-step stack
    with and without its weights persisting in L2 (only while TF2RT_CUDA_L2_PERSIST leaves
    it open), longer ones also on the row kernel (unless switched off) and as the persistent
    kernel with plain row copies (while TF2RT_CUDA_BULK leaves it open); stacks with
    per-sequence lengths never on cuDNN (it cannot take them inside a graph); one-step stacks
    with all their layers in one launch too once that form is a candidate (FUSE_CANDIDATE),
    unless TF2RT_CUDA_GEMV_FUSE says which."""
    import tf2rt.backends.cuda as cuda
    from tf2rt.backends.cuda import PERSISTENT_CP, STEP_FUSE, STEP_L2, STEP_L2_PF, STEP_PF, tune_candidates
    from tf2rt.backends.cuda.options import CudaOptions

    monkeypatch.setattr(cuda, "FUSE_CANDIDATE", False)  # off: measured no faster than the L2 forms
    assert STEP_FUSE not in tune_candidates(1, False, CudaOptions())
    monkeypatch.setattr(cuda, "FUSE_CANDIDATE", True)

    steps = ["step", STEP_L2, STEP_PF, STEP_L2_PF, STEP_FUSE]
    assert tune_candidates(1, False, CudaOptions()) == ["persistent", "cudnn"] + steps
    assert tune_candidates(1, True, CudaOptions()) == ["persistent"] + steps
    for fixed in (True, False):  # the user's choice is the only persisting form timed
        assert tune_candidates(1, False, CudaOptions(l2_persist=fixed)) == ["persistent", "cudnn", "step", STEP_PF,
                                                                             STEP_FUSE]
        assert STEP_FUSE not in tune_candidates(1, False, CudaOptions(gemv_fuse=fixed))
    assert tune_candidates(1, False, CudaOptions(l2_persist=False, gemv_l2pf="0", gemv_fuse=False)) == \
        ["persistent", "cudnn", "step"]
    assert tune_candidates(1, False, CudaOptions(gemv_l2pf="3")) == ["persistent", "cudnn", "step", STEP_L2, STEP_FUSE]
    assert STEP_FUSE not in tune_candidates(1, False, CudaOptions.from_env({"TF2RT_CUDA_GEMV_FUSE": "0"}))
    assert tune_candidates(100, False, CudaOptions()) == ["persistent", PERSISTENT_CP, "cudnn", "row"]
    assert tune_candidates(100, True, CudaOptions(row=False)) == ["persistent", PERSISTENT_CP]
    for fixed in ("0", "1", "2"):  # the user's choice of row copies is the only one timed
        assert PERSISTENT_CP not in tune_candidates(100, False, CudaOptions(bulk=fixed))
    assert "step+l2" not in tune_candidates(1, False, CudaOptions.from_env({"TF2RT_CUDA_L2_PERSIST": "0"}))


def test_l2_persistence_is_tried_only_for_weights_l2_does_not_keep():
    """fp32 H=1024: one LSTM layer's stacked weights (32 MB) and two (64 MB) against an
    H100's 50 MB L2: the persisting form is worth a measurement for more than half of L2."""
    from tf2rt.backends.cuda.single_step import l2_persist_may_pay

    mb = 1 << 20
    l2 = 50 * mb
    assert l2_persist_may_pay(64 * mb, l2) and l2_persist_may_pay(32 * mb, l2)
    assert not l2_persist_may_pay(16 * mb, l2) and not l2_persist_may_pay(25 * mb, l2)


@pytest.mark.parametrize("winner", ["step", "step+l2", "step+pf", "step+l2+pf", "step+fuse", "small", "unbuilt",
                                    "one-layer"])
def test_first_run_measurement_keeps_or_gives_back_the_l2_forms(monkeypatch, winner):
    """The runner's first-run measurement on the CPU, with stacks, captures and timings
    faked: a one-step stack whose weights take more than half of L2 is timed plain,
    persisting, prefetching the next layer's weights into L2, and both; the fastest is
    kept, and where no persisting form wins (or none could be made) the context's
    persisting L2 is given back as it was before the persisting stack asked for it. Small
    weights get no L2 candidates; a stack of one layer has no next layer to prefetch and
    no layers to run in one launch."""
    from types import SimpleNamespace

    torch = pytest.importorskip("torch")
    import tf2rt.backends.cuda as cuda
    import tf2rt.backends.cuda.launch as launch
    import tf2rt.backends.cuda.rnn as rnn
    from tf2rt.backends.cuda.options import CudaOptions

    mb = 1 << 20
    built, released = [], []

    class Stack:
        def __init__(self, options):
            self.l2_persisting = bool(options.l2_persist) and winner != "unbuilt"
            self.weight_bytes = (16 if winner == "small" else 64) * mb
            self.gemv, self.l2pf = True, options.gemv_l2pf
            self.problem = SimpleNamespace(layers=1 if winner == "one-layer" else 2)
            self.fused = bool(options.gemv_fuse) and self.problem.layers > 1

        def __call__(self, x, h0=None, c0=None, seq=None):
            assert h0 is c0 is seq is None  # the engine gives no states or lengths
            return x, x, None

    shared = []

    def fake_make_stack(specs, B, T, dtype, limits, prefer=None, options=None, weights_of=None):
        built.append((prefer, options.l2_persist, options.gemv_l2pf))
        stack = Stack(options)
        shared.append(weights_of)
        if prefer == "step" and weights_of is None:
            plain.append(stack)
        return stack, SimpleNamespace(engine=prefer, measured=None, reason="")

    plain = []

    fake_times = {"persistent": 40.0, "cudnn": 41.0, "step": 33.0, "step+l2": 34.0, "step+pf": 35.0, "step+l2+pf": 36.0,
                  "step+fuse": 37.0}
    if winner in fake_times:
        fake_times[winner] = 30.0
    monkeypatch.setattr(rnn, "make_stack", fake_make_stack)
    monkeypatch.setattr(cuda, "CapturedCall", lambda fn: fn)
    monkeypatch.setattr(cuda, "_time_in_turns", lambda calls: {k: fake_times[k] for k in calls})
    monkeypatch.setattr(launch, "l2_set_aside_now", lambda: 5 * mb)
    monkeypatch.setattr(launch, "l2_release", released.append)
    chain = SimpleNamespace(plan=SimpleNamespace(engine="step"), stack_key=(1, 1, "torch.float32"), has_seq_lens=False,
                            has_states=(False, False), specs=[SimpleNamespace(weights=[SimpleNamespace(input_size=8)])],
                            targets={})
    monkeypatch.setattr(cuda, "FUSE_CANDIDATE", True)
    runner = object.__new__(cuda.CudaRunner)
    runner.torch = SimpleNamespace(randn=lambda *shape, device=None, dtype=None: torch.randn(*shape, dtype=dtype),
                                   float32=torch.float32)
    runner.executor = SimpleNamespace(chains=[chain])
    runner.build_options = CudaOptions()
    runner.limits = SimpleNamespace(l2_size=50 * mb)
    runner._l2_kept = runner._l2_held = False
    runner._state = {}
    runner._tune({})
    measured = set(chain.plan.measured)
    if winner == "small":
        assert built == [("persistent", None, ""), ("cudnn", None, ""), ("step", None, ""), ("step", False, "")]
        assert measured == {"persistent", "cudnn", "step", "step+fuse"} and not released
        runner.close()
        assert not released
        return
    pf = cuda.STEP_PF_MASK
    assert ("step", True, "") in built
    want = {"persistent", "cudnn", "step"}
    if winner != "unbuilt":
        want.add("step+l2")
    if winner != "one-layer":
        want.add("step+pf")
        assert ("step", None, pf) in built
    if winner not in ("unbuilt", "one-layer"):
        want.add("step+l2+pf")
        assert built[-2] == ("step", True, pf)
    if winner != "one-layer":
        want.add("step+fuse")
    assert built[-1] == ("step", False, "")  # all layers in one launch (built, then dropped for one layer)
    assert measured == want
    # the step forms launched another way share the plain step stack's packed weights
    assert len(plain) == 1 and all(w is plain[0] for (e, *_), w in zip(built, shared) if e == "step" and w is not None)
    assert sum(w is not None for w in shared) == len([b for b in built if b[0] == "step"]) - 1
    kept = {"unbuilt": "step", "one-layer": "step"}.get(winner, winner)
    assert chain.plan.reason == f"first-run measurement: {kept} faster"
    assert chain.stack.l2_persisting == ("l2" in kept)
    assert chain.stack.l2pf == (pf if "pf" in kept else "")
    assert chain.stack.fused == (kept == "step+fuse")
    assert released == ([] if "l2" in kept else [5 * mb])
    runner.close()  # the runner that kept a persisting form gives the set-aside back as it was
    assert released == [5 * mb]
    runner.close()
    assert released == [5 * mb]


def test_multicast_row_copies_where_they_apply_and_the_floor_they_lower():
    """Large-batch builds of one launch a layer move their rows by bulk copies multicast
    across pairs of CTAs on compute capability 9.0 (BULK=2); wavefronts only when asked; none
    where the CTAs of a group do not pair up, the rows go through a ring or the GPU has no
    clusters. The operand term of the floor counts the rows once per pair."""
    from tf2rt.backends.cuda.builds import bulk_for
    from tf2rt.backends.cuda.options import CudaOptions

    lw = RnnProblem("lstm", 1024, 1024, 64, 100, layers=2, dtype="float16")
    k = make_plan(lw, H100, prefer="persistent").kernel
    assert k.large_batch and not k.fused and k.ctas_per_group == 128 and k.bulk == 2
    assert make_plan(lw, H100, prefer="persistent").describe()["row_copies"] == "bulk, multicast across clusters of 2 CTAs"
    assert make_plan(lw, H100, prefer="persistent", options=CudaOptions(bulk="0")).kernel.bulk == 0
    assert make_plan(lw, H100, prefer="persistent", options=CudaOptions(bulk="1")).kernel.bulk == 1
    ampere = DeviceLimits(sm_count=108, compute_capability=(8, 0), smem_per_block=163 * 1024)
    assert bulk_for(k, ampere) == 0
    wave = make_plan(RnnProblem("lstm", 512, 512, 64, 100, layers=2, dtype="float16"), H100, prefer="persistent").kernel
    assert wave.large_batch and wave.fused and wave.bulk == 0
    assert bulk_for(wave, H100, CudaOptions(bulk="2")) == 2
    assert replace(k, upc=9).ctas_per_group == 114 and bulk_for(replace(k, upc=9), H100) == 2
    assert replace(k, upc=7).ctas_per_group == 147 and bulk_for(replace(k, upc=7), H100) == 0  # odd: no pairs
    assert bulk_for(replace(k, ring_slots=2), H100) == 0
    assert bulk_for(replace(k, large_batch=False), H100) == 0
    plain = floor_parts(lw, replace(k, bulk=0), H100)["operand"]
    assert floor_parts(lw, k, H100)["operand"] == pytest.approx(plain / 2)


@pytest.mark.parametrize("winner", ["persistent", "persistent+cp.async", "no multicast"])
def test_first_run_measurement_times_plain_row_copies_against_multicast(monkeypatch, winner):
    """The runner's first-run measurement on the CPU, stacks and timings faked: a persistent
    build that multicasts its rows (BULK) is also timed with plain 16-byte copies
    (TF2RT_CUDA_BULK=0's build), and the faster is kept; a build without multicast copies
    gets no such candidate."""
    from types import SimpleNamespace

    torch = pytest.importorskip("torch")
    import tf2rt.backends.cuda as cuda
    import tf2rt.backends.cuda.rnn as rnn
    from tf2rt.backends.cuda.options import CudaOptions

    built = []

    def fake_make_stack(specs, B, T, dtype, limits, prefer=None, options=None, weights_of=None):
        built.append((prefer, options.bulk))
        bulk = 0 if (options.bulk == "0" or winner == "no multicast") else 2
        plan = SimpleNamespace(engine=prefer, measured=None, reason="", kernel=SimpleNamespace(bulk=bulk))
        return (lambda x, *rest: (x, x, None)), plan

    fake_times = {"persistent": 30.0 if winner != "persistent+cp.async" else 32.0, "persistent+cp.async": 31.0,
                  "cudnn": 40.0, "row": 50.0}
    monkeypatch.setattr(rnn, "make_stack", fake_make_stack)
    monkeypatch.setattr(cuda, "CapturedCall", lambda fn: fn)
    monkeypatch.setattr(cuda, "_time_in_turns", lambda calls: {k: fake_times[k] for k in calls})
    chain = SimpleNamespace(plan=SimpleNamespace(engine="persistent"), stack_key=(100, 64, "torch.float16"),
                            has_seq_lens=False, has_states=(False, False),
                            specs=[SimpleNamespace(weights=[SimpleNamespace(input_size=8)])], targets={})
    runner = object.__new__(cuda.CudaRunner)
    runner.torch = SimpleNamespace(randn=lambda *shape, device=None, dtype=None: torch.randn(*shape),
                                   float16=torch.float16)
    runner.executor = SimpleNamespace(chains=[chain])
    runner.build_options = CudaOptions()
    runner.limits = SimpleNamespace(l2_size=50 << 20)
    runner._l2_kept = runner._l2_held = False
    runner._tune({})
    if winner == "no multicast":
        assert built == [("persistent", ""), ("cudnn", ""), ("row", "")]
        assert chain.plan.reason == "first-run measurement: persistent faster"
        return
    assert built == [("persistent", ""), ("persistent", "0"), ("cudnn", ""), ("row", "")]
    assert set(chain.plan.measured) == {"persistent", "persistent+cp.async", "cudnn", "row"}
    assert chain.plan.reason == f"first-run measurement: {winner} faster"
    assert chain.plan.kernel.bulk == (2 if winner == "persistent" else 0)


@pytest.mark.parametrize("states,seq", [((True, True), True), ((True, False), False)])
def test_first_run_candidates_are_called_with_the_states_and_lengths_the_engine_gives(monkeypatch, states, seq):
    """A one-step stack called from a zero state reads half the weights of one given a state,
    so each first-run candidate is timed with what the engine gives its stack: h0 (and c0)
    [layers * directions, B, H] in the stack's type where the engine has them, sequence
    lengths where it has them."""
    from types import SimpleNamespace

    torch = pytest.importorskip("torch")
    import tf2rt.backends.cuda as cuda
    import tf2rt.backends.cuda.rnn as rnn
    from tf2rt.backends.cuda.options import CudaOptions

    calls = []

    def fake_make_stack(specs, B, T, dtype, limits, prefer=None, options=None, weights_of=None):
        def stack(x, h0=None, c0=None, seq_lens=None):
            calls.append((prefer, x, h0, c0, seq_lens))
            return x, x, None
        return stack, SimpleNamespace(engine=prefer, measured=None, reason="", kernel=None)

    monkeypatch.setattr(rnn, "make_stack", fake_make_stack)
    monkeypatch.setattr(cuda, "CapturedCall", lambda fn: (fn(), fn)[1])
    monkeypatch.setattr(cuda, "_time_in_turns", lambda c: {k: float(i) for i, k in enumerate(c)})
    spec = SimpleNamespace(weights=[SimpleNamespace(input_size=8)], directions=2, hidden=5)
    chain = SimpleNamespace(plan=SimpleNamespace(engine="persistent"), stack_key=(1, 3, "torch.float16"),
                            has_seq_lens=seq, has_states=states, specs=[spec, spec], targets={})
    runner = object.__new__(cuda.CudaRunner)
    runner.torch = SimpleNamespace(
        randn=lambda *shape, device=None, dtype=None: torch.randn(*shape, dtype=dtype),
        full=lambda shape, v, dtype=None, device=None: torch.full(shape, v, dtype=dtype),
        float16=torch.float16, int32=torch.int32)
    runner.executor = SimpleNamespace(chains=[chain])
    runner.build_options = CudaOptions(l2_persist=False, gemv_l2pf="0", gemv_fuse=False)
    runner.limits = SimpleNamespace(l2_size=50 << 20)
    runner._l2_kept = runner._l2_held = False
    runner._tune({})
    assert {c[0] for c in calls} >= {"persistent", "step"}
    for _, x, h0, c0, seq_lens in calls:
        assert tuple(x.shape) == (1, 3, 8) and x.dtype == torch.float16
        for given, t in zip(states, (h0, c0)):
            assert (t is not None) == given
            if given:
                assert tuple(t.shape) == (4, 3, 5) and t.dtype == torch.float16
        assert (seq_lens is not None) == seq
        if seq:
            assert seq_lens.tolist() == [1, 1, 1] and seq_lens.dtype == torch.int32


def test_l2_prefetch_mask_option():
    """TF2RT_CUDA_GEMV_L2PF reaches the one-launch layer's build as GV_L2PF (only there: the
    GEMM form has no such kernel); a value that is not a mask 0-15 is refused by name."""
    from tf2rt.backends.cuda.options import CudaOptions
    from tf2rt.backends.cuda.single_step import GEMV_L2PF_DEFAULT, step_defines
    from tf2rt.errors import UnsupportedError

    one = RnnProblem("lstm", 1024, 1024, 1, 1, layers=2, dtype="float32")
    assert step_defines(one, CudaOptions.from_env({"TF2RT_CUDA_GEMV_L2PF": "5"}))["GV_L2PF"] == 5
    assert step_defines(one, CudaOptions())["GV_L2PF"] == GEMV_L2PF_DEFAULT
    wide = RnnProblem("lstm", 1024, 1024, 64, 1, layers=2, dtype="float32")
    assert step_defines(wide, CudaOptions(gemv_l2pf="5"))["GV_L2PF"] == 0
    for bad in ("16", "x", "-1"):
        with pytest.raises(UnsupportedError, match="TF2RT_CUDA_GEMV_L2PF"):
            step_defines(one, CudaOptions(gemv_l2pf=bad))


def test_persisting_l2_is_given_back_when_the_last_runner_holding_it_closes(monkeypatch):
    """Two runners that kept weights persisting in L2: closing the first leaves the context's
    set-aside (the other still uses it); closing the second gives it back as it was before
    the first raised it."""
    import tf2rt.backends.cuda as cuda
    import tf2rt.backends.cuda.launch as launch

    released = []
    monkeypatch.setattr(launch, "l2_release", released.append)
    monkeypatch.setattr(cuda, "_L2_HOLD", {"runners": 0, "before": None})
    runners = []
    for before in (3, 7):  # the second found the set-aside already raised by the first
        r = object.__new__(cuda.CudaRunner)
        r._state, r._l2_kept, r._l2_held = {}, True, True
        cuda._l2_hold(before)
        runners.append(r)
    runners[0].close()
    assert released == []
    runners[1].close()
    assert released == [3]
    never = object.__new__(cuda.CudaRunner)
    never._state, never._l2_kept, never._l2_held = {}, False, False
    never.close()
    assert released == [3]

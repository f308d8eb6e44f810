"""The persistent recurrent kernel against onnxruntime (GPU; skipped without CUDA).

Every recurrent form the kernel runs: LSTM (with/without peepholes and clip), GRU with
both reset variants, RNN tanh/relu; 1-3 layers; forward, reverse, bidirectional; batch
1/8/64; per-sequence lengths; initial states; fp32 (<= 1e-4), fp16 and bf16 (<= 2e-2).
"""

from __future__ import annotations

import numpy as np
import pytest

from cuda_models import RnnCase, make_inputs, make_weights, node_specs, stack_errors, stack_inputs

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():  # pragma: no cover - CPU CI
    pytest.skip("needs an NVIDIA GPU with CUDA", allow_module_level=True)
pytest.importorskip("cupy")

from tf2rt.backends.cuda.persistent import PersistentStack, device_limits  # noqa: E402
from tf2rt.backends.cuda.rnn import make_stack  # noqa: E402

TOL = {"float32": 1e-4, "float16": 2e-2, "bfloat16": 2e-2}

CASES = [
    # cell, H, batch, layers, bidirectional/reverse, seq_lens, initial, extras
    dict(cell="lstm", hidden=128, batch=1, layers=1),
    dict(cell="lstm", hidden=256, batch=8, layers=2, seq_lens=True, initial=True),
    dict(cell="lstm", hidden=128, batch=64, layers=3, initial=True),
    dict(cell="lstm", hidden=96, batch=8, layers=2, bidirectional=True, seq_lens=True, initial=True),
    dict(cell="lstm", hidden=64, batch=8, layers=1, reverse=True, seq_lens=True),
    dict(cell="lstm", hidden=64, batch=8, layers=2, peepholes=True, clip=1.5, initial=True),
    dict(cell="lstm", hidden=271, batch=1, layers=3),
    dict(cell="gru", hidden=128, batch=1, layers=2, lbr=1),
    dict(cell="gru", hidden=128, batch=8, layers=3, lbr=0, seq_lens=True, initial=True),
    dict(cell="gru", hidden=64, batch=64, layers=1, lbr=0, bidirectional=True),
    dict(cell="gru", hidden=64, batch=8, layers=2, lbr=1, bidirectional=True, seq_lens=True),
    dict(cell="rnn", hidden=128, batch=8, layers=2, activation="Tanh", initial=True),
    dict(cell="rnn", hidden=128, batch=1, layers=3, activation="Relu", bidirectional=True, seq_lens=True),
    # short sequences: the first layer's input projection runs inside the kernel
    dict(cell="lstm", hidden=256, batch=1, layers=2, seq_len=1),
    dict(cell="lstm", hidden=128, batch=8, layers=2, seq_len=3, bidirectional=True, seq_lens=True, initial=True),
    dict(cell="gru", hidden=128, batch=8, layers=3, seq_len=2, lbr=0, initial=True),
    dict(cell="gru", hidden=64, batch=64, layers=1, seq_len=4, reverse=True, seq_lens=True),
    # large batch (fp16: flag exchange, all rows staged; 24 rows = 3 n-tiles)
    dict(cell="lstm", hidden=256, batch=24, layers=2, seq_lens=True, initial=True),
    dict(cell="gru", hidden=96, batch=16, layers=1, bidirectional=True, seq_lens=True, initial=True),
    # 40 rows = 5 n-tiles: three copy groups, the last one partial
    dict(cell="gru", hidden=128, batch=40, layers=2, seq_lens=True, initial=True),
    dict(cell="lstm", hidden=1024, batch=8, layers=2, seq_len=20, input_size=1024),  # batch 8, H >= 1024
    # H=1024 at batch 4, one launch a layer: fragments in registers (no input-weight fragments)
    dict(cell="lstm", hidden=1024, batch=4, layers=2, seq_len=12, seq_lens=True, initial=True),
    # fragments too large for registers: the large-batch step reads them from shared memory
    dict(cell="gru", hidden=1024, batch=16, layers=2, seq_len=12, input_size=1024, seq_lens=True),
    # the benchmark's headline shape: wavefront, fragments in registers, split input product
    dict(cell="lstm", hidden=512, batch=1, layers=2, seq_len=100, input_size=512),
]


def _ids(kw):
    return "-".join(f"{k}={v}" for k, v in kw.items())


def _run(case: RnnCase, dtype: str, prefer: str | None = "persistent"):
    make_weights(case)
    stack, plan = make_stack(node_specs(case), case.batch, case.seq_len, dtype, device_limits(), prefer=prefer,
                             has_seq_lens=case.seq_lens)
    return plan, _errors(stack, case, make_inputs(case), dtype)


def _errors(stack, case: RnnCase, feeds: dict, dtype: str) -> dict:
    """Largest error of every output of `stack` on `feeds` against onnxruntime."""
    return stack_errors(torch, case, dtype, feeds, stack)


def _stacks_with(case: RnnCase, dtype: str, *options) -> list:
    """(stack, plan) of `case`'s persistent stack for each of the build `options`."""
    specs = node_specs(case)
    return [make_stack(specs, case.batch, case.seq_len, dtype, device_limits(), prefer="persistent",
                       has_seq_lens=case.seq_lens, options=o) for o in options]


def _two_calls_against(stack, other, case: RnnCase, dtype: str, same) -> tuple:
    """Two calls of `stack` and `other` (the inputs scaled the second time): `stack` matches
    onnxruntime and same(u, v) holds for every pair of outputs. Returns the last call's
    inputs and both stacks' outputs (copies)."""
    for i in range(2):
        feeds = make_inputs(case)
        feeds = {k: (v * (1.0 + 0.3 * i)).astype(v.dtype) if v.dtype == np.float32 else v for k, v in feeds.items()}
        errs = _errors(stack, case, feeds, dtype)
        assert max(errs.values()) <= TOL[dtype], errs
        args = stack_inputs(torch, case, dtype, feeds)
        a = [t.clone() for t in stack(*args) if t is not None]
        b = [t.clone() for t in other(*args) if t is not None]
        assert len(a) == len(b) and all(same(u, v) for u, v in zip(a, b)), i
    return args, a, b


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("kw", CASES, ids=_ids)
def test_persistent_matches_onnxruntime(kw, dtype):
    kw = {"seq_len": 9, "input_size": 40, **kw}
    case = RnnCase(seed=len(_ids(kw)), **kw)
    plan, errs = _run(case, dtype)
    assert plan.engine == "persistent", plan.describe()
    worst = max(errs.values())
    print(f"{_ids(kw)} {dtype} {plan.mode} max abs err {worst:.2e}")
    assert worst <= TOL[dtype], errs


@pytest.mark.gpu
@pytest.mark.parametrize("kw,packed", [
    (dict(cell="lstm", hidden=128, batch=2, layers=2), False),  # wavefront, one fp32 h per word
    (dict(cell="gru", hidden=96, batch=8, layers=2, bidirectional=True), False),  # a launch per layer
    (dict(cell="gru", hidden=512, batch=8, layers=2), True),  # wavefront, two fp32 h per word
    (dict(cell="lstm", hidden=1024, batch=8, layers=2), True),  # a launch (and an epoch) per layer, packed
    (dict(cell="lstm", hidden=256, batch=24, layers=2), False),  # large-batch step: flags carry the epoch
], ids=lambda v: _ids(v) if isinstance(v, dict) else f"packed={v}")
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_one_stack_many_calls_reuses_exchange_buffers(kw, packed, dtype):
    """Epoch tags across the calls of one stack: no call may read an earlier call's exchange
    slots, also after a call shorter than the buffer (packed fp32 words carry only the
    epoch's parity, so such a call must stamp the slots it did not use)."""
    case = RnnCase(seq_len=12, input_size=16, seed=3, **kw)
    make_weights(case)
    stack, plan = make_stack(node_specs(case), case.batch, case.seq_len, dtype, device_limits(), prefer="persistent")
    assert plan.engine == "persistent"
    assert plan.kernel.packf == (packed and dtype == "float32")
    if dtype == "float32" and case.batch >= 4:
        assert plan.kernel.tf32 or plan.kernel.bf16x3
    for i, T in enumerate([12, 5, 12, 12, 3, 11, 12]):
        short = RnnCase(**{**case.__dict__, "seq_len": T, "seed": case.seed})
        feeds = make_inputs(short)
        feeds["X"] = feeds["X"] * (1.0 + 0.25 * i)  # a different input every call
        errs = _errors(stack, short, feeds, dtype)
        assert max(errs.values()) <= TOL[dtype], (i, T, errs)


@pytest.mark.gpu
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_fallbacks_on_gpu_match_onnxruntime(cell):
    case = RnnCase(cell=cell, hidden=64, batch=4, layers=2, seq_len=5, input_size=24, seed=11, initial=True)
    plan, errs = _run(case, "float32", prefer="cudnn")
    assert plan.engine == "cudnn"
    assert max(errs.values()) <= 1e-4, errs
    case.seq_lens = True
    case.lbr = 0
    plan, errs = _run(case, "float32", prefer="cudnn")
    assert max(errs.values()) <= 1e-4, (plan.describe(), errs)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("kw", [CASES[1], CASES[7], CASES[12], CASES[13]], ids=_ids)
def test_original_step_still_matches_onnxruntime(kw, dtype, monkeypatch):
    """TF2RT_CUDA_STEP=1 keeps the original (barrier per phase) step selectable."""
    monkeypatch.setenv("TF2RT_CUDA_STEP", "1")
    kw = {"seq_len": 9, "input_size": 40, **kw}
    case = RnnCase(seed=len(_ids(kw)) + 1, **kw)
    plan, errs = _run(case, dtype)
    assert plan.engine == "persistent" and not plan.kernel.two_barrier
    assert max(errs.values()) <= TOL[dtype], errs


@pytest.mark.gpu
@pytest.mark.parametrize("kw", [CASES[0], CASES[7], CASES[13], CASES[-1]], ids=_ids)
def test_fragments_in_shared_memory_still_match_onnxruntime(kw, monkeypatch):
    """TF2RT_CUDA_WREG=0 keeps the weight fragments in shared memory (the other build)."""
    monkeypatch.setenv("TF2RT_CUDA_WREG", "0")
    kw = {"seq_len": 9, "input_size": 40, **kw}
    case = RnnCase(seed=len(_ids(kw)) + 2, **kw)
    plan, errs = _run(case, "float16")
    assert plan.engine == "persistent" and plan.kernel.two_barrier and not plan.kernel.wreg
    assert max(errs.values()) <= TOL["float16"], errs


@pytest.mark.gpu
def test_headline_shape_uses_registers_and_the_split_input_product():
    case = RnnCase(cell="lstm", hidden=512, batch=1, layers=2, seq_len=100, input_size=512, seed=7)
    plan, errs = _run(case, "float16")
    k = plan.kernel
    assert plan.mode == "wavefront" and k.two_barrier and k.wreg and k.split_x and not k.fuse_input
    assert max(errs.values()) <= TOL["float16"], errs


@pytest.mark.gpu
@pytest.mark.parametrize("dtype,mode", [("float16", "wavefront"), ("bfloat16", "wavefront"), ("float32", "layerwise")])
def test_large_batch_step_is_used_and_matches(dtype, mode, monkeypatch):
    monkeypatch.delenv("TF2RT_CUDA_STEP", raising=False)
    case = RnnCase(cell="lstm", hidden=512, batch=64, layers=2, seq_len=30, input_size=512, seed=9,
                   seq_lens=True, initial=True)
    plan, errs = _run(case, dtype)
    assert plan.kernel.large_batch and plan.mode == mode and (plan.kernel.tf32 or plan.kernel.bf16x3) == (dtype == "float32")
    assert max(errs.values()) <= TOL[dtype], errs
    # the same build with every row copied before the first product (the benchmark's "nopipe")
    stack, _ = make_stack(node_specs(case), case.batch, case.seq_len, dtype, device_limits(), prefer="persistent",
                          has_seq_lens=True)
    for probe in [("LARGE_BATCH_NOPIPE",)] + ([("LARGE_BATCH_NOSPLIT",)] if mode == "wavefront" else []):
        # also the deeper layer with both products after both waits (the benchmark's "nosplit")
        other = PersistentStack(stack.problem, plan, [s.weights for s in node_specs(case)], probe=probe)
        errs1 = _errors(other, case, make_inputs(case), dtype)
        assert max(errs1.values()) <= TOL[dtype], (probe, errs1)
    monkeypatch.setenv("TF2RT_CUDA_STEP", "2")  # the original step, same case
    plan, errs2 = _run(case, dtype)
    assert not plan.kernel.large_batch and max(errs2.values()) <= TOL[dtype], errs2


@pytest.mark.gpu
@pytest.mark.parametrize("kw,ring", [
    (dict(cell="lstm", batch=64, seq_lens=True, initial=True), True),  # ring of two two-tile groups
    (dict(cell="gru", batch=40, initial=True), True),  # the same ring, the last group partial
    (dict(cell="lstm", batch=32, seq_lens=True), False),  # every row staged
    (dict(cell="lstm", batch=64, seq_len=1, initial=True), True),  # one step: the initial state through the ring
], ids=lambda v: _ids(v) if isinstance(v, dict) else f"ring={v}")
def test_fp32_fragments_split_between_registers_and_shared_memory(kw, ring, monkeypatch):
    """fp32 H=1024 above batch 16: weights fit neither registers nor, next to the staged
    rows, shared memory alone (WPART, and RING_SLOTS where the rows need a ring). Products as
    three TF32 passes here; the default three bf16 passes have their own test below."""
    monkeypatch.delenv("TF2RT_CUDA_WPART", raising=False)
    monkeypatch.setenv("TF2RT_CUDA_BF16X3", "0")
    kw = {"hidden": 1024, "layers": 2, "seq_len": 12, "input_size": 1024, **kw}
    case = RnnCase(seed=len(_ids(kw)) + 5, **kw)
    plan, errs = _run(case, "float32")
    k = plan.kernel
    assert k.large_batch and k.tf32 and k.wpart and not k.wreg and bool(k.ring_slots) == ring, plan.describe()
    assert max(errs.values()) <= TOL["float32"], errs


@pytest.mark.gpu
def test_split_fragments_also_match_where_shared_memory_alone_would_do(monkeypatch):
    monkeypatch.setenv("TF2RT_CUDA_WPART", "1")
    case = RnnCase(cell="gru", hidden=1024, batch=16, layers=2, seq_len=12, input_size=1024, seed=11,
                   seq_lens=True, initial=True)
    plan, errs = _run(case, "float32")
    assert plan.kernel.wpart and not plan.kernel.ring_slots
    assert max(errs.values()) <= TOL["float32"], errs


@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["plain", "tf32x3", "bf16x3"])
def test_fp32_input_projection_forms_match_onnxruntime(mode, monkeypatch):
    """The fp32 projection GEMM as plain SGEMM or three TF32/bf16 tensor-core passes; one
    launch a layer, so both layers' projections take that form."""
    monkeypatch.setenv("TF2RT_CUDA_XPROJ", mode)
    case = RnnCase(cell="lstm", hidden=512, batch=64, layers=2, seq_len=30, input_size=512, seed=13,
                   seq_lens=True, initial=True)
    plan, errs = _run(case, "float32")
    worst = max(errs.values())
    print(f"projection {mode}: {plan.mode} max abs err {worst:.2e}")
    assert worst <= TOL["float32"], errs


@pytest.mark.gpu
def test_ring_of_one_tile_groups_also_matches():
    from dataclasses import replace

    case = RnnCase(cell="gru", hidden=1024, batch=64, layers=2, seq_len=12, input_size=1024, seed=17,
                   seq_lens=True, initial=True)
    make_weights(case)
    stack, plan = make_stack(node_specs(case), case.batch, case.seq_len, "float32", device_limits(),
                             prefer="persistent", has_seq_lens=True)
    k = replace(plan.kernel, group_tiles=1, ring_slots=3)
    assert k.wpart and k.smem_bytes <= device_limits().smem_per_block
    other = PersistentStack(stack.problem, replace(plan, kernel=k), [s.weights for s in node_specs(case)])
    errs = _errors(other, case, make_inputs(case), "float32")
    assert max(errs.values()) <= TOL["float32"], errs


@pytest.mark.gpu
@pytest.mark.parametrize("kw", [
    dict(cell="lstm", hidden=1024, batch=64, seq_lens=True, initial=True),  # split fragments, ring
    dict(cell="gru", hidden=1024, batch=40, initial=True),  # ring, the last group partial
    dict(cell="lstm", hidden=1024, batch=16, seq_lens=True),  # fragments in shared memory
    dict(cell="gru", hidden=512, batch=64, seq_lens=True, initial=True),  # fragments in registers
    dict(cell="lstm", hidden=1024, batch=64, seq_len=1, initial=True),  # one step, initial state via the ring
], ids=_ids)
def test_fp32_large_batch_products_as_three_bf16_passes_match(kw, monkeypatch):
    monkeypatch.delenv("TF2RT_CUDA_BF16X3", raising=False)  # the default
    kw = {"layers": 2, "seq_len": 12, **kw}
    kw.setdefault("input_size", kw["hidden"])
    case = RnnCase(seed=len(_ids(kw)) + 19, **kw)
    plan, errs = _run(case, "float32")
    assert plan.kernel.bf16x3 and not plan.kernel.tf32, plan.describe()
    worst = max(errs.values())
    print(f"bf16x3 {_ids(kw)}: {plan.mode} max abs err {worst:.2e}")
    assert worst <= TOL["float32"], errs


@pytest.mark.gpu
@pytest.mark.parametrize("bulk", [0, 1, 4])
@pytest.mark.parametrize("kw,dtype,mode", [
    (dict(cell="lstm", hidden=1024, batch=64, seq_lens=True, initial=True), "float16", "layerwise"),  # every row
    (dict(cell="gru", hidden=1024, batch=40, initial=True), "float16", "layerwise"),  # the last copy group partial
    (dict(cell="gru", hidden=512, batch=64, seq_lens=True), "float32", "layerwise"),  # bf16x3: hi and lo planes
    # a wavefront: the deeper layer's input rows (the layer below's h) multicast too
    (dict(cell="lstm", hidden=512, batch=64, seq_lens=True, initial=True), "float16", "wavefront"),
    (dict(cell="gru", hidden=256, batch=24), "bfloat16", "wavefront"),
], ids=lambda v: _ids(v) if isinstance(v, dict) else str(v))
def test_large_batch_rows_by_bulk_copies_match_and_equal_the_cp_async_build(kw, dtype, mode, bulk, monkeypatch):
    """The planned build moves a step's rows (own h, and in a wavefront the layer below's h)
    by bulk copies multicast across clusters of two CTAs; the same stack with 16-byte cp.async (BULK=0), bulk copies without clusters (1) and
    clusters of four (which 128 CTAs cannot all be resident in: the stack falls back to 0)
    runs the same products in the same order, so outputs equal each other exactly, and
    onnxruntime within the dtype's tolerance."""
    from dataclasses import replace

    kw = {"layers": 2, "seq_len": 12, **kw}
    kw.setdefault("input_size", kw["hidden"])
    if mode == "wavefront":  # wavefronts take the multicast copies when asked
        monkeypatch.setenv("TF2RT_CUDA_BULK", "2")
    case = RnnCase(seed=len(_ids(kw)) + 23, **kw)
    make_weights(case)
    specs = node_specs(case)
    stack, plan = make_stack(specs, case.batch, case.seq_len, dtype, device_limits(), prefer="persistent",
                             has_seq_lens=case.seq_lens)
    k = plan.kernel
    assert k.large_batch and not k.ring_slots and k.bulk == 2, plan.describe()
    assert plan.mode == mode, plan.describe()
    assert stack.cfg.bulk == 2 and plan.kernel == stack.cfg  # 64 clusters of two fit on an H100/H200
    other = PersistentStack(stack.problem, replace(plan, kernel=replace(k, bulk=bulk)), [s.weights for s in specs])
    assert other.cfg.bulk == other.plan.kernel.bulk == (0 if bulk == 4 else bulk), other.plan.describe()
    feeds = make_inputs(case)
    for st in (stack, other):
        errs = _errors(st, case, feeds, dtype)
        assert max(errs.values()) <= TOL[dtype], errs
    tdt = getattr(torch, dtype)
    x = torch.from_numpy(feeds["X"]).cuda().to(tdt)
    sl = torch.from_numpy(feeds["seq_lens"]).cuda() if case.seq_lens else None
    h0 = c0 = None
    if case.initial:
        h0 = torch.from_numpy(np.concatenate([feeds[f"h0_{i}"] for i in range(case.layers)])).cuda().to(tdt)
        if case.cell == "lstm":
            c0 = torch.from_numpy(np.concatenate([feeds[f"c0_{i}"] for i in range(case.layers)])).cuda().to(tdt)
    want = [t.clone() if t is not None else None for t in stack(x, h0, c0, sl)]
    for _ in range(2):  # again: a later launch of the same stack (new epoch, barriers set up anew)
        got = other(x, h0, c0, sl)
        for w, g in zip(want, got):
            if w is not None:
                assert torch.equal(w, g), float((w.float() - g.float()).abs().max())


@pytest.mark.gpu
@pytest.mark.parametrize("kw,dtype", [
    (dict(cell="lstm", hidden=1024, batch=64, seq_lens=True, initial=True), "float16"),
    (dict(cell="gru", hidden=1024, batch=40, initial=True), "bfloat16"),  # the last copy group partial
], ids=lambda v: _ids(v) if isinstance(v, dict) else str(v))
def test_large_batch_warps_sharing_staged_values_across_row_tiles_match(kw, dtype):
    """MT_SHARE (the benchmark's `share`): every warp multiplies both row tiles over its own
    K slice; the sums split K eight ways instead of four, so outputs match onnxruntime
    within the dtype's tolerance (not bit for bit the planned build)."""
    from dataclasses import replace

    kw = {"layers": 2, "seq_len": 12, "input_size": kw["hidden"], **kw}
    case = RnnCase(seed=len(_ids(kw)) + 29, **kw)
    make_weights(case)
    specs = node_specs(case)
    stack, plan = make_stack(specs, case.batch, case.seq_len, dtype, device_limits(), prefer="persistent",
                             has_seq_lens=case.seq_lens)
    k = replace(plan.kernel, mt_share=True)
    assert k.large_batch and k.wreg and k.rows_padded == 32 and k.smem_bytes <= device_limits().smem_per_block
    other = PersistentStack(stack.problem, replace(plan, kernel=k), [s.weights for s in specs])
    errs = _errors(other, case, make_inputs(case), dtype)
    assert max(errs.values()) <= TOL[dtype], errs


@pytest.mark.gpu
@pytest.mark.parametrize("kw,dtype", [
    (dict(cell="lstm", hidden=512, batch=1, layers=2, seq_len=100, input_size=512), "float16"),  # wavefront
    (dict(cell="gru", hidden=128, batch=8, layers=2, bidirectional=True, seq_lens=True, initial=True), "float32"),
    (dict(cell="lstm", hidden=256, batch=24, layers=2, seq_lens=True, initial=True), "float16"),  # large batch
    (dict(cell="gru", hidden=1024, batch=64, layers=2, seq_len=12, input_size=1024), "float16"),  # multicast rows
], ids=["wavefront", "bidirectional-fp32", "large-batch", "bulk"])
def test_dependent_launches_behind_the_projection_match_ordinary_ones(kw, dtype):
    """options.pdl=True: each launch that follows its input-projection GEMM goes as a
    programmatic dependent cooperative launch (Hopper). The driver keeps taking it (the stack
    does not fall back), over calls and a graph replay the outputs equal the ordinary
    launches' exactly, and match onnxruntime."""
    from tf2rt.backends.cuda.cudagraph import CapturedCall
    from tf2rt.backends.cuda.options import CudaOptions

    if torch.cuda.get_device_capability() < (9, 0):
        pytest.skip("programmatic dependent launches need compute capability 9.0")
    kw = {"seq_len": 9, "input_size": 40, **kw}
    case = RnnCase(seed=len(_ids(kw)), **kw)
    make_weights(case)
    (dep, _), (plain, _) = _stacks_with(case, dtype, CudaOptions(pdl=True), CudaOptions(pdl=False))
    assert dep.pdl and not plain.pdl
    args, _, b = _two_calls_against(dep, plain, case, dtype, torch.equal)
    graph = CapturedCall(lambda: [t for t in dep(*args) if t is not None])
    torch.cuda.synchronize()
    for u, v in zip(graph(), b):
        assert torch.equal(u, v)
    assert dep.pdl, "the driver refused the dependent launch: the stack fell back to ordinary ones"



@pytest.mark.gpu
@pytest.mark.parametrize("kw,dtype", [
    (dict(cell="lstm", hidden=512, batch=1, layers=2, seq_len=100, input_size=512), "float16"),  # wavefront
    (dict(cell="gru", hidden=1024, batch=1, layers=2, seq_len=20, input_size=1024), "bfloat16"),  # a launch a layer
    (dict(cell="lstm", hidden=256, batch=24, layers=2, seq_lens=True, initial=True), "float16"),  # large batch
], ids=["wavefront-fp16", "layerwise-bf16", "large-batch-fp16"])
def test_first_layer_projection_as_one_tf32_gemm_from_fp32_x(kw, dtype):
    """options.xproj="tf32": the first layer's projection reads fp32 x as given (TF32 GEMM,
    fp32 output read by a PTYPE=0 build); over two calls and a graph replay it matches
    onnxruntime, and stays within twice the stack's tolerance of the default build."""
    from tf2rt.backends.cuda.cudagraph import CapturedCall
    from tf2rt.backends.cuda.options import CudaOptions

    kw = {"seq_len": 9, "input_size": 40, **kw}
    case = RnnCase(seed=len(_ids(kw)) + 5, **kw)
    make_weights(case)
    (tf32, _), (plain, _) = _stacks_with(case, dtype, CudaOptions(xproj="tf32"), CudaOptions())
    assert tf32.proj[0].mode == "tf32" and tf32.xp[0].dtype == torch.float32
    feeds = make_inputs(case)
    errs = stack_errors(torch, case, dtype, feeds, tf32, x_dtype="float32")
    assert max(errs.values()) <= TOL[dtype], errs
    args = stack_inputs(torch, case, dtype, feeds, x_dtype="float32")
    a = [t.clone() for t in tf32(*args) if t is not None]
    b = [t for t in plain(*stack_inputs(torch, case, dtype, feeds)) if t is not None]
    # both within TOL of onnxruntime (the default build's own GPU tests check it): 2 TOL apart at most
    assert all(float((u.float() - v.float()).abs().max()) <= 2 * TOL[dtype] for u, v in zip(a, b))
    graph = CapturedCall(lambda: [t for t in tf32(*args) if t is not None])
    torch.cuda.synchronize()
    for u, v in zip(graph(), a):
        assert torch.equal(u, v)

"""The single-step stack (T = 1: one GEMM and one gate kernel per layer).

Host side (CPU CI): the stacked GEMM weights reproduce onnxruntime's step when multiplied
out in numpy with the cell written out here; the kernels compile for every form. On a GPU:
the stack against onnxruntime for every cell, 1-3 layers, both directions, initial states,
sequence lengths, peepholes/clip, batch 1/8/64, fp32/fp16/bf16; and through the runner.
"""

from __future__ import annotations

import platform

import numpy as np
import pytest

from cuda_models import RnnCase, build_model, make_inputs, make_weights, node_specs, run_onnxruntime
from cuda_models import gpu_torch as _gpu
from cuda_models import stack_errors as _stack_errors
from nvrtc import Nvrtc, find_nvrtc

from tf2rt.backends.cuda.persistent import kernel_source
from tf2rt.backends.cuda.plan import STEP_MIN_BATCH, DeviceLimits, RnnProblem, make_plan, step_applies
from tf2rt.backends.cuda.rnn import problem_for
from tf2rt.backends.cuda.single_step import GATE_BLOCKS, step_defines, step_layout, step_weights

CASES = [
    dict(cell="lstm", hidden=64, batch=1, layers=1),
    dict(cell="lstm", hidden=96, batch=8, layers=2, initial=True),
    dict(cell="lstm", hidden=64, batch=64, layers=3, bidirectional=True, initial=True, seq_lens=True),
    dict(cell="lstm", hidden=40, batch=8, layers=2, peepholes=True, clip=1.5, initial=True),
    dict(cell="lstm", hidden=36, batch=3, layers=1, reverse=True, initial=True),
    dict(cell="gru", hidden=64, batch=8, layers=2, initial=True),
    dict(cell="gru", hidden=48, batch=64, layers=2, bidirectional=True, initial=True),
    dict(cell="gru", hidden=64, batch=1, layers=3),
    dict(cell="rnn", hidden=64, batch=8, layers=2, activation="Relu", initial=True),
    dict(cell="rnn", hidden=32, batch=8, layers=1, activation="Tanh", bidirectional=True, initial=True),
    # the GEMM form from a zero state: its K stops at the input's columns
    dict(cell="gru", hidden=48, batch=64, layers=2, bidirectional=True),
    dict(cell="lstm", hidden=40, batch=8, layers=2, peepholes=True, seq_lens=True),
]


def _ids(kw):
    return "-".join(f"{k}={v}" for k, v in kw.items())


def _case(kw) -> RnnCase:
    case = RnnCase(seq_len=1, input_size=24, seed=len(_ids(kw)), **kw)
    make_weights(case)
    return case


def _sig(v):
    return 1.0 / (1.0 + np.exp(-v))


def _numpy_stack(case: RnnCase, feeds: dict) -> dict:
    """One step of `case` from step_weights, the cell written out in numpy (fp64)."""
    specs = node_specs(case)
    H, B, D = case.hidden, case.batch, case.dirs
    clip = (lambda v: np.clip(v, -case.clip, case.clip)) if case.clip else (lambda v: v)
    x = feeds["X"][0].astype(np.float64)
    out = {}
    for layer, spec in enumerate(specs):
        h0 = feeds.get(f"h0_{layer}", np.zeros((D, B, H), np.float32)).astype(np.float64)
        c0 = feeds.get(f"c0_{layer}", np.zeros((D, B, H), np.float32)).astype(np.float64)
        a = np.concatenate([x] + [h0[d] for d in range(D)], 1)
        k = a.shape[1]
        wt, bias = step_weights(case.cell, H, spec.weights, k + 3, D * GATE_BLOCKS[case.cell] * H + 5)
        assert not wt[k:].any() and not wt[:, -5:].any() and not bias[-5:].any()  # padding stays zero
        pre = a @ wt[:k].astype(np.float64) + bias
        hs, cs = [], []
        for d in range(D):
            g = pre[:, d * GATE_BLOCKS[case.cell] * H:]
            blk = [g[:, i * H:(i + 1) * H] for i in range(GATE_BLOCKS[case.cell])]
            if case.cell == "lstm":  # ONNX order i, o, f, c; peepholes i, o, f
                p = spec.weights[d].P
                pi, po, pf = (p[:H], p[H:2 * H], p[2 * H:]) if p is not None else (0.0, 0.0, 0.0)
                i = _sig(clip(blk[0] + pi * c0[d]))
                f = _sig(clip(blk[2] + pf * c0[d]))
                c = f * c0[d] + i * np.tanh(clip(blk[3]))
                h = _sig(clip(blk[1] + po * c)) * np.tanh(c)
                cs.append(c)
            elif case.cell == "gru":  # z, r, input part of h~, recurrent part of h~
                z, r = _sig(clip(blk[0])), _sig(clip(blk[1]))
                h = (1 - z) * np.tanh(clip(blk[2] + r * blk[3])) + z * h0[d]
            else:
                v = clip(blk[0])
                h = np.maximum(v, 0) if case.activation == "Relu" else np.tanh(v)
            hs.append(h)
        out[f"Yh_{layer}"] = np.stack(hs)
        if case.cell == "lstm":
            out[f"Yc_{layer}"] = np.stack(cs)
        x = np.concatenate(hs, 1)
    out[f"x_{case.layers}"] = x[None]
    return out


@pytest.mark.parametrize("kw", CASES, ids=_ids)
def test_stacked_weights_give_onnxruntimes_step(kw):
    case = _case(kw)
    feeds = make_inputs(case)
    want = run_onnxruntime(build_model(case), feeds)
    got = _numpy_stack(case, feeds)
    for name, v in got.items():
        assert np.abs(v - want[name]).max() <= 2e-6, name


def test_step_applies_names_what_it_cannot_run():
    p = RnnProblem("lstm", 64, 32, 4, 1)
    assert step_applies(p) is None
    assert "one time step" in step_applies(RnnProblem("lstm", 64, 32, 4, 2))
    assert "linear_before_reset" in step_applies(RnnProblem("gru", 64, 32, 4, 1, linear_before_reset=False))
    assert "activations" in step_applies(RnnProblem("lstm", 64, 32, 4, 1, default_activations=False))


def test_planner_picks_the_single_step_stack_for_large_one_step_batches():
    h100 = DeviceLimits()
    n = STEP_MIN_BATCH["float32"]
    big = make_plan(RnnProblem("gru", 1024, 1024, n, 1, layers=2), h100)
    assert big.engine == "step" and str(n) in big.reason
    assert big.full_floor_us == make_plan(RnnProblem("gru", 1024, 1024, n, 1, layers=2), h100,
                                          prefer="persistent").full_floor_us > 0
    assert make_plan(RnnProblem("gru", 1024, 1024, n, 2, layers=2), h100).engine != "step"  # two steps
    assert make_plan(RnnProblem("lstm", 512, 512, 1, 1, layers=2, dtype="float16"), h100).engine == "persistent"
    assert make_plan(RnnProblem("lstm", 512, 512, 1, 1, layers=2, dtype="float16"), h100, prefer="step").engine == "step"
    # where the single-step stack cannot run, "step" means the planner's own choice
    lbr0 = RnnProblem("gru", 64, 32, 64, 1, linear_before_reset=False)
    assert make_plan(lbr0, h100, prefer="step").engine == make_plan(lbr0, h100).engine != "step"


def test_fp32_operands_split_from_batch_8():
    small, large = (step_layout(RnnProblem("lstm", 100, 30, b, 1, directions=2)) for b in (4, 8))
    assert not small.split and small.rows == 4
    assert large.split and large.rows == 16
    assert large.ncol == 800 and large.k0 == 232 and large.k1 == 400  # 30+200 -> 232
    assert not step_layout(RnnProblem("lstm", 100, 30, 64, 1, dtype="float16")).split
    assert not step_layout(RnnProblem("lstm", 100, 30, 64, 1, row_norm=3.0)).split  # large weights: fp32 GEMM


@pytest.fixture(scope="module")
def nvrtc():
    path = find_nvrtc()
    if path is None:
        if platform.system() == "Linux" and platform.machine() == "x86_64":
            pytest.fail("NVRTC is missing: the test extras install nvidia-cuda-nvrtc (pip install -e '.[test]')")
        pytest.skip("the nvidia-cuda-nvrtc wheel exists for Linux x86_64 only")
    return Nvrtc(path)


@pytest.mark.parametrize("kw", CASES, ids=_ids)
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_kernels_compile(nvrtc, kw, dtype):
    case = _case(kw)
    problem = problem_for(node_specs(case), case.batch, 1, dtype)
    options = ["--std=c++17", "-arch=sm_90"] + [f"-D{k}={v}" for k, v in step_defines(problem).items()]
    ok, ptx = nvrtc.compile(kernel_source("single_step.cu"), options)
    assert ok, ptx
    assert ".entry stage_operands" in ptx and ".entry step_gates" in ptx


def test_large_batches_compile_without_the_one_launch_form(nvrtc):
    """The one-launch form keeps BATCH-long arrays per thread; it is built only where it runs
    (batch <= 4), so a one-step stack of batch 20000 compiles quickly and without it."""
    import time

    problem = RnnProblem("lstm", 192, 32, 20000, 1, layers=2, dtype="float32")
    defines = step_defines(problem)
    assert defines["GEMV"] == 0
    t = time.perf_counter()
    ok, ptx = nvrtc.compile(kernel_source("single_step.cu"),
                            ["--std=c++17", "-arch=sm_90"] + [f"-D{k}={v}" for k, v in defines.items()])
    assert ok, ptx
    assert ".entry step_gates" in ptx and ".entry step_gemv" not in ptx
    assert time.perf_counter() - t < 30
    small = step_defines(RnnProblem("lstm", 192, 32, 2, 1, layers=2, dtype="float32"))
    assert small["GEMV"] == 1


def _gemv_runs(cell: str, g: int, d: int, kin: int, H: int) -> list[tuple[int, int]]:
    """The column runs [begin, end) step_gemv reads of gate block g, direction d (the rule
    of kernels/single_step.cu, written out here to check it against the real weights)."""
    a_end, b_beg, b_end = (kin + 3) & ~3, (kin + d * H) & ~3, (kin + (d + 1) * H + 3) & ~3
    if cell == "gru" and g == 2:
        b_beg = b_end = a_end
    if cell == "gru" and g == 3:
        a_end = 0
    if a_end >= b_beg:
        return [(0, max(a_end, b_end))]
    return [(0, a_end), (b_beg, b_end)]


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("kin,H,D", [(64, 64, 1), (65, 33, 2), (3, 50, 2), (128, 40, 2), (7, 5, 1), (98, 98, 2)])
def test_one_launch_rows_read_every_non_zero_weight(cell, kin, H, D):
    """Each gate row of a one-launch layer reads only 4-aligned runs of its columns (its own
    direction's h0 columns and, but for GRU's recurrent h~ block, the input): every non-zero
    weight of step_weights' stacked matrix lies inside them, the runs do not overlap, and
    for bidirectional or GRU layers they skip a part of the row."""
    from tf2rt.backends.cuda.packing import DirectionWeights
    from tf2rt.backends.cuda.single_step import GATE_BLOCKS

    G = {"lstm": 4, "gru": 3, "rnn": 1}[cell]
    rng = np.random.default_rng(0)
    dirs = [DirectionWeights(cell, rng.standard_normal((G * H, kin)).astype(np.float32) + 3,
                             rng.standard_normal((G * H, H)).astype(np.float32) + 3,
                             np.ones(G * H, np.float32), np.ones(G * H, np.float32)) for _ in range(D)]
    k = -(-(kin + D * H) // 8) * 8
    GW = GATE_BLOCKS[cell]
    wt, _ = step_weights(cell, H, dirs, k, -(-(D * GW * H) // 8) * 8)
    read_fraction = []
    for d in range(D):
        for g in range(GW):
            for j in (0, H // 2, H - 1):
                col = wt[:, d * GW * H + g * H + j]
                runs = _gemv_runs(cell, g, d, kin, H)
                inside = np.zeros(k, bool)
                for a, b in runs:
                    assert a % 4 == 0 and b % 4 == 0 and b <= k and not inside[a:b].any()
                    inside[a:b] = True
                assert not (col[~inside] != 0).any(), (d, g, j, runs)
                read_fraction.append(inside.mean())
    if D == 2 or cell == "gru":
        assert min(read_fraction) < 1.0


@pytest.mark.parametrize("cell,H,dtype,B", [("lstm", 512, "float32", 1), ("lstm", 1024, "float32", 4),
                                            ("gru", 1024, "float16", 4), ("lstm", 512, "bfloat16", 1),
                                            ("rnn", 256, "float32", 2)])
def test_one_launch_layers_prefetch_without_spills_and_wait_for_the_layer_below(nvrtc, cell, H, dtype, B):
    """step_gemv keeps its early weight loads in registers (at most 64 registers a thread
    through its launch bounds, so four 256-thread blocks fit an SM; no spills but a 16-byte
    one at batch 2 fp32), and it waits for the kernel ahead of it (griddepcontrol, for
    dependent launches) before it reads its inputs."""
    problem = RnnProblem(cell, H, H, B, 1, layers=2, dtype=dtype)
    defines = step_defines(problem)
    assert defines["GEMV"] == 1 and defines["GV_PF"] >= 1
    options = ["--std=c++17", "-arch=sm_90"] + [f"-D{k}={v}" for k, v in defines.items()]
    regs, spills, report = nvrtc.resources(kernel_source("single_step.cu"), options, "step_gemv")
    assert spills <= (16 if B == 2 and dtype == "float32" else 0) and regs <= 64, report
    ok, ptx = nvrtc.compile(kernel_source("single_step.cu"), options)
    body = ptx[ptx.index(".entry step_gemv("):]
    assert body.index("griddepcontrol.launch_dependents") < body.index("griddepcontrol.wait")
    # every layer in one launch: the same register budget (its blocks must all fit at once);
    # at batch 1 no spills, at larger batches some (local memory that stays in L1; the runner
    # times the form against a launch a layer before keeping it)
    regs, spills, report = nvrtc.resources(kernel_source("single_step.cu"), options, "step_gemv_layers")
    assert regs <= 64 and spills <= (0 if B == 1 else 96), report
    body = ptx[ptx.index(".entry step_gemv_layers("):]
    body = body[:body.find(".entry", 1) % (len(body) + 1)]  # up to the next kernel, if any
    assert body.index("griddepcontrol.launch_dependents") < body.index("griddepcontrol.wait")
    assert "ld.acquire.gpu.global.u64" in body and "atom.global.add.u64" in body and "ld.global.cg" in body


# ---- on the GPU ---------------------------------------------------------------------------
TOL = {"float32": 1e-4, "float16": 2e-2, "bfloat16": 2e-2}


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("kw", CASES, ids=_ids)
def test_single_step_stack_matches_onnxruntime(kw, dtype):
    torch = _gpu()
    from tf2rt.backends.cuda.persistent import device_limits
    from tf2rt.backends.cuda.rnn import make_stack

    case = _case(kw)
    limits = device_limits()
    stack, plan = make_stack(node_specs(case), case.batch, 1, dtype, limits, prefer="step",
                             has_seq_lens=case.seq_lens)
    # the floor is the persistent kernel's for the shape
    kernel = make_plan(problem_for(node_specs(case), case.batch, 1, dtype), limits, prefer="persistent")
    assert plan.engine == "step" and plan.full_floor_us == kernel.full_floor_us > 0
    for i in range(3):  # one stack, new inputs every call
        feeds = make_inputs(case)
        feeds = {k: (v * (1.0 + 0.3 * i)).astype(v.dtype) if v.dtype == np.float32 else v for k, v in feeds.items()}
        errs = _stack_errors(torch, case, dtype, feeds, stack)
        assert max(errs.values()) <= TOL[dtype], (i, errs)


@pytest.mark.gpu
def test_padded_rows_keep_their_state_and_output_zero():
    torch = _gpu()
    from tf2rt.backends.cuda.persistent import device_limits
    from tf2rt.backends.cuda.rnn import make_stack

    case = _case(dict(cell="lstm", hidden=64, batch=8, layers=2, initial=True, seq_lens=True))
    stack, _ = make_stack(node_specs(case), case.batch, 1, "float32", device_limits(), prefer="step")
    feeds = make_inputs(case)
    dev = "cuda"
    h0 = torch.from_numpy(np.concatenate([feeds["h0_0"], feeds["h0_1"]])).to(dev)
    c0 = torch.from_numpy(np.concatenate([feeds["c0_0"], feeds["c0_1"]])).to(dev)
    lens = torch.tensor([1, 0, 1, 0, 1, 1, 1, 0], device=dev, dtype=torch.int32)
    y, hn, cn = stack(torch.from_numpy(feeds["X"]).to(dev), h0, c0, lens)
    pad = (lens == 0).nonzero().flatten()
    assert torch.equal(hn[:, pad], h0[:, pad]) and torch.equal(cn[:, pad], c0[:, pad])
    assert not y[:, :, pad].any() and y[:, :, lens == 1].abs().sum() > 0


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_runner_runs_one_step_engines_with_the_single_step_stack(precision):
    _gpu()
    from helpers.rnn_networks import build_rnn, rnn_feeds

    engine, _ = build_rnn("lstm", 2, False, 128, 32, 8, 1, 5, states=True, precision=precision)
    feeds = rnn_feeds("lstm", 2, False, 128, 32, 8, 1, 5, False, True)
    want = engine.run(feeds, backend="reference")
    runner = engine.runner("cuda", prefer="step")
    got = runner.run(feeds)
    assert runner.describe()["recurrent"][0]["engine"] == "step"
    for k in want:
        assert np.abs(got[k] - want[k]).max() <= (1e-4 if precision == "fp32" else 2e-2), k
    tuned = engine.runner("cuda")
    tuned.run(feeds)
    measured = tuned.describe()["recurrent"][0]["measured_us"]
    assert set(measured) == {"persistent", "cudnn", "step"}, measured


SMALL = [
    dict(cell="lstm", hidden=64, batch=1, layers=2),
    dict(cell="lstm", hidden=271, batch=3, layers=3, initial=True, seq_lens=True),
    dict(cell="lstm", hidden=40, batch=4, layers=2, peepholes=True, clip=1.5, initial=True, bidirectional=True),
    dict(cell="gru", hidden=64, batch=1, layers=3, initial=True),
    dict(cell="gru", hidden=50, batch=2, layers=2, bidirectional=True, initial=True, seq_lens=True),
    dict(cell="rnn", hidden=33, batch=4, layers=2, activation="Relu", initial=True),
]


@pytest.mark.gpu
@pytest.mark.parametrize("form", ["gemv", "gemv-pdl", "gemm", "fuse", "fuse-pdl"])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("kw", SMALL, ids=_ids)
def test_small_batches_one_launch_a_layer_match_onnxruntime(kw, dtype, form, monkeypatch):
    """Batch <= 4: each layer one launch (step_gemv), also launched as programmatic
    dependents (TF2RT_CUDA_PDL=1), or the GEMM form (TF2RT_CUDA_GEMV=0), or every layer in
    one launch (step_gemv_layers, TF2RT_CUDA_GEMV_FUSE=1), alone and as a dependent."""
    torch = _gpu()
    from tf2rt.backends.cuda.persistent import device_limits
    from tf2rt.backends.cuda.rnn import make_stack

    gemv = form != "gemm"
    monkeypatch.setenv("TF2RT_CUDA_GEMV", "1" if gemv else "0")
    monkeypatch.setenv("TF2RT_CUDA_PDL", "1" if form.endswith("-pdl") else "0")
    monkeypatch.setenv("TF2RT_CUDA_GEMV_FUSE", "1" if form.startswith("fuse") else "0")
    case = _case(kw)
    stack, plan = make_stack(node_specs(case), case.batch, 1, dtype, device_limits(), prefer="step",
                             has_seq_lens=case.seq_lens)
    assert plan.engine == "step" and stack.gemv == gemv and stack.fused == form.startswith("fuse")
    assert stack.pdl == (form.endswith("-pdl") and torch.cuda.get_device_capability() >= (9, 0))
    for i in range(2):
        feeds = make_inputs(case)
        feeds = {k: (v * (1.0 + 0.3 * i)).astype(v.dtype) if v.dtype == np.float32 else v for k, v in feeds.items()}
        errs = _stack_errors(torch, case, dtype, feeds, stack)
        print(kw, dtype, form, f"max abs err {max(errs.values()):.2e}")
        assert max(errs.values()) <= TOL[dtype], (i, errs)


@pytest.mark.gpu
@pytest.mark.parametrize("cell,dtype", [("lstm", "float32"), ("gru", "float32"), ("lstm", "float16")])
def test_large_one_step_stacks_run_every_layer_in_one_launch(cell, dtype):
    """H=1024 at batch 1: every block of the one-launch form (512) fits an H100 at once; over
    replays of a captured call (new inputs each time) it gives what a launch a layer gives."""
    torch = _gpu()
    from tf2rt.backends.cuda.options import CudaOptions
    from tf2rt.backends.cuda.persistent import device_limits
    from tf2rt.backends.cuda.rnn import make_stack

    case = RnnCase(seq_len=1, input_size=1024, hidden=1024, batch=1, layers=2, cell=cell, seed=5)
    make_weights(case)
    specs = node_specs(case)
    limits = device_limits()
    fused, _ = make_stack(specs, 1, 1, dtype, limits, prefer="step", options=CudaOptions(gemv_fuse=True))
    plain, _ = make_stack(specs, 1, 1, dtype, limits, prefer="step", options=CudaOptions(gemv_fuse=False),
                          weights_of=fused)
    assert fused.fused and not plain.fused
    x = torch.zeros(1, 1, 1024, device="cuda", dtype=getattr(torch, dtype))
    h0 = torch.zeros(2, 1, 1024, device="cuda", dtype=getattr(torch, dtype))
    graph = torch.cuda.CUDAGraph()
    fused(x, h0)  # compiled and warm before capture
    with torch.cuda.graph(graph):
        out = fused(x, h0)
    for i in range(4):
        x.copy_(torch.randn_like(x) * (1 + i))
        h0.copy_(torch.randn_like(h0) * 0.5)
        graph.replay()
        want = plain(x, h0)
        for a, b in zip(out, want):
            if a is not None:
                torch.testing.assert_close(a.float(), b.float(), atol=1e-5 if dtype == "float32" else 2e-3, rtol=0)


def test_persisting_windows_share_the_set_aside_without_overfilling_it():
    """Every weight buffer gets the same share of its lines marked persisting, and the
    shares add up to the set-aside (never more: persisting lines beyond it would evict
    each other every call); a buffer larger than the largest window keeps its share
    through a higher ratio on the part a window covers."""
    from tf2rt.backends.cuda.single_step import persisting_windows

    mb = 1 << 20
    sizes = [32 * mb, 32 * mb]  # LSTM fp32 H=1024, two layers
    wins = persisting_windows(sizes, 30 * mb, 128 * mb)
    assert [c for c, _ in wins] == sizes
    assert sum(c * r for c, r in wins) == pytest.approx(30 * mb)
    assert wins[0][1] == pytest.approx(30 / 64)
    assert persisting_windows([8 * mb], 30 * mb, 128 * mb) == [(8 * mb, 1.0)]  # all of a small stack
    big = persisting_windows([100 * mb, 20 * mb], 30 * mb, 64 * mb)
    assert big[0][0] == 64 * mb and sum(c * r for c, r in big) == pytest.approx(30 * mb)
    assert persisting_windows(sizes, 0, 128 * mb) == [(0, 0.0), (0, 0.0)]  # no persisting L2
    # front: every line of the first layer, then what is left of the set-aside of the next
    assert persisting_windows(sizes, 40 * mb, 128 * mb, front=True) == [(32 * mb, 1.0), (8 * mb, 1.0)]
    assert persisting_windows(sizes, 30 * mb, 128 * mb, front=True) == [(30 * mb, 1.0), (0, 0.0)]
    assert persisting_windows([100 * mb, 20 * mb], 90 * mb, 64 * mb, front=True) == [(64 * mb, 1.0), (20 * mb, 1.0)]
    assert persisting_windows(sizes, 0, 128 * mb, front=True) == [(0, 0.0), (0, 0.0)]


@pytest.mark.gpu
def test_large_one_step_engines_also_time_weights_persisting_in_l2():
    """fp32 H=1024, two layers (64 MB of weights, more than L2 keeps): the first-run
    measurement also times the single-step stack with its weights persisting in L2 and with
    its layers prefetching the next layer's weights into L2, and whichever it keeps matches
    the reference backend; the persisting and prefetching stacks compute exactly what the
    plain one does."""
    torch = _gpu()
    from helpers.rnn_networks import build_rnn, rnn_feeds

    from tf2rt.backends.cuda.options import CudaOptions
    from tf2rt.backends.cuda.persistent import device_limits
    from tf2rt.backends.cuda.rnn import make_stack

    engine, _ = build_rnn("lstm", 2, False, 1024, 1024, 1, 1, 1, precision="fp32")
    feeds = rnn_feeds("lstm", 2, False, 1024, 1024, 1, 1, 1, False, False)
    from tf2rt.backends.cuda.launch import l2_set_aside_now

    want = engine.run(feeds, backend="reference")
    before = l2_set_aside_now()
    runner = engine.runner("cuda")
    got = runner.run(feeds)
    info = runner.describe()["recurrent"][0]
    measured = info["measured_us"]
    from tf2rt.backends.cuda import FUSE_CANDIDATE

    forms = {"step", "step+l2", "step+pf", "step+l2+pf"} | ({"step+fuse"} if FUSE_CANDIDATE else set())
    assert forms <= set(measured), measured
    kept_l2 = info["reason"] in (f"first-run measurement: {f} faster" for f in ("step+l2", "step+l2+pf"))
    assert ("weights" in info) == kept_l2 and (info["engine"] == "step" or not kept_l2), info
    for k in want:
        assert np.abs(got[k] - want[k]).max() <= 1e-4, k
    limits = device_limits()
    specs = runner.executor.chains[0].specs
    x = torch.randn(1, 1, 1024, device="cuda")
    plain, _ = make_stack(specs, 1, 1, "float32", limits, prefer="step", options=CudaOptions(l2_persist=False))
    kept, _ = make_stack(specs, 1, 1, "float32", limits, prefer="step", options=CudaOptions(l2_persist=True))
    assert kept.l2_persisting and not plain.l2_persisting
    pf, _ = make_stack(specs, 1, 1, "float32", limits, prefer="step", options=CudaOptions(l2_persist=True, gemv_l2pf="7"))
    want_x = [t.clone() for t in plain(x) if t is not None]
    for other in (kept, pf):  # prefetching and persisting change no value
        for a, b in zip(want_x, [t for t in other(x) if t is not None]):
            assert torch.equal(a, b)
    runner.close()  # whatever it kept, the context's persisting L2 is as it was before it
    if kept_l2:
        assert l2_set_aside_now() == before


@pytest.mark.gpu
@pytest.mark.parametrize("cell,dtype", [("lstm", "float32"), ("gru", "float32"), ("lstm", "float16")])
def test_held_loads_from_the_rows_tail_every_other_call_change_no_value(cell, dtype):
    """TF2RT_CUDA_GEMV_ALT=1 at H=1024, batch 1, given states (rows longer than the loads a
    lane holds): over eager calls and replays of a captured call, both parities, the outputs
    equal the plain form's exactly, and the last layer counts every call."""
    torch = _gpu()
    from tf2rt.backends.cuda.options import CudaOptions
    from tf2rt.backends.cuda.persistent import device_limits
    from tf2rt.backends.cuda.rnn import make_stack
    from tf2rt.backends.cuda.single_step import gemv_blocks

    case = RnnCase(seq_len=1, input_size=1024, hidden=1024, batch=1, layers=2, cell=cell, seed=7, initial=True)
    make_weights(case)
    specs = node_specs(case)
    limits = device_limits()
    alt, _ = make_stack(specs, 1, 1, dtype, limits, prefer="step", options=CudaOptions(gemv_alt=True))
    plain, _ = make_stack(specs, 1, 1, dtype, limits, prefer="step", options=CudaOptions(), weights_of=alt)
    assert alt.calls is not None and plain.calls is None
    tdt = getattr(torch, dtype)
    x = torch.randn(1, 1, 1024, device="cuda", dtype=tdt)
    h0 = torch.randn(2, 1, 1024, device="cuda", dtype=tdt)
    c0 = torch.randn(2, 1, 1024, device="cuda", dtype=tdt) if cell == "lstm" else None
    want = [t.clone() for t in plain(x, h0, c0) if t is not None]
    for _ in range(3):
        assert all(torch.equal(w, g) for w, g in zip(want, [t for t in alt(x, h0, c0) if t is not None]))
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        outs = [t for t in alt(x, h0, c0) if t is not None]
    for _ in range(3):
        graph.replay()
        torch.cuda.synchronize()
        assert all(torch.equal(w, g) for w, g in zip(want, outs))
    assert int(alt.calls[0]) == 6 * gemv_blocks(alt.problem)[0]

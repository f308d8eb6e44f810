"""The ops around recurrent stacks on the cuda backend: layout and type ops as views.

On the CPU: the graph executor (torch ops, torch.nn / step-loop stacks) runs every engine's
Transpose / Reshape / Squeeze / Concat / Cast around its recurrent nodes without a copy
(GraphExecutor.copies) and still matches the reference backend and onnxruntime; copies of
a whole recurrent output become output targets with the right strides. Kernel builds that
read x and write outputs in another type compile (NVRTC). On the GPU (marked gpu): the
captured call of typical engines makes no copy at all, and matches the reference backend.
"""

from __future__ import annotations

import numpy as np
import pytest

from helpers.rnn_networks import build_rnn, rnn_feeds

from tf2rt.backends.cuda.plan import DeviceLimits

torch = pytest.importorskip("torch")

LAYOUT_OPS = {"Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Concat", "Identity"}


def _executor(model, rnn_dtype=None):
    from tf2rt.backends.cuda.graph import GraphExecutor

    return GraphExecutor(model, DeviceLimits(), device="cpu", rnn_dtype=rnn_dtype)


def _run(ex, feeds):
    out = ex({k: torch.from_numpy(v) for k, v in feeds.items()})
    return {k: v.float().numpy() for k, v in out.items()}


def _layout_copies(engine, ex):
    names = {n.name for n in engine.onnx.graph.node if n.op_type in LAYOUT_OPS}
    return [c for c in ex.copies if c in names]


SHAPES = [(1, 1), (4, 1), (1, 6), (4, 6)]


@pytest.mark.parametrize("op", ["lstm", "gru"])
@pytest.mark.parametrize("bidir", [False, True])
@pytest.mark.parametrize("N,S", SHAPES)
def test_fp32_engines_make_no_copy_around_the_stack(op, bidir, N, S):
    H, E = 7, 5
    engine, _ = build_rnn(op, 2, bidir, H, E, N, S, 3)
    feeds = rnn_feeds(op, 2, bidir, H, E, N, S, 3, False, False)
    ex = _executor(engine.onnx)
    got = _run(ex, feeds)
    assert ex.copies == []  # every layout op around the stack is a view
    want = engine.run(feeds, backend="reference")
    ort = engine.run(feeds, backend="onnxruntime")
    for k in want:
        np.testing.assert_allclose(got[k], want[k], atol=1e-5, rtol=0, err_msg=k)
        np.testing.assert_allclose(got[k], ort[k], atol=1e-5, rtol=0, err_msg=k)


@pytest.mark.parametrize("op", ["lstm", "gru"])
@pytest.mark.parametrize("N,S", SHAPES)
def test_states_and_sequence_lengths_stay_views(op, N, S):
    H, E = 6, 4
    engine, _ = build_rnn(op, 2, False, H, E, N, S, 4, seq=True, states=True)
    feeds = rnn_feeds(op, 2, False, H, E, N, S, 4, True, True)
    ex = _executor(engine.onnx)
    got = _run(ex, feeds)
    assert ex.copies == []  # the per-layer slices of the batch-major states: one view
    want = engine.run(feeds, backend="reference")
    for k in want:
        np.testing.assert_allclose(got[k], want[k], atol=1e-5, rtol=0, err_msg=k)


@pytest.mark.parametrize("N,S", SHAPES)
def test_fp16_engines_copy_only_where_the_graph_rounds(N, S):
    """An fp16 engine computes its recurrent nodes in float32 between Casts: the only
    copies left are the roundings to fp16 (x, and each output), never a layout op, and the
    Casts back to float32 cost nothing."""
    engine, _ = build_rnn("lstm", 2, False, 8, 6, N, S, 5, precision="fp16")
    feeds = rnn_feeds("lstm", 2, False, 8, 6, N, S, 5, False, False)
    ex = _executor(engine.onnx)
    got = _run(ex, feeds)
    assert _layout_copies(engine, ex) == []
    assert sorted(ex.copies) == sorted(["rnn/l0 input", "output y", "output h_n", "output c_n"])
    want = engine.run(feeds, backend="reference")
    for k in want:
        np.testing.assert_allclose(got[k], want[k], atol=2e-3, rtol=0, err_msg=k)


@pytest.mark.parametrize("N,S", [(1, 1), (4, 1), (4, 6)])
def test_a_copied_recurrent_output_becomes_the_stacks_target(N, S):
    """A stack in bfloat16 in a float32 engine: the outputs need a type copy each, which
    the executor learns as targets: y batch-major [B, T, H], h_n/c_n [B, L, H]."""
    H, L = 8, 2
    engine, _ = build_rnn("lstm", L, False, H, 6, N, S, 6)
    feeds = rnn_feeds("lstm", L, False, H, 6, N, S, 6, False, False)
    ex = _executor(engine.onnx, rnn_dtype="bfloat16")
    got = _run(ex, feeds)
    assert sorted(ex.copies) == ["output c_n", "output h_n", "output y"]
    t = ex.chains[0].targets
    assert set(t) == {"y", "hn", "cn"}
    # y [T, D=1, B, H] -> [B, T, H]; h_n [L, B, H] -> [B, L, H] (size-1 dims: stride 0)
    assert t["y"][0] == torch.float32 and t["y"][1] == N * S * H
    assert t["y"][2] == ((H if S > 1 else 0), 0, (S * H if N > 1 else 0), 1) and t["y"][3] == 0
    assert t["hn"][2] == (H, (L * H if N > 1 else 0), 1) == t["cn"][2]
    want = engine.run(feeds, backend="reference")
    for k in want:
        np.testing.assert_allclose(got[k], want[k], atol=3e-2, rtol=0, err_msg=k)


def test_output_target_and_adjacent_concat():
    from tf2rt.backends.cuda.views import adjacent_concat, output_target

    buf = torch.arange(2 * 3 * 4.0).reshape(2, 3, 4)
    assert output_target(buf, buf.permute(1, 0, 2)) == ((4, 8, 1), 0)
    assert output_target(buf, buf) == ((12, 4, 1), 0)
    assert output_target(buf, buf[:, :2]) is None  # not all of it
    assert output_target(buf, buf.reshape(6, 4)[::2]) is None
    parts = [buf[0:1], buf[1:2]]
    v = adjacent_concat(parts, 0)
    assert v is not None and v.data_ptr() == buf.data_ptr() and torch.equal(v, buf)
    assert adjacent_concat([buf[1:2], buf[0:1]], 0) is None  # out of order: a real concat
    assert adjacent_concat([buf[:, 0:1], buf[:, 1:3]], 1) is not None
    assert adjacent_concat([buf[0:1], buf[0:1]], 0) is None


def _brute_target(buf, view):
    """output_target by brute force: every element's copy position, then an affine fit."""
    n = buf.numel()
    if view.numel() != n:
        return None
    idx = torch.arange(buf.untyped_storage().nbytes() // buf.element_size())
    v_addr = idx.as_strided(view.shape, view.stride(), view.storage_offset()).reshape(-1).tolist()
    place = {a: i for i, a in enumerate(v_addr)}
    if len(place) != n:
        return None
    b_addr = idx.as_strided(buf.shape, buf.stride(), buf.storage_offset())
    pos = np.array([place.get(a, -1) for a in b_addr.reshape(-1).tolist()]).reshape(tuple(buf.shape))
    if (pos < 0).any() or len(set(pos.reshape(-1).tolist())) != n:
        return None
    base = int(pos.reshape(-1)[0])
    strides = tuple(0 if size == 1 else int(pos[tuple(1 if i == k else 0 for i in range(pos.ndim))]) - base
                    for k, size in enumerate(pos.shape))
    fit = base + sum(np.arange(size).reshape([-1 if i == k else 1 for i in range(pos.ndim)]) * st
                     for k, (size, st) in enumerate(zip(pos.shape, strides)))
    return (strides, base) if np.array_equal(fit, pos) else None


@pytest.mark.parametrize("seed", range(40))
def test_output_target_matches_brute_force_on_random_views(seed):
    """Random buffers (plain, permuted, slices of a larger one) seen through random chains
    of the views the graph makes (permute, reshape, slice, squeeze/unsqueeze): the computed
    target equals the brute-force one, and where one exists the copy laid out by it holds
    the buffer."""
    from tf2rt.backends.cuda.views import output_target

    rng = np.random.default_rng(seed)
    shape = [int(s) for s in rng.integers(1, 5, size=rng.integers(2, 5))]
    base = torch.arange(float(2 * np.prod(shape) + 3))
    buf = base[3:3 + int(np.prod(shape))].reshape(shape)
    if rng.random() < 0.5:
        buf = buf.permute(*rng.permutation(len(shape)).tolist())
    view = buf
    for _ in range(rng.integers(1, 4)):
        op = rng.integers(0, 4)
        if op == 0:
            view = view.permute(*rng.permutation(view.dim()).tolist())
        elif op == 1:
            try:
                view = view.view(-1) if rng.random() < 0.5 else view.view(view.shape[0], -1)
            except RuntimeError:
                pass
        elif op == 2:
            view = view.unsqueeze(int(rng.integers(0, view.dim() + 1)))
        elif view.shape[0] > 1 and rng.random() < 0.3:
            view = view[1:]  # no longer all of the buffer
        else:
            view = view.squeeze()
    got = output_target(buf, view)
    assert got == _brute_target(buf, view)
    if got is not None:
        copy = view.reshape(-1).clone()  # its own storage, offset 0
        assert torch.equal(copy.as_strided(buf.shape, got[0], got[1]), buf)


def test_output_target_of_a_large_output_is_quick():
    """The geometry check is O(elements) in bounded memory and remembered: a 6.5M-element
    y seen through a transpose (a batch-major engine's output) takes well under a second."""
    import time

    from tf2rt.backends.cuda.views import output_target

    y = torch.empty(100, 1, 64, 1024)  # [T, D, B, H]
    view = y.permute(2, 0, 1, 3).reshape(64, 100, 1024)
    t0 = time.perf_counter()
    assert output_target(y, view) == ((1024, 0, 100 * 1024, 1), 0)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    assert output_target(y, view) == ((1024, 0, 100 * 1024, 1), 0)
    assert first < 5.0 and time.perf_counter() - t0 < 0.01


def test_casts_are_free_where_exact_and_owed_where_they_round():
    from tf2rt.backends.cuda.views import Lazy, cast, materialize

    t16 = torch.tensor([1.0 / 3.0]).half()
    v = Lazy(t16.float(), torch.float32, torch.float16)  # fp32 values of an fp16 stack
    assert cast(v, torch.float16).t is v.t  # exact: nothing to do
    out, n = materialize(cast(v, torch.float16))
    assert n == 1 and out.dtype == torch.float16 and out.item() == t16.item()
    x = Lazy.of(torch.tensor([1.0 / 3.0]))
    r = cast(cast(x, torch.float16), torch.float32)  # fp32 -> fp16 -> fp32: a rounding owed
    out, n = materialize(r)
    assert out.dtype == torch.float32 and out.item() == t16.float().item()


# ---- kernel builds (NVRTC on the CPU) ----------------------------------------------------
@pytest.fixture(scope="module")
def nvrtc():
    import platform

    from nvrtc import Nvrtc, find_nvrtc

    path = find_nvrtc()
    if path is None:
        if platform.system() == "Linux" and platform.machine() == "x86_64":
            pytest.fail("NVRTC is missing: the test extras install nvidia-cuda-nvrtc (pip install -e '.[test]')")
        pytest.skip("the nvidia-cuda-nvrtc wheel exists for Linux x86_64 only")
    return Nvrtc(path)


@pytest.mark.parametrize("xtype,otype", [(0, 0), (0, 1), (2, 0)])
def test_other_input_and_output_types_compile(nvrtc, xtype, otype):
    from cuda_models import RnnCase, make_weights, node_specs

    from tf2rt.backends.cuda.persistent import NDESC, gate_defines, kernel_source
    from tf2rt.backends.cuda.plan import make_plan
    from tf2rt.backends.cuda.rnn import problem_for
    from tf2rt.backends.cuda.single_step import step_defines

    case = RnnCase(cell="lstm", hidden=64, input_size=64, batch=1, seq_len=1, layers=2)
    make_weights(case)
    for dtype in ("float16", "float32"):
        problem = problem_for(node_specs(case), 1, 1, dtype)
        cfg = make_plan(problem, DeviceLimits(), prefer="persistent").kernel
        defines = {**cfg.defines(), **gate_defines(), "NDESC": NDESC, "XTYPE": xtype, "OTYPE": otype,
                   "YTYPE": 1 if dtype == "float16" else 0}
        ok, out = nvrtc.compile(kernel_source(), ["--std=c++17", "-arch=compute_90"]
                                + [f"-D{k}={v}" for k, v in defines.items()])
        assert ok and ".entry persistent_rnn" in out, out
        defines = {**step_defines(problem), "XTYPE": xtype, "OTYPE": otype}
        ok, out = nvrtc.compile(kernel_source("single_step.cu"), ["--std=c++17", "-arch=sm_90"]
                                + [f"-D{k}={v}" for k, v in defines.items()])
        assert ok and ".entry step_gates" in out and ".entry step_gemv" in out, out


# ---- on the GPU --------------------------------------------------------------------------
def _gpu():
    if not torch.cuda.is_available():
        pytest.skip("needs an NVIDIA GPU with CUDA")
    pytest.importorskip("cupy")


@pytest.mark.gpu
@pytest.mark.parametrize("op", ["lstm", "gru"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("N,S", [(1, 1), (8, 1), (64, 1), (1, 7), (8, 7)])
def test_engines_on_the_gpu_make_no_copy_around_the_stack(op, precision, N, S):
    """Through the API: the captured call of a typical engine launches nothing but its
    recurrent stack (fp16 engines with rnn_precision="fp16": the persistent kernel and the
    single-step stack read fp32 x and write fp32 outputs themselves; cuDNN's outputs are
    copied to fp32)."""
    _gpu()
    H, E = 64, 64
    engine, _ = build_rnn(op, 2, False, H, E, N, S, 7, precision=precision)
    feeds = rnn_feeds(op, 2, False, H, E, N, S, 7, False, False)
    want = engine.run(feeds, backend="reference")
    r = engine.runner("cuda", rnn_precision="fp16" if precision == "fp16" else None)
    got = r.run(feeds)
    got = r.run(feeds)  # replayed from the captured graph
    ex = r.executor
    chain = ex.chains[0]
    layout = _layout_copies(engine, ex)
    assert layout == []
    if precision == "fp32" or chain.plan.engine in ("step", "persistent"):
        assert ex.copies == [], (chain.plan.engine, ex.copies)
    # as test_cuda_backend.py: cuDNN's own fp32 RNN differs from the reference by up to 7.3e-4
    tol = (1e-3 if chain.plan.engine == "cudnn" else 1e-4) if precision == "fp32" else 2e-2
    for k in want:
        err = float(np.abs(got[k] - want[k]).max())
        print(f"{op} {precision} N={N} S={S} {chain.plan.engine} {k} max abs err {err:.2e} copies {ex.copies}")
        assert err <= tol, k


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_layerwise_persistent_stacks_write_the_engines_outputs_too(precision):
    """A stack the persistent kernel runs one launch a layer (bidirectional GRU): the last
    layer's launch writes y, h_n in the engine's layout and type, so nothing is copied
    (an H100 run found three output copies on fp16 layer-at-a-time stacks)."""
    _gpu()
    H, E, N, S = 64, 64, 2, 7
    engine, _ = build_rnn("gru", 2, True, H, E, N, S, 7, precision=precision)
    feeds = rnn_feeds("gru", 2, True, H, E, N, S, 7, False, False)
    want = engine.run(feeds, backend="reference")
    r = engine.runner("cuda", prefer="persistent", rnn_precision="fp16" if precision == "fp16" else None)
    r.run(feeds)
    got = r.run(feeds)
    chain = r.executor.chains[0]
    d = r.describe()["recurrent"][0]
    assert chain.plan.engine == "persistent" and chain.plan.mode == "layerwise", d
    assert r.executor.copies == [], (r.executor.copies, d)
    for k in want:
        err = float(np.abs(got[k] - want[k]).max())
        assert err <= (1e-4 if precision == "fp32" else 2e-2), (k, err)


@pytest.mark.gpu
def test_output_target_inside_a_graph_capture_is_found_on_the_host():
    """A layout first met while a CUDA graph is being captured (the runner captures its
    executor's call): the check cannot launch there, so it runs on the host and still finds
    the layout; the captured graph replays cleanly."""
    _gpu()
    from tf2rt.backends.cuda.views import _strided_target, output_target

    y = torch.zeros(9, 1, 5, 7, device="cuda")
    _strided_target.cache_clear()  # met for the first time inside the capture
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        found = output_target(y, y.permute(2, 0, 1, 3).reshape(5, 9, 7))
        out = y + 2
    graph.replay()
    torch.cuda.synchronize()
    assert found == ((7, 0, 9 * 7, 1), 0)
    assert torch.equal(out, torch.full_like(y, 2.0))

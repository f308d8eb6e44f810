"""The cuda backend's graph executor on the CPU (torch ops + torch.nn / step-loop stacks),
against the reference backend and onnxruntime; and the backend's behaviour without a GPU."""

from __future__ import annotations

import numpy as np
import pytest

from cuda_models import RnnCase, build_model, make_inputs, make_weights, run_onnxruntime
from helpers.rnn_networks import build_rnn, rnn_feeds

from tf2rt.backends.cuda.plan import DeviceLimits
from tf2rt.errors import UnsupportedError

torch = pytest.importorskip("torch")  # the executor's runtime (installed with the test extra)


def _executor(model, prefer=None):
    from tf2rt.backends.cuda.graph import GraphExecutor

    return GraphExecutor(model, DeviceLimits(), prefer=prefer, device="cpu")


def _run(ex, feeds):
    out = ex({k: torch.from_numpy(v) for k, v in feeds.items()})
    return {k: v.float().numpy() for k, v in out.items()}


@pytest.mark.parametrize("op,layers,bidir,seq,states", [
    ("lstm", 2, False, False, True), ("lstm", 3, False, True, True), ("gru", 2, True, True, True),
    ("gru", 1, False, False, False), ("relu", 2, False, False, True), ("tanh", 2, True, True, False)])
def test_engine_graph_matches_reference_backend(op, layers, bidir, seq, states):
    H, E, N, S = 7, 5, 3, 6
    engine, _ = build_rnn(op, layers, bidir, H, E, N, S, 17 + layers, seq=seq, states=states)
    feeds = rnn_feeds(op, layers, bidir, H, E, N, S, 17 + layers, seq, states)
    want = engine.run(feeds, backend="reference")
    ex = _executor(engine.onnx)
    # the engine's per-layer nodes and the glue between them become one stack
    assert len(ex.chains) == 1 and len(ex.chains[0].nodes) == layers
    got = _run(ex, feeds)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], atol=1e-5, rtol=0, err_msg=k)
    d = ex.describe()[0]
    assert d["layers"] == layers and d["engine"] in ("cudnn", "torch")


@pytest.mark.parametrize("kw", [
    dict(cell="lstm", layers=2, peepholes=True, clip=2.0, initial=True),
    dict(cell="gru", layers=2, lbr=0, seq_lens=True, bidirectional=True),
    dict(cell="lstm", layers=1, reverse=True, seq_lens=True),
])
def test_onnx_forms_cudnn_lacks_run_in_the_step_loop(kw):
    case = RnnCase(hidden=9, input_size=4, batch=3, seq_len=5, seed=5, **kw)
    make_weights(case)
    model, feeds = build_model(case), make_inputs(case)
    want = run_onnxruntime(model, feeds)
    ex = _executor(model)
    got = _run(ex, feeds)
    assert all(c["engine"] == "torch" for c in ex.describe())
    for k in want:
        np.testing.assert_allclose(got[k], want[k], atol=1e-5, rtol=0, err_msg=k)


def test_unknown_op_is_a_clear_error():
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Hardmax", ["x"], ["y"], name="hm")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    with pytest.raises(UnsupportedError, match="Hardmax.*hm"):
        _executor(helper.make_model(g))


def test_backend_without_gpu_says_why():
    import tf2rt.backends.cuda as cuda

    if cuda.available():  # pragma: no cover - GPU machines run test_cuda_backend.py
        pytest.skip("a GPU is present")
    assert cuda.why_unavailable()
    engine, _ = build_rnn("lstm", 1, False, 4, 3, 1, 2, 0)
    with pytest.raises(UnsupportedError, match="cuda backend is not available|not available here"):
        engine.runner("cuda")

"""The cuda backend's graph executor on a CPU torch device: every op of its table that the
conformance layers use, and the step-loop recurrent stack with per-direction activation
parameters, against the same formulas and the reference backend. (The GPU-only parts - the
persistent kernels, CUDA graphs - are covered by the gpu-marked tests.)"""

from __future__ import annotations

import numpy as np
import pytest

from helpers.rnn_networks import build_rnn, rnn_feeds
from tf2rt.network.layers_rnn import CellOptions

import test_conformance as tc

torch = pytest.importorskip("torch")


def _executor(engine, **kw):
    from tf2rt.backends.cuda.graph import GraphExecutor
    from tf2rt.backends.cuda.plan import DeviceLimits

    return GraphExecutor(engine.onnx, DeviceLimits(), device="cpu", **kw)


def _numpy(out):
    return {k: np.asarray(v.cpu() if hasattr(v, "cpu") else v) for k, v in out.items()}


@pytest.mark.parametrize("name", list(tc.SIMPLE))
def test_layer_ops(name):
    build, inputs, formula = tc.SIMPLE[name]
    engine = tc._one_layer(build, inputs)
    got = list(_numpy(_executor(engine)({k: torch.as_tensor(v) for k, v in inputs.items()})).values())
    want = formula(*[v.astype(np.float64) if v.dtype == np.float32 else v for v in inputs.values()])
    want = want if isinstance(want, tuple) else (want,)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.astype(np.float64), w, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("feature", ["peepholes", "hard_sigmoid", "clip"])
def test_step_loop_lstm_forms(feature):
    """Bidirectional LSTMs cuDNN cannot run (different hard_sigmoid alpha/beta per direction:
    ONNX consumes activation_alpha/beta in activation order) run as the step loop."""
    H, E, N, S = 5, 3, 2, 6

    def options(i, rng):
        if feature == "peepholes":
            return CellOptions(peepholes={g: rng.uniform(-0.5, 0.5, H).astype(np.float32)
                                          for g in ("input", "forget", "output")})
        if feature == "hard_sigmoid":
            return CellOptions(recurrent_activation="hard_sigmoid", recurrent_alpha=0.2 + 0.05 * i,
                               recurrent_beta=0.5 - 0.1 * i)
        return CellOptions(clip=0.6)

    engine, _w = build_rnn("lstm", 1, True, H, E, N, S, 11, options=options)
    x = rnn_feeds("lstm", 1, True, H, E, N, S, 11, False, False)["x"]
    want = engine.run({"x": x}, backend="reference")
    got = _numpy(_executor(engine, prefer="torch")({"x": torch.as_tensor(x)}))
    for k, v in want.items():
        np.testing.assert_allclose(got[k], v, atol=1e-5)


def test_stacked_bidirectional_lstm_and_rnn_run_on_the_persistent_kernel():
    """Stacked bidirectional LSTM/RNN stacks were once held back from the kernel after a GPU
    conformance failure; the kernel's own per-direction errors on those engines later
    measured 1e-7 to 6e-7 (an H200, with and without a CUDA graph), so the planner treats
    them like any other stack: the kernel where it fits, cuDNN or the step loop otherwise."""
    from tf2rt.backends.cuda.plan import DeviceLimits, make_plan
    from tf2rt.backends.cuda.problem import RnnProblem

    def plan(cell, layers, clip=None, prefer=None):
        p = RnnProblem(cell=cell, hidden=64, input_size=32, batch=2, seq_len=10, layers=layers, directions=2, clip=clip)
        return make_plan(p, DeviceLimits(), prefer=prefer)

    assert plan("lstm", 2).engine == "persistent" and plan("rnn", 3, prefer="persistent").engine == "persistent"
    assert plan("lstm", 2, clip=1.0).engine == "persistent"  # a form only the kernel runs
    assert plan("lstm", 2, prefer="cudnn").engine == "cudnn"
    assert plan("gru", 2).engine == "persistent" and plan("lstm", 1).engine == "persistent"


def test_fill_of_a_run_time_shape():
    """The fill layer (ONNX Expand of a scalar to a shape computed from an input)."""
    from tf2rt.engine import build_engine
    from tf2rt.network import Network

    net = Network("fill")
    x = net.add_input("x", "float32", (None, 3))
    shape = net.add_shape(x, name="shape").output
    value = net.add_constant((), np.array(0.25, np.float32), name="value").output
    filled = net.add_fill(shape, value, [None, 3], name="filled").output
    net.mark_output(net.add_elementwise(filled, x, "sum", name="out").output)
    engine = build_engine(net)
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    got = _numpy(_executor(engine)({"x": torch.as_tensor(x)}))["out"]
    np.testing.assert_array_equal(got, x + 0.25)


def test_dense_head_is_one_gemm_and_matches_onnxruntime(tmp_path):
    """A MatMul by a constant followed by the Add of a constant bias (the char-RNN's dense
    head, [batch*time, H] @ [H, V] + [V]) runs as one MatMulAdd node; a MatMul whose result
    has another use, or an Add of a non-constant, stays as it is. Outputs equal onnxruntime."""
    from tf2rt import convert
    from tf2rt.cli.demo import EXAMPLE
    from tf2rt.engine import build_engine
    from tf2rt.network import Network

    engine = convert(EXAMPLE / "model", tmp_path / "charrnn.onnx", states=True)
    ex = _executor(engine)
    ops = [n.op_type for n in ex.nodes]
    assert "MatMulAdd" in ops and "MatMul" not in ops and "Add" not in ops, ops
    rng = np.random.default_rng(3)
    feeds = {"input_data": rng.integers(0, 65, (2, 7)).astype(np.int32)}
    for name, _ in engine.states:
        feeds[name] = rng.standard_normal((2, 2, 192)).astype(np.float32)
    got = _numpy(ex({k: torch.as_tensor(v) for k, v in feeds.items()}))
    want = engine.run(feeds)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-5)

    # the product used twice (Add and an output): no fusion
    net = Network("two_uses")
    x = net.add_input("x", "float32", (3, 4))
    w = net.add_constant((4, 5), rng.standard_normal((4, 5)).astype(np.float32), name="w").output
    b = net.add_constant((5,), rng.standard_normal(5).astype(np.float32), name="b").output
    mm = net.add_matrix_multiply(x, "none", w, "none", name="mm").output
    net.mark_output(net.add_elementwise(mm, b, "sum", name="plus").output, "plus")
    net.mark_output(mm, "product")
    engine = build_engine(net)
    ex = _executor(engine)
    assert "MatMulAdd" not in [n.op_type for n in ex.nodes]
    xv = rng.standard_normal((3, 4)).astype(np.float32)
    got = _numpy(ex({"x": torch.as_tensor(xv)}))
    want = engine.run({"x": xv})
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6)


def test_a_repeated_call_uploads_no_new_constants(monkeypatch):
    """What a captured CUDA graph needs: host values the ops compute afresh on each call (the
    positions of a backward slice) reach the device once, by content, on the first call;
    the next call finds them (a host-to-device copy inside a capture is not allowed)."""
    build, inputs, formula = tc.SIMPLE["slice"]
    engine = tc._one_layer(build, inputs)
    ex = _executor(engine)
    feeds = {k: torch.as_tensor(v) for k, v in inputs.items()}
    first = _numpy(ex(feeds))
    n = len(ex.device_consts)

    def upload(*a, **k):
        raise AssertionError("a host value was uploaded again in a repeated call")

    with monkeypatch.context() as m:  # every way a host value becomes a tensor
        for name in ("tensor", "as_tensor", "from_numpy"):
            m.setattr(torch, name, upload)
        second = _numpy(ex(feeds))
    assert len(ex.device_consts) == n
    want = formula(*inputs.values())
    for got in (first, second):
        np.testing.assert_array_equal(got["out0"], want)
    # equal small values share one device tensor; the content is the key
    a, b = np.arange(5), np.arange(5)
    assert ex.dev(a) is ex.dev(b) and ex.dev(np.arange(6)) is not ex.dev(a)


def _gather_model(through_reshape: bool):
    """table [5, 3] (constant); out = table[ids] and, from computed indices, table[ids + 3]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    table = np.arange(15, dtype=np.float32).reshape(5, 3)
    nodes = []
    src = "ids"
    if through_reshape:
        nodes.append(helper.make_node("Reshape", ["ids", "shape"], ["ids_flat"], name="flat"))
        src = "ids_flat"
    nodes += [helper.make_node("Gather", ["table", src], ["out"], name="lookup"),
              helper.make_node("Add", ["ids", "three"], ["shifted"], name="shift"),
              helper.make_node("Gather", ["table", "shifted"], ["out2"], name="lookup2")]
    inits = [numpy_helper.from_array(table, "table"), numpy_helper.from_array(np.array([4], np.int64), "shape"),
             numpy_helper.from_array(np.array(3, np.int64), "three")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("ids", TensorProto.INT64, [4])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, [4, 3]),
                           helper.make_tensor_value_info("out2", TensorProto.FLOAT, [4, 3])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), table


@pytest.mark.parametrize("through_reshape", [False, True])
def test_fed_gather_indices_are_checked_on_the_host(through_reshape):
    """An index fed into a Gather of a constant table is checked before the call (on a GPU an
    index outside the table is a device fault that ends every later CUDA call of the process),
    with the input, the node and the range ONNX allows named; inside [-rows, rows) it runs."""
    from tf2rt.backends.cuda.graph import GraphExecutor
    from tf2rt.backends.cuda.plan import DeviceLimits
    from tf2rt.errors import Tf2rtError

    model, table = _gather_model(through_reshape)
    ex = GraphExecutor(model, DeviceLimits(), device="cpu")
    assert ex.index_inputs == {"ids": [("lookup", 5)]}  # lookup2's indices are computed, not fed
    for bad in (5, -6, 99):
        with pytest.raises(Tf2rtError, match=rf"input 'ids' holds index {bad}, outside \[-5, 4\] of Gather 'lookup'"):
            ex.check_indices({"ids": np.array([0, bad, 1, 2], np.int64)})
    ids = np.array([-5, -1, 0, 4], np.int64)
    ex.check_indices({"ids": ids})
    got = _numpy(ex({"ids": torch.as_tensor(ids)}))
    np.testing.assert_array_equal(got["out"], table[ids])
    # computed indices outside the table wrap around instead of faulting the device
    np.testing.assert_array_equal(got["out2"], table[(ids + 3) % 5])


def test_float_indices_cast_in_the_graph_are_checked_truncated():
    """Keras' Embedding casts float inputs to int32 before its Gather: the host check follows
    the Cast (values truncated toward zero) and refuses NaN."""
    from onnx import TensorProto, helper, numpy_helper

    from tf2rt.backends.cuda.graph import GraphExecutor
    from tf2rt.backends.cuda.plan import DeviceLimits
    from tf2rt.errors import Tf2rtError

    table = np.arange(8, dtype=np.float32).reshape(4, 2)
    nodes = [helper.make_node("Cast", ["x"], ["xi"], to=TensorProto.INT32, name="to_int"),
             helper.make_node("Gather", ["table", "xi"], ["out"], name="embedding")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, [3, 2])],
                          [numpy_helper.from_array(table, "table")])
    ex = GraphExecutor(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), DeviceLimits(), device="cpu")
    assert ex.index_inputs == {"x": [("embedding", 4)]}
    ex.check_indices({"x": np.array([0.0, 3.9, -4.5], np.float32)})  # 0, 3, -4
    with pytest.raises(Tf2rtError, match=r"holds index 4, outside \[-4, 3\]"):
        ex.check_indices({"x": np.array([4.2, 0, 0], np.float32)})
    with pytest.raises(Tf2rtError, match="NaN"):
        ex.check_indices({"x": np.array([np.nan, 0, 0], np.float32)})
    got = _numpy(ex({"x": torch.tensor([0.0, 3.9, -1.0])}))["out"]
    np.testing.assert_array_equal(got, table[[0, 3, -1]])

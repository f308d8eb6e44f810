"""The reference backend's op functions vs onnxruntime on single-node ONNX graphs (edge cases)."""

from __future__ import annotations

import numpy as np
import pytest

import oracles
from tf2rt.backends.reference.interpreter import evaluate_node
from tf2rt.errors import Tf2rtError, UnsupportedError


def _ort(node, inputs: dict, initializers: dict | None = None):
    from onnx import helper, numpy_helper

    ort = oracles.onnxruntime()
    dt = {np.dtype(np.float32): 1, np.dtype(np.int64): 7, np.dtype(np.int32): 6, np.dtype(np.float16): 10}
    ins = [helper.make_tensor_value_info(k, dt[v.dtype], v.shape) for k, v in inputs.items()]
    inits = [numpy_helper.from_array(v, k) for k, v in (initializers or {}).items()]
    outs = [helper.make_empty_tensor_value_info(o) for o in node.output]
    g = helper.make_graph([node], "g", ins, outs, initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, inputs)


CASES = {
    "slice_negative_step": (("Slice", ["x", "s", "e", "a", "st"]), {"s": [-1, 0], "e": [-(2**63), 4], "a": [0, 1],
                                                                    "st": [-2, 3]}),
    "slice_clamped": (("Slice", ["x", "s", "e"]), {"s": [1, -100], "e": [100, -1]}),
    "gather_negative": (("Gather", ["x", "i"]), {"i": [[-1, 0], [2, -3]]}),
    "topk_ties": (("TopK", ["t", "k"]), {"k": [3]}),
    "reshape_zero": (("Reshape", ["x", "sh"]), {"sh": [0, -1]}),
    "reduce_sum_axes": (("ReduceSum", ["x", "ax"]), {"ax": [0]}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_op_matches_onnxruntime(name):
    from onnx import helper

    (op, ins), consts = CASES[name]
    x = np.arange(20, dtype=np.float32).reshape(4, 5) - 7.5
    t = np.array([[1, 3, 3, 2, 3], [0, 0, 1, 0, 5]], np.float32)
    feeds = {"x": x} if "x" in ins else {"t": t}
    inits = {k: np.asarray(v, np.int64) for k, v in consts.items()}
    node = helper.make_node(op, ins, ["y0", "y1"] if op == "TopK" else ["y0"])
    want = _ort(node, feeds, inits)
    got = evaluate_node(node, [feeds.get(n, inits.get(n)) for n in ins])
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_unknown_op_is_a_clear_error():
    from onnx import helper

    with pytest.raises(UnsupportedError, match="no implementation of ONNX op 'RoiAlign'"):
        evaluate_node(helper.make_node("RoiAlign", ["a"], ["b"]), [np.zeros(1)])


def test_reference_takes_no_options():
    from tf2rt.backends import load
    from tf2rt.engine import build_engine
    from tf2rt.network import Network

    net = Network("i")
    net.mark_output(net.add_activation(net.add_input("x", "float32", (1,)), "relu").output)
    with pytest.raises(Tf2rtError, match="takes no options"):
        load(build_engine(net), "reference", threads=2)

"""The reference backend's Loop and If on hand-written ONNX graphs (optional M and cond,
carried values that change shape, no iterations, outer-scope reads, nesting), against
numpy and onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto as T  # noqa: E402
from onnx import helper, numpy_helper  # noqa: E402

from tf2rt.backends.reference.interpreter import Interpreter  # noqa: E402


def model(nodes, inputs, outputs, inits=()):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    return m


def both(m, feeds):
    ref = Interpreter(m).run(feeds)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in m.graph.output], sess.run(None, feeds)))
    return ref, got


def doubling_body():
    """x -> concat(x, x * scale) (the carried value doubles in length); cond: len < limit;
    scan: the iteration number. Reads `scale` and `limit` from the outer scope."""
    return helper.make_graph(
        [helper.make_node("Mul", ["x_in", "scale"], ["xs"]),
         helper.make_node("Concat", ["x_in", "xs"], ["x_out"], axis=0),
         helper.make_node("Shape", ["x_out"], ["len"]),
         helper.make_node("Less", ["len", "limit"], ["c1"]),
         helper.make_node("Squeeze", ["c1"], ["c"]),
         helper.make_node("Identity", ["i"], ["i_out"])],
        "body",
        [helper.make_tensor_value_info("i", T.INT64, []), helper.make_tensor_value_info("c_in", T.BOOL, []),
         helper.make_tensor_value_info("x_in", T.FLOAT, ["n"])],
        [helper.make_tensor_value_info("c", T.BOOL, []), helper.make_tensor_value_info("x_out", T.FLOAT, ["m"]),
         helper.make_tensor_value_info("i_out", T.INT64, [])])


@pytest.mark.parametrize("with_m,with_cond", [(True, False), (False, True), (True, True), (False, False)])
def test_loop_optional_inputs_and_growing_values(with_m, with_cond):
    inits = [numpy_helper.from_array(np.array(3.0, np.float32), "scale"),
             numpy_helper.from_array(np.array([16], np.int64), "limit")]
    ins = [helper.make_tensor_value_info("x0", T.FLOAT, ["k"])]
    if with_m:
        ins.append(helper.make_tensor_value_info("M", T.INT64, []))
    if with_cond:
        ins.append(helper.make_tensor_value_info("cond", T.BOOL, []))
    loop = helper.make_node("Loop", ["M" if with_m else "", "cond" if with_cond else "", "x0"], ["x", "its"],
                            body=doubling_body())
    m = model([loop], ins, [helper.make_tensor_value_info("x", T.FLOAT, ["a"]),
                            helper.make_tensor_value_info("its", T.INT64, ["b"])], inits)
    for trip, start in ((2, True), (10, True), (0, True), (5, False)):
        if (not with_m and trip != 10) or (not with_cond and not start):
            continue
        feeds = {"x0": np.array([1.0, 2.0], np.float32)}
        if with_m:
            feeds["M"] = np.array(trip, np.int64)
        if with_cond:
            feeds["cond"] = np.array(start)
        # numpy: the body's condition decides after every iteration (as onnxruntime does, cond input or not)
        x, its, go = feeds["x0"], [], start
        while go and (not with_m or len(its) < trip):
            its.append(len(its))
            x = np.concatenate([x, x * 3])
            go = len(x) < 16
        ref, got = both(m, feeds)
        for out in (ref, got):
            np.testing.assert_array_equal(out["x"], x)
            np.testing.assert_array_equal(out["its"], np.array(its, np.int64))


def test_loop_without_iterations_gives_declared_scan_shapes():
    body = helper.make_graph(
        [helper.make_node("Identity", ["c_in"], ["c"]), helper.make_node("Identity", ["table"], ["row"]),
         helper.make_node("Identity", ["v"], ["v_out"])],
        "body",
        [helper.make_tensor_value_info("i", T.INT64, []), helper.make_tensor_value_info("c_in", T.BOOL, []),
         helper.make_tensor_value_info("v", T.INT32, [2])],
        [helper.make_tensor_value_info("c", T.BOOL, []), helper.make_tensor_value_info("v_out", T.INT32, [2]),
         helper.make_tensor_value_info("row", T.FLOAT, [None, 3])])
    m = model([helper.make_node("Loop", ["M", "", "v0"], ["v", "rows"], body=body)],
              [helper.make_tensor_value_info("M", T.INT64, []), helper.make_tensor_value_info("v0", T.INT32, [2]),
               helper.make_tensor_value_info("table", T.FLOAT, ["r", 3])],
              [helper.make_tensor_value_info("v", T.INT32, [2]),
               helper.make_tensor_value_info("rows", T.FLOAT, ["n", "a", 3])])
    feeds = {"M": np.array(0, np.int64), "v0": np.array([7, 8], np.int32), "table": np.ones((4, 3), np.float32)}
    ref, got = both(m, feeds)
    for out in (ref, got):
        np.testing.assert_array_equal(out["v"], [7, 8])
        assert out["rows"].shape == (0, 0, 3) and out["rows"].dtype == np.float32  # unknown dims: 0 (as onnxruntime)
    feeds["M"] = np.array(2, np.int64)
    ref, got = both(m, feeds)
    for out in (ref, got):
        np.testing.assert_array_equal(out["rows"], np.ones((2, 4, 3), np.float32))


def test_if_reads_outer_values_and_nests():
    inner_then = helper.make_graph([helper.make_node("Add", ["x", "x"], ["t2"])], "it", [],
                                   [helper.make_tensor_value_info("t2", T.FLOAT, [2])])
    inner_else = helper.make_graph([helper.make_node("Neg", ["x"], ["e2"])], "ie", [],
                                   [helper.make_tensor_value_info("e2", T.FLOAT, [2])])
    then = helper.make_graph([helper.make_node("If", ["c2"], ["t1"], then_branch=inner_then,
                                               else_branch=inner_else)], "t", [],
                             [helper.make_tensor_value_info("t1", T.FLOAT, [2])])
    other = helper.make_graph([helper.make_node("Mul", ["x", "x"], ["e1"])], "e", [],
                              [helper.make_tensor_value_info("e1", T.FLOAT, [2])])
    m = model([helper.make_node("If", ["c1"], ["y"], then_branch=then, else_branch=other)],
              [helper.make_tensor_value_info("x", T.FLOAT, [2]), helper.make_tensor_value_info("c1", T.BOOL, [1]),
               helper.make_tensor_value_info("c2", T.BOOL, [])],
              [helper.make_tensor_value_info("y", T.FLOAT, [2])])
    x = np.array([1.5, -2.0], np.float32)
    for c1, c2, want in ((True, True, x + x), (True, False, -x), (False, True, x * x)):
        ref, got = both(m, {"x": x, "c1": np.array([c1]), "c2": np.array(c2)})
        for out in (ref, got):
            np.testing.assert_array_equal(out["y"], want)

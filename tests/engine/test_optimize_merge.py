"""The engine's duplicate-merging pass: TF graphs compute one shape or one zero state once per
use; the engine computes each once and gives the same results."""

from __future__ import annotations

import numpy as np

from tf2rt.engine import build_engine
from tf2rt.network import Network


def _net() -> Network:
    net = Network("dups")
    x = net.add_input("x", "float32", (None, 3))
    outs = []
    for k in range(2):  # the same run-time zero state, built twice as TF graphs do
        shape = net.add_shape(x, name=f"shape{k}").output
        rows = net.add_gather(shape, net.add_constant((1,), np.array([0], np.int32), name=f"row{k}").output,
                              name=f"rows{k}").output
        dims = net.add_concatenation([rows, net.add_constant((1,), np.array([4], np.int64), name=f"four{k}").output],
                                     name=f"dims{k}").output
        zero = net.add_constant((), np.array(0.5, np.float32), name=f"half{k}").output
        outs.append(net.add_fill(dims, zero, [None, 4], name=f"fill{k}").output)
    total = net.add_elementwise(outs[0], outs[1], "sum", name="total").output
    net.mark_output(total)
    net.mark_output(net.add_elementwise(x, x, "sum", name="twice").output)
    return net


def test_duplicate_shapes_and_fills_are_computed_once():
    engine = build_engine(_net())
    ops = [n.op_type for n in engine.onnx.graph.node]
    assert ops.count("Shape") == 1 and ops.count("Expand") == 1, ops
    assert engine.metadata["optimizations"]["duplicates_merged"] >= 3  # shape, gather, concat (+ cast)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    for backend in ("onnxruntime", "reference"):
        got = engine.run({"x": x}, backend=backend)
        np.testing.assert_array_equal(got["total"], np.ones((2, 4), np.float32))
        np.testing.assert_array_equal(got["twice"], x * 2)


def test_weights_are_not_merged():
    """Equal float weights of two layers stay two initializers (int8 and fp16 rewrite them per layer)."""
    net = Network("weights")
    x = net.add_input("x", "float32", (None, 4))
    a = net.add_fully_connected(x, 4, np.eye(4, dtype=np.float32), np.zeros(4, np.float32), name="a").output
    b = net.add_fully_connected(a, 4, np.eye(4, dtype=np.float32), np.zeros(4, np.float32), name="b").output
    net.mark_output(b)
    engine = build_engine(net)
    floats = [t for t in engine.onnx.graph.initializer if t.data_type == 1 and len(t.dims) == 2]
    assert len(floats) == 2
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_allclose(engine.run({"x": x})["b"], x, rtol=1e-6)

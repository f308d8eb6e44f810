"""The select layer (ONNX Where): broadcasting, both backends, and its input checks."""

from __future__ import annotations

import numpy as np
import pytest


def test_select_on_both_backends():
    from tf2rt.engine import build_engine
    from tf2rt.network import Network

    net = Network("select")
    x = net.add_input("x", "float32", [None, 3])
    zero = net.add_constant((), np.zeros((), np.float32), name="zero").output
    cond = net.add_elementwise(x, zero, "greater", name="positive").output
    other = net.add_constant((1, 3), np.array([[7.0, 8.0, 9.0]], np.float32), name="other").output
    y = net.add_select(cond, x, other, name="picked").output
    net.mark_output(y, "y")
    assert y.shape == (None, 3)
    xs = np.array([[1.0, -2.0, np.nan], [-np.inf, 5.0, 0.0]], np.float32)
    want = np.where(xs > 0, xs, np.array([[7.0, 8.0, 9.0]], np.float32))
    engine = build_engine(net)
    for backend in ("onnxruntime", "reference"):
        np.testing.assert_array_equal(engine.run({"x": xs}, backend=backend)["y"], want)


def test_select_checks_its_inputs():
    from tf2rt.errors import ShapeError
    from tf2rt.network import Network

    net = Network("bad")
    x = net.add_input("x", "float32", [2, 3])
    n = net.add_input("n", "int32", [2, 3])
    with pytest.raises(ShapeError, match="bool"):
        net.add_select(x, x, x)
    cond = net.add_elementwise(x, x, "equal").output
    with pytest.raises(ShapeError, match="cast"):
        net.add_select(cond, x, n)

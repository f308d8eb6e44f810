"""The resize layer (ONNX Resize) on onnxruntime and the reference backend: every mode set as
the TensorFlow importer sets it equals TensorFlow's own interpolation formulas (the numpy ones
of graphdef_ops_image, checked against TensorFlow there); an output shape fixed when building or
given by a tensor at run time, also inside a loop body; and the layer's checks."""

from __future__ import annotations

import numpy as np
import pytest

from tf2rt.engine import build_engine
from tf2rt.errors import ShapeError
from tf2rt.importers.graphdef_ops_image import bilinear_matrix, nearest_index
from tf2rt.network import Network

BACKENDS = ("onnxruntime", "reference")
# TensorFlow (align_corners, half_pixel_centers) -> the layer's coordinate rule and nearest rounding
TF_MODES = {(False, False): ("asymmetric", "floor"), (True, False): ("align_corners", "half_up"),
            (False, True): ("half_pixel", "half_up")}


def _tf_resize(x: np.ndarray, oh: int, ow: int, linear: bool, align: bool, half: bool) -> np.ndarray:
    """TensorFlow's ResizeBilinear / ResizeNearestNeighbor of an NCHW array, from its formulas."""
    h, w = x.shape[2:]
    if linear:
        return np.einsum("ph,nchw,qw->ncpq", bilinear_matrix(h, oh, align, half).astype(np.float64), x,
                         bilinear_matrix(w, ow, align, half).astype(np.float64))
    return x[:, :, nearest_index(h, oh, align, half)][:, :, :, nearest_index(w, ow, align, half)]


def _resize_net(linear: bool, align: bool, half: bool, out_hw, runtime: bool) -> Network:
    net = Network("resize")
    x = net.add_input("x", "float32", (None, 2, None, None))
    shape = net.add_input("shape", "int32", (4,)) if runtime else None
    dims = (None, 2, None, None) if runtime else (1, 2, *out_hw)
    layer = net.add_resize(x, dims, shape, name="resized")
    layer.resize_mode = "linear" if linear else "nearest"
    layer.coordinate_transformation, layer.nearest_rounding = TF_MODES[(align, half)]
    net.mark_output(layer.output, "y")
    return net


@pytest.mark.parametrize("linear", [True, False], ids=["linear", "nearest"])
@pytest.mark.parametrize("align,half", list(TF_MODES), ids=["asymmetric", "align_corners", "half_pixel"])
@pytest.mark.parametrize("runtime", [False, True], ids=["fixed", "shape-tensor"])
def test_modes_follow_tensorflow(linear, align, half, runtime):
    rng = np.random.default_rng(0)
    outs = [(9, 12), (3, 4), (1, 1), (5, 7)] if runtime else [(9, 12)]
    engine = None if runtime else build_engine(_resize_net(linear, align, half, outs[0], False))
    for oh, ow in outs:
        x = rng.standard_normal((1, 2, 5, 7)).astype(np.float32)
        want = _tf_resize(x, oh, ow, linear, align, half)
        if runtime:
            engine = engine or build_engine(_resize_net(linear, align, half, None, True))
            feeds = {"x": x, "shape": np.array([1, 2, oh, ow], np.int32)}
        else:
            feeds = {"x": x}
        for backend in BACKENDS:
            y = engine.run(feeds, backend=backend)["y"]
            assert y.shape == want.shape, (backend, y.shape)
            assert float(np.abs(y - want).max()) <= 2e-6, (backend, oh, ow)


def test_fixed_shape_inside_a_loop_body():
    """A loop body resizing an outer tensor to a fixed shape (its `sizes` a Constant of the body)."""
    body = Network("body")
    body.add_input("i", "int64", ())
    acc = body.add_input("acc", "float32", (1, 2, 4, 4))
    x = body.add_input("x", "float32", (1, 2, None, None))
    r = body.add_resize(x, (1, 2, 4, 4), name="to4")
    r.resize_mode, r.coordinate_transformation = "linear", "half_pixel"
    nxt = body.add_elementwise(acc, r.output, "sum", name="acc_next").output
    true = body.add_constant((), np.array(True), name="true").output
    body.mark_output(true)
    body.mark_output(nxt)
    net = Network("outer")
    xin = net.add_input("x", "float32", (1, 2, None, None))
    n = net.add_input("n", "int64", ())
    zero = net.add_constant((1, 2, 4, 4), np.zeros((1, 2, 4, 4), np.float32), name="zero").output
    net.mark_output(net.add_loop(body, [zero], [xin], trip_count=n, name="loop").get_output(0), "sum")
    engine = build_engine(net)
    x = np.random.default_rng(1).standard_normal((1, 2, 6, 9)).astype(np.float32)
    want = 3 * _tf_resize(x, 4, 4, True, False, True)
    for backend in BACKENDS:
        got = engine.run({"x": x, "n": np.array(3, np.int64)}, backend=backend)["sum"]
        assert float(np.abs(got - want).max()) <= 1e-5, backend


def test_checks_name_the_layer():
    net = Network("bad")
    x = net.add_input("x", "float32", (1, 2, None, None))
    with pytest.raises(ShapeError, match=r"'r1' \(resize\): shape \[1, 2, 3\] does not have the rank"):
        net.add_resize(x, (1, 2, 3), name="r1")
    with pytest.raises(ShapeError, match="'r2' .* unknown or empty sizes and no shape tensor"):
        net.add_resize(x, (1, 2, None, 4), name="r2")
    s = net.add_input("s", "float32", (4,))
    with pytest.raises(ShapeError, match="'r3' .* must be a 1-D int tensor of 4 sizes"):
        net.add_resize(x, (1, 2, None, None), s, name="r3")
    i = net.add_input("i", "int32", (1, 2, 3, 3))
    layer = net.add_resize(i, (1, 2, 6, 6), name="r4")  # nearest on integers is fine
    with pytest.raises(ShapeError, match="'r4' .* linear resize needs a float input"):
        layer.resize_mode = "linear"
    with pytest.raises(ShapeError, match="unknown coordinate_transformation 'tf_crop'"):
        layer.coordinate_transformation = "tf_crop"

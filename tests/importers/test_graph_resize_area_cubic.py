"""ResizeArea (the resize MTCNN-style image pyramids use): each output cell averages the input
cells its span covers, in proportion to the overlap; downscaling by fractions, upscaling,
align_corners, int images. ResizeBicubic with TensorFlow's coefficient table. Compared with
TensorFlow on onnxruntime and the reference backend.

Ops covered: ResizeArea, ResizeBicubic."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.graphdef_cases import build_case, check_case


@pytest.mark.parametrize("hw, size, align", [((10, 12), (5, 4), False), ((7, 9), (3, 5), False),
                                             ((5, 6), (9, 11), False), ((8, 8), (3, 3), True),
                                             ((6, 10), (4, 7), True)])
def test_resize_area_matches_tensorflow(tf, tmp_path, hw, size, align):
    x = np.random.default_rng(sum(hw)).standard_normal((2, *hw, 3)).astype(np.float32)
    case = build_case(tf, tmp_path / "area.pb",
                      lambda tf, p: [tf.raw_ops.ResizeArea(images=p["x"], size=list(size), align_corners=align) * 2.0],
                      {"x": x}, shapes={"x": [None, *hw, 3]})
    check_case(case, tol=1e-5)


def test_resize_area_of_an_int_image(tf, tmp_path):
    x = np.random.default_rng(1).integers(0, 256, (1, 9, 7, 3)).astype(np.int32)
    case = build_case(tf, tmp_path / "area_int.pb",
                      lambda tf, p: [tf.raw_ops.ResizeArea(images=p["x"], size=[4, 3])], {"x": x})
    assert case.refs["out0"].dtype == np.float32
    check_case(case, tol=1e-5)


def test_resize_area_to_a_run_time_size_is_named(tf, tmp_path):
    from tf2rt.errors import UnsupportedError
    from tf2rt.importers.graphdef import import_graphdef

    x = np.zeros((1, 6, 6, 1), np.float32)
    case = build_case(tf, tmp_path / "area_rt.pb",
                      lambda tf, p: [tf.raw_ops.ResizeArea(images=p["x"], size=tf.shape(p["x"])[1:3] // 2)],
                      {"x": x}, shapes={"x": [1, None, None, 1]})
    with pytest.raises(UnsupportedError, match="ResizeArea to a size.*run time"):
        import_graphdef(case.pb, outputs=case.outputs)


@pytest.mark.parametrize("hw, size, align, half", [((10, 12), (5, 4), False, False), ((7, 9), (13, 5), False, True),
                                                   ((5, 6), (9, 11), False, False), ((8, 8), (3, 3), True, False),
                                                   ((3, 3), (17, 19), False, True)])
def test_resize_bicubic_matches_tensorflow(tf, tmp_path, hw, size, align, half):
    """ResizeBicubic: TensorFlow's table of cubic coefficients (a = -0.75, or Keys' -0.5 with
    half_pixel_centers and the taps outside the image dropped)."""
    x = np.random.default_rng(sum(size)).standard_normal((2, *hw, 3)).astype(np.float32)
    case = build_case(tf, tmp_path / "cubic.pb",
                      lambda tf, p: [tf.raw_ops.ResizeBicubic(images=p["x"], size=list(size), align_corners=align,
                                                              half_pixel_centers=half)],
                      {"x": x}, shapes={"x": [None, *hw, 3]})
    check_case(case, tol=1e-5)

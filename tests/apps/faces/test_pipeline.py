"""The numpy MTCNN cascade, driven by the package's own Keras nets, against the package end to end."""

from __future__ import annotations

import numpy as np
import pytest

from photos import match_faces
from tf2rt.apps.faces.pipeline import MtcnnPipeline, pyramid_scales
from tf2rt.errors import ShapeError, Tf2rtError


def _reference(mtcnn_pkg, image, **kw):
    """Package output as [n, 15]: x1, y1, x2, y2, score, landmark xs, landmark ys."""
    out = mtcnn_pkg.detect_faces(image, output_type="numpy", box_format="xyxy", **kw)
    return np.asarray(out, np.float64).reshape(-1, 16)[:, 1:]


def assert_same_faces(ref: np.ndarray, ours: np.ndarray, iou_min=0.98, score_tol=1e-3, lm_tol=1.0):
    assert len(ours) == len(ref), f"{len(ours)} faces, the package found {len(ref)}"
    pairs = match_faces(ref, ours)
    worst_iou = min((p[2] for p in pairs), default=1.0)
    score_err = max((abs(ref[i, 4] - ours[j, 4]) for i, j, _ in pairs), default=0.0)
    lm_err = max((np.abs(ref[i, 5:] - ours[j, 5:]).max() for i, j, _ in pairs), default=0.0)
    # report the tolerances that would have passed, not only pass/fail
    assert worst_iou >= iou_min and score_err <= score_tol and lm_err <= lm_tol, (
        f"worst IoU {worst_iou:.5f}, score error {score_err:.2e}, landmark error {lm_err:.3f}px")
    return worst_iou, score_err, lm_err


def test_pyramid_scales_match_package(tf):
    from mtcnn.utils.images import build_scale_pyramid

    for h, w, mfs, sf in [(512, 512, 20, 0.709), (300, 451, 40, 0.8), (1080, 1920, 15, 0.6), (30, 40, 20, 0.709)]:
        want = build_scale_pyramid(w, h, min_face_size=mfs, scale_factor=sf)
        assert np.allclose(pyramid_scales(h, w, mfs, sf), want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["astronaut", "astronaut_odd", "camera", "grace_hopper", "lfw_mosaic", "coffee",
                                  "chelsea"])
def test_cascade_matches_package_on_photos(mtcnn_pkg, keras_nets, photos, name):
    image = photos[name]
    ours = MtcnnPipeline(*keras_nets, exact_resize=True).detect(image)
    ref = _reference(mtcnn_pkg, image)
    assert_same_faces(ref, ours, iou_min=0.999, score_tol=1e-5, lm_tol=0.01)
    fast = MtcnnPipeline(*keras_nets, exact_resize=False).detect(image)  # OpenCV's area resize
    assert_same_faces(ref, fast, iou_min=0.99, score_tol=1e-4, lm_tol=0.1)
    if name in ("coffee", "chelsea"):
        assert len(ours) == 0
    elif name == "lfw_mosaic":
        assert len(ours) >= 8
    else:
        assert len(ours) == 1


def test_knobs_are_passed_through(mtcnn_pkg, keras_nets, photos):
    image = photos["lfw_mosaic"]
    # (min_face_size above 20 makes the package give up on any image: its pyramid then reaches
    # levels smaller than P-Net's window, which TensorFlow rejects; tf2rt skips such levels.)
    kw = dict(min_face_size=16, scale_factor=0.75, threshold_pnet=0.7, threshold_rnet=0.8, threshold_onet=0.99)
    ours = MtcnnPipeline(*keras_nets, exact_resize=True).detect(image, **kw)
    ref = _reference(mtcnn_pkg, image, **kw)
    assert_same_faces(ref, ours, iou_min=0.999, score_tol=1e-5, lm_tol=0.01)
    assert len(ours) < len(MtcnnPipeline(*keras_nets).detect(image))


def test_bad_images_are_clear_errors(keras_nets):
    pipe = MtcnnPipeline(*keras_nets)
    with pytest.raises(ShapeError, match="RGB image"):
        pipe.detect(np.zeros((10, 10, 2), np.uint8))
    with pytest.raises(ShapeError, match="empty image"):
        pipe.detect(np.zeros((0, 10, 3), np.uint8))
    assert pipe.detect(np.zeros((8, 8, 3), np.uint8)).shape == (0, 15)  # smaller than P-Net's window
    assert pipe.detect(np.full((64, 64), 128, np.uint8)).shape == (0, 15)  # gray accepted
    with pytest.raises(ShapeError, match=r"scaled to \[0, 1\]"):
        pipe.detect(np.full((64, 64, 3), 0.5, np.float32))
    with pytest.raises(ShapeError, match="NaN"):
        pipe.detect(np.full((64, 64, 3), np.nan, np.float32))
    with pytest.raises(ShapeError, match="dtype"):
        pipe.detect(np.zeros((64, 64, 3), np.complex64))


def test_bad_knobs_are_clear_errors(keras_nets):
    pipe = MtcnnPipeline(*keras_nets)
    with pytest.raises(Tf2rtError, match="unknown MTCNN setting.*min_face; known: .*min_face_size"):
        pipe.detect(np.zeros((20, 20, 3), np.uint8), min_face=10)
    with pytest.raises(Tf2rtError, match="scale_factor must be in"):
        pipe.detect(np.zeros((20, 20, 3), np.uint8), scale_factor=1.5)
    with pytest.raises(Tf2rtError, match="threshold_onet must be in"):
        pipe.detect(np.zeros((20, 20, 3), np.uint8), threshold_onet=2)

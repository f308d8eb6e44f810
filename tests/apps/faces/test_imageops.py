"""Area resize and crop-and-resize against TensorFlow's own ops, and box arithmetic by hand."""

from __future__ import annotations

import numpy as np
import pytest

from tf2rt.apps.faces import boxes as bx
from tf2rt.apps.faces.imageops import crop_and_resize, resize_area


@pytest.mark.parametrize("h,w,oh,ow", [(37, 53, 22, 31), (512, 512, 307, 307), (20, 30, 20, 30),
                                       (100, 80, 11, 7), (10, 10, 23, 17), (1, 5, 1, 2)])
def test_resize_area_matches_tf(tf, h, w, oh, ow):
    x = ((np.random.default_rng(h * w).integers(0, 256, (h, w, 3)) - 127.5) / 128).astype(np.float32)
    want = tf.image.resize(x[None], (oh, ow), method="area").numpy()[0]
    got = resize_area(x, oh, ow)
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-6
    fast = resize_area(x, oh, ow, fast=True)  # OpenCV when shrinking
    assert fast.shape == want.shape and np.abs(fast - want).max() <= 2e-4


def test_crop_and_resize_matches_tf(tf):
    rng = np.random.default_rng(1)
    img = ((rng.integers(0, 256, (60, 80, 3)) - 127.5) / 128).astype(np.float32)
    boxes = np.concatenate([
        np.array([[0.1, 0.2, 0.5, 0.6], [-0.2, -0.1, 0.3, 1.2], [0.3, 0.3, 0.3, 0.3], [0.9, 0.5, 1.3, 0.9]]),
        rng.uniform(-0.3, 1.3, (20, 4)),
    ]).astype(np.float32)
    for size in [(24, 24), (48, 48), (1, 1), (5, 7)]:
        want = tf.image.crop_and_resize(img[None], boxes, np.zeros(len(boxes), np.int32), size).numpy()
        got = crop_and_resize(img, boxes, size)
        assert np.abs(got - want).max() <= 1e-6, size
    assert crop_and_resize(img, np.zeros((0, 4)), (24, 24)).shape == (0, 24, 24, 3)


def test_overlap_and_suppression_by_hand():
    # b overlaps a by 50/150, c overlaps b by 50/150 but not a; d is inside a.
    a = [0, 0, 10, 10, 0.9]
    b = [5, 0, 15, 10, 0.8]
    c = [10, 0, 20, 10, 0.7]
    d = [2, 2, 6, 6, 0.6]
    rows = np.array([a, b, c, d], float)
    iou = bx.overlap(rows, rows, "union")
    assert iou[0, 1] == pytest.approx(50 / 150) and iou[1, 2] == pytest.approx(50 / 150) and iou[0, 2] == 0
    assert iou[0, 3] == pytest.approx(16 / 100)
    assert bx.overlap(rows, rows, "min")[0, 3] == pytest.approx(1.0)
    # threshold 0.3: b is dropped (overlaps a); c is dropped too, because the package's rule
    # also counts overlaps with boxes that were themselves dropped (b).
    kept = bx.suppress(rows[::-1].copy(), 0.3, "union")
    assert kept[:, 4].tolist() == [0.9, 0.6]
    kept_min = bx.suppress(rows, 0.9, "min", presorted=True)
    assert kept_min[:, 4].tolist() == [0.9, 0.8, 0.7]  # d is inside a: overlap-over-min is 1.0


def test_suppression_chunks_agree_with_one_block(monkeypatch):
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 200, (3000, 2))
    wh = rng.uniform(5, 40, (3000, 2))
    rows = np.concatenate([xy, xy + wh, rng.uniform(0, 1, (3000, 1))], axis=1)
    big = bx.suppress(rows, 0.5)
    monkeypatch.setattr(bx, "_CHUNK", 97)
    assert np.array_equal(bx.suppress(rows, 0.5), big)


def test_square_offsets_landmarks_by_hand():
    rows = np.array([[10.0, 20.0, 30.0, 60.0, 0.5]])
    sq = bx.to_square(rows)
    assert sq[0, :4].tolist() == [0.0, 20.0, 40.0, 60.0]
    moved = bx.apply_offsets(rows, np.array([[0.1, -0.1, 0.2, 0.0]]))
    assert moved[0, :4] == pytest.approx([10 + 2.1, 20 - 4.1, 30 + 4.2, 60])
    lm = bx.place_landmarks(np.array([[0, 0.5, 1, 0, 1, 0, 0.5, 1, 1, 0]], float), rows)
    assert lm[0, :5] == pytest.approx([9, 19.5, 30, 9, 30]) and lm[0, 5:] == pytest.approx([19, 39.5, 60, 60, 19])

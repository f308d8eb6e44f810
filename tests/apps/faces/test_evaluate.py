"""Evaluation protocols on hand-made FDDB / WIDER fixtures, answers worked out by hand below."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tf2rt.apps.faces.datasets import (Annotation, apply_wider_split, ellipse_bbox, read_fddb, read_fddb_ellipses,
                                       read_wider, read_wider_gt, read_wider_split)
from tf2rt.apps.faces.evaluate import (binary_auc, binary_roc, ellipse_rect_iou, fddb_roc, match, results_table,
                                       roc_auc, voc_ap, wider_ap)
from tf2rt.errors import FormatError, Tf2rtError

# Image a: face A = box (30, 40, 40, 20), face B = box (140, 40, 20, 20); image b: face C = (20, 25, 20, 10);
# image c: face D = (20, 20, 20, 20).
FDDB_FOLD = """\
img_a
2
20.0 10.0 0.0 50.0 50.0 1
10.0 10.0 0.0 150.0 50.0 1
img_b
1
10.0 5.0 0.0 30.0 30.0 1
img_c
1
10.0 10.0 0.0 30.0 30.0 1
"""

# d1 = A exactly (IoU 1); d4 = C shifted 5 px (IoU 150/250 = 0.6); d3 overlaps nothing;
# d2 = B shifted 5 px (IoU 300/500 = 0.6); d5 = C exactly (IoU 1); d7 = D shifted 10 px
# (IoU 200/600 = 1/3: matched, so it adds 1/3 to the continuous score, but still a false positive).
FDDB_DETS = {
    "img_a": np.array([[30, 40, 40, 20, 0.9], [0, 0, 10, 10, 0.7], [145, 40, 20, 20, 0.5]], float),
    "img_b": np.array([[25, 25, 20, 10, 0.8], [20, 25, 20, 10, 0.3]], float),
    "img_c": np.array([[30, 20, 20, 20, 0.2]], float),
}


@pytest.fixture
def fddb_dir(tmp_path):
    folds = tmp_path / "FDDB-folds"
    folds.mkdir()
    (folds / "FDDB-fold-01-ellipseList.txt").write_text(FDDB_FOLD)
    return tmp_path


def test_fddb_reader(fddb_dir):
    anns = read_fddb(fddb_dir, folds=(1,))
    assert [a.image for a in anns] == ["img_a.jpg", "img_b.jpg", "img_c.jpg"]
    assert anns[0].boxes.tolist() == [[30, 40, 40, 20], [140, 40, 20, 20]]
    assert anns[1].boxes.tolist() == [[20, 25, 20, 10]]
    # a vertical major axis (angle pi/2) swaps the box's width and height
    assert ellipse_bbox(np.array([[20, 10, np.pi / 2, 50, 50]])) == pytest.approx(np.array([[40, 30, 20, 40]]))


def test_fddb_discrete_and_continuous_roc_by_hand(fddb_dir):
    anns = [a for a in read_fddb(fddb_dir, folds=(1,))]
    dets = {f"{k}.jpg": v for k, v in FDDB_DETS.items()}
    roc = fddb_roc(anns, dets, region="bbox")
    # 0.9: d1 | 0.8: +d4 | 0.7: +d3 (FP) | 0.5: +d2 | 0.3: +d5 takes C from d4 (overlap 1 > 0.6)
    # | 0.2: +d7, matched to D with overlap 1/3 (continuous +1/3, discrete FP)
    assert roc.thresholds.tolist() == [0.9, 0.8, 0.7, 0.5, 0.3, 0.2]
    assert roc.false_positives.tolist() == [0, 0, 1, 1, 2, 3]
    assert roc.tpr_discrete == pytest.approx(np.array([1, 2, 2, 3, 3, 3]) / 4)
    assert roc.tpr_continuous == pytest.approx(np.array([1, 1.6, 1.6, 2.2, 2.6, 2.6 + 1 / 3]) / 4)
    assert roc.num_faces == 4
    # step TPR(FP): 2/4 on [0, 1), 3/4 from FP = 1 on
    assert roc_auc(roc, max_fp=2) == pytest.approx((2 / 4 + 3 / 4) / 2)
    assert roc_auc(roc, max_fp=4) == pytest.approx((2 / 4 + 3 * 3 / 4) / 4)
    # continuous: best rate 1.6/4 with no FP, 2.2/4 with one, 2.6/4 with two, (2.6 + 1/3)/4 with three
    assert roc_auc(roc, max_fp=2, kind="continuous") == pytest.approx((1.6 / 4 + 2.2 / 4) / 2)
    assert roc_auc(roc, max_fp=4, kind="continuous") == pytest.approx((1.6 + 2.2 + 2.6 + 2.6 + 1 / 3) / 4 / 4)
    assert roc.tpr_at(0) == pytest.approx(2 / 4) and roc.tpr_at(1) == 0.75


def test_ellipse_overlap_is_rasterised():
    circle = np.array([20.0, 20.0, 0.0, 50.0, 50.0])
    # a circle against its bounding square: pi/4 of the pixels
    assert ellipse_rect_iou(circle, np.array([30, 30, 40, 40])) == pytest.approx(np.pi / 4, abs=0.01)
    assert ellipse_rect_iou(circle, np.array([200, 200, 10, 10])) == 0.0
    tilted = np.array([20.0, 10.0, np.pi / 2, 50.0, 50.0])  # vertical ellipse: its box is 20 wide, 40 high
    assert ellipse_rect_iou(tilted, np.array([40, 30, 20, 40])) == pytest.approx(np.pi / 4, abs=0.01)
    assert ellipse_rect_iou(tilted, np.array([30, 40, 40, 20])) < 0.6


def test_matching_is_one_to_one():
    iou = np.array([[0.9, 0.6], [0.8, 0.0]])
    assert match(iou) == (2, pytest.approx(1.4))  # d0-f1 + d1-f0 (1.4) beats d0-f0 alone (0.9)
    assert match(np.array([[0.95], [0.9]])) == (1, pytest.approx(0.95))
    assert match(np.array([[0.5, 0.4]])) == (0, pytest.approx(0.5))  # 0.5 is not > 0.5, but counts as overlap
    assert match(np.zeros((2, 3))) == (0, 0.0)


WIDER_GT = """\
0--Parade/0_Parade_img1.jpg
3
10 10 20 20 0 0 0 0 0 0
50 10 20 20 0 0 0 0 0 0
100 100 8 8 0 0 0 1 0 0
1--Handshaking/1_Handshaking_img2.jpg
0
0 0 0 0 0 0 0 0 0 0
"""
WIDER_DETS = {
    "0--Parade/0_Parade_img1.jpg": np.array([[10, 10, 20, 20, 0.9], [100, 100, 8, 8, 0.8],
                                              [200, 200, 10, 10, 0.6], [52, 10, 20, 20, 0.3]], float),
    "1--Handshaking/1_Handshaking_img2.jpg": np.array([[0, 0, 10, 10, 0.95]], float),
}


@pytest.fixture
def wider_dir(tmp_path):
    split = tmp_path / "wider_face_split"
    split.mkdir()
    (split / "wider_face_val_bbx_gt.txt").write_text(WIDER_GT)
    return tmp_path


def test_wider_reader_and_ap_by_hand(wider_dir):
    anns = read_wider(wider_dir)
    assert [a.image for a in anns] == list(WIDER_DETS)
    assert anns[0].ignore.tolist() == [False, False, True] and anns[0].num_faces == 2 and anns[1].num_faces == 0
    ap, precision, recall = wider_ap(anns, WIDER_DETS)
    # scores normalised by (s - 0.3) / 0.65; the faceless image is skipped. Going down the thresholds:
    # d(0.9): P 1, R 1/2; d(0.8) hits the invalid face (ignored); d(0.6) FP -> P 1/2; d(0.3) at
    # threshold 0 recalls face 2 -> P 2/3, R 1. Envelope: P 1 up to R 1/2, then 2/3.
    assert ap == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert recall[-1] == 1.0 and precision[-1] == pytest.approx(2 / 3)
    assert np.all(np.diff(recall) >= 0)


def test_wider_official_split_files(wider_dir):
    import scipy.io

    files = np.empty((2, 1), dtype=object)
    gts = np.empty((2, 1), dtype=object)
    for ev, (name, keep) in enumerate([("0_Parade_img1", [1]), ("1_Handshaking_img2", [])]):
        f = np.empty((1, 1), dtype=object)
        f[0, 0] = name
        g = np.empty((1, 1), dtype=object)
        g[0, 0] = np.array(keep, float).reshape(-1, 1)
        files[ev, 0], gts[ev, 0] = f, g
    scipy.io.savemat(wider_dir / "wider_hard_val.mat", {"file_list": files, "gt_list": gts})
    keep = read_wider_split(wider_dir / "wider_hard_val.mat")
    assert keep["0_Parade_img1"].tolist() == [0] and keep["1_Handshaking_img2"].tolist() == []
    hard = read_wider(wider_dir, "hard")
    assert hard[0].ignore.tolist() == [False, True, True]
    ap, _, _ = wider_ap(hard, WIDER_DETS)
    assert ap == pytest.approx(1.0)  # the only kept face is found first; the FP comes after full recall
    with pytest.raises(Tf2rtError, match="wider_easy_val.mat"):
        read_wider(wider_dir, "easy")


def test_bad_annotation_files(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_text("img\n2\n1 2 3 4 5 1\n")
    with pytest.raises(FormatError, match="announces 2 faces"):
        read_fddb_ellipses(p)
    p.write_text("img\nx\n")
    with pytest.raises(FormatError, match="number of faces"):
        read_fddb_ellipses(p)
    p.write_text("a.jpg\n1\n1 2 three 4\n")
    with pytest.raises(FormatError, match="expected 'x y w h"):
        read_wider_gt(p)
    with pytest.raises(Tf2rtError, match="not found"):
        read_fddb(tmp_path)


def test_face_nonface_auc_against_sklearn():
    from sklearn.metrics import roc_auc_score, roc_curve

    assert binary_auc(np.array([0.9, 0.8, 0.8, 0.1]), np.array([1, 0, 1, 0])) == pytest.approx(3.5 / 4)
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(100), np.zeros(100)].astype(int)
    scores = np.round(rng.normal(labels * 1.0, 1.0), 1)  # rounding makes ties
    assert binary_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    fpr, tpr, _ = binary_roc(scores, labels)
    sk_fpr, sk_tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    assert np.allclose(fpr, sk_fpr) and np.allclose(tpr, sk_tpr)


def test_voc_ap_and_table():
    assert voc_ap(np.array([0.5, 1.0]), np.array([1.0, 0.5])) == pytest.approx(0.75)
    table = results_table([{"detector": "mtcnn", "speed ms": 12.345, "AUC": 0.91234}])
    assert table.splitlines()[0] == "| detector | speed ms | AUC |" and "| mtcnn | 12.3 | 0.9123 |" in table


# -- properties ---------------------------------------------------------------------------------
_box = st.tuples(st.integers(0, 80), st.integers(0, 80), st.integers(4, 40), st.integers(4, 40))


@settings(max_examples=30, deadline=None)
@given(gt=st.lists(st.lists(_box, min_size=0, max_size=4), min_size=1, max_size=4),
       noise=st.lists(st.tuples(_box, st.floats(0, 1)), min_size=0, max_size=12), seed=st.integers(0, 1000))
def test_roc_properties(gt, noise, seed):
    rng = np.random.default_rng(seed)
    anns = [Annotation(image=f"i{k}", boxes=np.array(g, float).reshape(-1, 4)) for k, g in enumerate(gt)]
    dets = {}
    for k, g in enumerate(gt):
        rows = [list(b) + [float(rng.uniform())] for b in g if rng.uniform() < 0.7]
        rows += [list(b) + [s] for b, s in noise if rng.uniform() < 1 / len(gt)]
        dets[f"i{k}"] = np.array(rows, float).reshape(-1, 5)
    roc = fddb_roc(anns, dets, region="bbox")
    if len(roc.thresholds):
        assert np.all(np.diff(roc.false_positives) >= 0)
        assert np.all(np.diff(roc.tpr_continuous) >= -1e-12)  # summed overlap never drops
        assert roc.tpr_discrete.max() <= 1 and roc.tpr_continuous.max() <= 1 + 1e-12
    assert 0.0 <= roc_auc(roc, max_fp=10) <= 1.0
    # a perfect detector: every face exactly, nothing else -> AUC 1 whatever the FP range
    perfect = {f"i{k}": np.c_[np.array(g, float).reshape(-1, 4), rng.uniform(size=len(g))] for k, g in enumerate(gt)}
    if sum(len(g) for g in gt):
        for max_fp in (1, 10, 1000):
            assert roc_auc(fddb_roc(anns, perfect, region="bbox"), max_fp=max_fp) == pytest.approx(1.0)
        # WIDER's greedy rule lets two detections claim one face, so identical faces are left out here
        distinct = [Annotation(image=a.image, boxes=np.unique(a.boxes, axis=0)) for a in anns]
        exact = {a.image: np.c_[a.boxes, rng.uniform(size=len(a.boxes))] for a in distinct}
        assert wider_ap(distinct, exact)[0] == pytest.approx(1.0)


def test_apply_split_drops_unlisted_images():
    anns = [Annotation(image="e/a.jpg", boxes=np.zeros((2, 4))), Annotation(image="e/b.jpg", boxes=np.zeros((1, 4)))]
    out = apply_wider_split(anns, {"a": np.array([1])})
    assert [a.image for a in out] == ["e/a.jpg"] and out[0].ignore.tolist() == [True, False]


def test_fddb_detection_files_round_trip(fddb_dir, tmp_path):
    from tf2rt.apps.faces.datasets import read_fddb_detections, write_fddb_detections

    anns = read_fddb(fddb_dir, folds=(1,))
    dets = {f"{k}.jpg": v for k, v in FDDB_DETS.items()}
    files = write_fddb_detections(anns, dets, tmp_path / "out")
    assert [f.name for f in files] == ["fold-01-out.txt"]
    text = files[0].read_text().splitlines()
    assert text[:3] == ["img_a", "3", "30.000000 40.000000 40.000000 20.000000 0.900000"] and "img_c" in text
    back = read_fddb_detections(files, anns)
    assert set(back) == set(dets) and all(np.allclose(back[k], dets[k]) for k in dets)
    roc = fddb_roc(anns, back, region="bbox")
    assert roc.false_positives.tolist() == [0, 0, 1, 1, 2, 3]
    bad = tmp_path / "bad.txt"
    bad.write_text("img_a\n1\n1 2 3 4 5 6\n")
    with pytest.raises(FormatError, match="ellipse detections are not supported"):
        read_fddb_detections([bad])


def test_ellipse_overlap_matches_opencv_drawing():
    """FDDB's evaluator rasterises ellipses with OpenCV; same convention (angle in radians from the
    x axis, pixel centres), up to OpenCV's polygon approximation of the outline."""
    import cv2

    rng = np.random.default_rng(1)
    worst = 0.0
    for _ in range(40):
        a, b = sorted(rng.uniform(10, 60, 2), reverse=True)
        t = rng.uniform(-np.pi, np.pi)
        cx, cy = rng.uniform(80, 120, 2)
        x, y, w, h = *rng.uniform(40, 100, 2), *rng.uniform(20, 80, 2)
        ell = np.zeros((240, 240), np.uint8)  # OpenCV puts pixel centres on integers: shift by half a pixel
        cv2.ellipse(ell, (int(round((cx - 0.5) * 16)), int(round((cy - 0.5) * 16))),
                    (int(round(a * 16)), int(round(b * 16))), float(np.degrees(t)), 0, 360, 1, -1, shift=4)
        rect = np.zeros_like(ell)
        rect[int(np.ceil(y - 0.5)):int(np.ceil(y + h - 0.5)), int(np.ceil(x - 0.5)):int(np.ceil(x + w - 0.5))] = 1
        want = np.count_nonzero(ell & rect) / np.count_nonzero(ell | rect)
        worst = max(worst, abs(ellipse_rect_iou(np.array([a, b, t, cx, cy]), np.array([x, y, w, h])) - want))
    assert worst < 0.03, f"worst IoU difference to OpenCV's rasterisation {worst:.4f}"


def test_wider_score_normalisation_follows_the_official_code(wider_dir):
    """Official norm_score starts from min 1 / max 0, so scores 3..9.5 map as (s - 1) / 8.5
    (plain min-max would map the lowest score, 3, to 0)."""
    anns = read_wider(wider_dir)
    shifted = {k: np.c_[v[:, :4], v[:, 4] * 10] for k, v in WIDER_DETS.items()}  # 3 .. 9.5
    ap_shifted, _, recall = wider_ap(anns, shifted)
    assert ap_shifted == pytest.approx(wider_ap(anns, WIDER_DETS)[0])  # same order, same AP
    thresholds = 1 - np.arange(1, 1001) / 1000
    # the detection scored 3 (normalised 2 / 8.5 = 0.2353) recalls the second face
    assert recall[np.isclose(thresholds, 0.236)][0] == 0.5 and recall[np.isclose(thresholds, 0.235)][0] == 1.0

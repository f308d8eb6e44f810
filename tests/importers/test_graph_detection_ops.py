"""Non-maximum suppression in frozen graphs (NonMaxSuppressionV3/V4/V5): the kept indices,
highest score first, are exactly TensorFlow's, on onnxruntime and the reference backend."""

from __future__ import annotations

import numpy as np
import pytest


def _boxes(rng, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Clustered boxes (so suppression matters), corners sometimes flipped, distinct scores."""
    centers = rng.uniform(0.2, 0.8, (4, 2))[rng.integers(0, 4, n)] + rng.normal(0, 0.03, (n, 2))
    sizes = rng.uniform(0.05, 0.2, (n, 2))
    boxes = np.concatenate([centers - sizes, centers + sizes], axis=1)
    flip = rng.random(n) < 0.3
    boxes[flip] = boxes[flip][:, [2, 3, 0, 1]]
    scores = rng.permutation(np.linspace(0.05, 0.95, n))
    return boxes.astype(np.float32), scores.astype(np.float32)


@pytest.mark.parametrize("version", ["v3", "v4", "v5"])
def test_nms_matches_tensorflow(tf, tmp_path, version):
    tf1 = tf.compat.v1
    rng = np.random.default_rng(len(version))
    g = tf.Graph()
    with g.as_default():
        b = tf1.placeholder(tf.float32, [None, 4], name="boxes")
        s = tf1.placeholder(tf.float32, [None], name="scores")
        if version == "v3":
            idx = tf.image.non_max_suppression(b, s, max_output_size=12, iou_threshold=0.4, score_threshold=0.3)
            outs = [tf.identity(idx, name="kept")]
        elif version == "v4":
            idx, _n = tf.raw_ops.NonMaxSuppressionV4(boxes=b, scores=s, max_output_size=12, iou_threshold=0.4,
                                                     score_threshold=0.3, pad_to_max_output_size=False)
            outs = [tf.identity(idx, name="kept")]
        else:
            idx, kept_scores = tf.image.non_max_suppression_with_scores(b, s, max_output_size=12,
                                                                        iou_threshold=0.4, score_threshold=0.3)
            outs = [tf.identity(idx, name="kept"), tf.identity(kept_scores, name="kept_scores")]
        tf.gather(b, idx, name="kept_boxes")
        names = [o.op.name for o in outs] + ["kept_boxes"]
        gd = g.as_graph_def()
        cases = []
        with tf1.Session() as sess:
            for n in (40, 7):
                bv, sv = _boxes(rng, n)
                cases.append(({"boxes": bv, "scores": sv}, sess.run([f"{x}:0" for x in names], {b: bv, s: sv})))
    (tmp_path / "m.pb").write_bytes(gd.SerializeToString())
    from tf2rt import convert

    engine = convert(tmp_path / "m.pb", outputs=names)
    for backend in ("onnxruntime", "reference"):
        for feeds, want in cases:
            got = engine.run(feeds, backend=backend)
            assert np.array_equal(got["kept"], want[0]), (backend, got["kept"], want[0])
            assert np.allclose(got["kept_boxes"], want[-1])
            if version == "v5":
                assert np.allclose(got["kept_scores"], want[1])
    assert 0 < len(cases[0][1][0]) < 40  # suppression and the score threshold both removed boxes


def test_topk_matches_tensorflow(tf, tmp_path):
    tf1 = tf.compat.v1
    rng = np.random.default_rng(3)
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, 9], name="x")
        values, indices = tf.math.top_k(x * 2.0, k=4)
        tf.identity(values, name="values")
        tf.identity(indices, name="indices")
        gd = g.as_graph_def()
        xv = np.round(rng.standard_normal((3, 9)), 1).astype(np.float32)  # ties included
        with tf1.Session() as sess:
            want = sess.run(["values:0", "indices:0"], {x: xv})
    (tmp_path / "m.pb").write_bytes(gd.SerializeToString())
    from tf2rt import convert

    engine = convert(tmp_path / "m.pb", outputs=["values", "indices"])
    for backend in ("onnxruntime", "reference"):
        got = engine.run({"x": xv}, backend=backend)
        assert np.allclose(got["values"], want[0]) and np.array_equal(got["indices"], want[1])


def test_where_gather_nd_and_boolean_mask(tf, tmp_path):
    """Filtering as detectors' post-processing writes it: tf.where on a score test,
    tf.gather_nd with those indices, tf.boolean_mask - results of a size known at run time."""
    tf1 = tf.compat.v1
    rng = np.random.default_rng(8)
    g = tf.Graph()
    with g.as_default():
        s = tf1.placeholder(tf.float32, [None, 5], name="scores")
        b = tf1.placeholder(tf.float32, [None, 5, 4], name="boxes")
        idx = tf.where(s > 0.3)
        tf.identity(idx, name="idx")
        tf.identity(tf.gather_nd(b, idx), name="picked")
        tf.identity(tf.boolean_mask(s, s > 0.3), name="masked")
        gd = g.as_graph_def()
        cases = []
        with tf1.Session() as sess:
            for n in (3, 1):
                feeds = {"scores": rng.random((n, 5)).astype(np.float32),
                         "boxes": rng.random((n, 5, 4)).astype(np.float32)}
                cases.append((feeds, sess.run(["idx:0", "picked:0", "masked:0"],
                                              {s: feeds["scores"], b: feeds["boxes"]})))
    (tmp_path / "m.pb").write_bytes(gd.SerializeToString())
    from tf2rt import convert

    engine = convert(tmp_path / "m.pb", outputs=["idx", "picked", "masked"])
    for backend in ("onnxruntime", "reference"):
        for feeds, (want_idx, want_picked, want_masked) in cases:
            got = engine.run(feeds, backend=backend)
            assert np.array_equal(got["idx"], want_idx)
            assert np.allclose(got["picked"], want_picked) and np.allclose(got["masked"], want_masked)


@pytest.mark.parametrize("method", ["bilinear", "nearest"])
@pytest.mark.parametrize("crop", [(5, 7), (1, 4)], ids=["grid", "one-row"])
def test_crop_and_resize_matches_tensorflow(tf, tmp_path, method, crop):
    """Boxes inside the image, flipped, partly outside (extrapolation value), several images."""
    tf1 = tf.compat.v1
    rng = np.random.default_rng(11)
    g = tf.Graph()
    with g.as_default():
        img = tf1.placeholder(tf.float32, [None, 11, 13, 3], name="image")
        b = tf1.placeholder(tf.float32, [None, 4], name="boxes")
        bi = tf1.placeholder(tf.int32, [None], name="box_ind")
        out = tf.image.crop_and_resize(img, b, bi, list(crop), method=method, extrapolation_value=-1.5)
        tf.identity(out, name="crops")
        gd = g.as_graph_def()
        feeds = {"image": rng.standard_normal((2, 11, 13, 3)).astype(np.float32),
                 "boxes": np.array([[0.1, 0.2, 0.8, 0.9], [0.5, 0.5, 0.2, 0.1], [-0.2, 0.3, 0.6, 1.3],
                                    [0.33, 0.27, 0.35, 0.61], [0.0, 0.0, 1.0, 1.0]], np.float32),
                 "box_ind": np.array([0, 1, 1, 0, 1], np.int32)}
        with tf1.Session() as sess:
            want = sess.run("crops:0", {img: feeds["image"], b: feeds["boxes"], bi: feeds["box_ind"]})
    assert (want == -1.5).any() and np.unique(want).size > 20  # extrapolated and sampled values both occur
    (tmp_path / "m.pb").write_bytes(gd.SerializeToString())
    from tf2rt import convert

    engine = convert(tmp_path / "m.pb", outputs=["crops"])
    for backend in ("onnxruntime", "reference"):
        got = engine.run(feeds, backend=backend)["crops"]
        assert got.shape == want.shape
        assert float(np.abs(got - want).max()) <= 1e-5

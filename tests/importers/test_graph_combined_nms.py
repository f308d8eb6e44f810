"""Batched, per-class and padded non-maximum suppression in frozen graphs: CombinedNonMaxSuppression
(tf.image.combined_non_max_suppression), NonMaxSuppressionV4 / NonMaxSuppressionV5 with
pad_to_max_output_size and valid_outputs. Converted with tf2rt, run on onnxruntime and the
reference backend, and compared with TensorFlow: identical boxes, classes, indices and counts,
scores within 1e-6."""

from __future__ import annotations

import numpy as np
import pytest

BACKENDS = ("onnxruntime", "reference")


def _detections(rng, batch: int, n: int, q: int, c: int, clusters: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Boxes [B, N, q, 4] in clusters of near-duplicates (so suppression matters), some reaching
    outside [0, 1] (so clipping matters), corners sometimes flipped; scores [B, N, C] all distinct."""
    centers = rng.uniform(-0.05, 1.05, (batch, clusters, 1, 2))[:, rng.integers(0, clusters, n)]
    centers = centers + rng.normal(0, 0.015, (batch, n, q, 2))
    sizes = rng.uniform(0.1, 0.14, (batch, n, q, 2))
    boxes = np.concatenate([centers - sizes, centers + sizes], axis=-1)
    flip = rng.random((batch, n, q)) < 0.3
    boxes[flip] = boxes[flip][:, [2, 3, 0, 1]]
    scores = rng.permutation(np.linspace(0.02, 0.98, batch * n * c)).reshape(batch, n, c)
    return boxes.astype(np.float32), scores.astype(np.float32)


def _freeze_run(tf, tmp_path, build, feeds_list):
    """Build a TF1 graph with `build(placeholders) -> {name: tensor}`, run it on each feed dict,
    write it to m.pb; returns (path, output names, [(feeds, TensorFlow outputs)])."""
    tf1 = tf.compat.v1
    g = tf.Graph()
    with g.as_default():
        outs = build(tf1)
        names = [tf.identity(t, name=k).op.name for k, t in outs.items()]
        gd = g.as_graph_def()
        cases = []
        with tf1.Session() as sess:
            for feeds in feeds_list:
                cases.append((feeds, sess.run([f"{x}:0" for x in names], {f"{k}:0": v for k, v in feeds.items()})))
    (tmp_path / "m.pb").write_bytes(gd.SerializeToString())
    return tmp_path / "m.pb", names, cases


def _check(engine, names, cases, score_names=()) -> None:
    for backend in BACKENDS:
        for feeds, want in cases:
            got = engine.run(feeds, backend=backend)
            for name, w in zip(names, want):
                g = got[name]
                assert g.shape == w.shape and g.dtype == w.dtype, (backend, name, g.shape, w.shape, g.dtype, w.dtype)
                if name in score_names:
                    err = float(np.abs(g - w).max()) if w.size else 0.0
                    assert err <= 1e-6, (backend, name, err)
                else:
                    assert np.array_equal(g, w), (backend, name, g, w)


def _combined_graph(tf, q, c, n, per_class, total, iou, score, pad_per_class, clip, n_known=True):
    def build(tf1):
        b = tf1.placeholder(tf.float32, [None, n if n_known else None, q, 4], name="boxes")
        s = tf1.placeholder(tf.float32, [None, n if n_known else None, c], name="scores")
        r = tf.image.combined_non_max_suppression(b, s, per_class, total, iou_threshold=iou, score_threshold=score,
                                                  pad_per_class=pad_per_class, clip_boxes=clip)
        return {"nmsed_boxes": r[0], "nmsed_scores": r[1], "nmsed_classes": r[2], "valid_detections": r[3]}
    return build


SCORES = ("nmsed_scores",)


@pytest.mark.parametrize("clip", [True, False], ids=["clip", "noclip"])
@pytest.mark.parametrize("pad_per_class", [False, True], ids=["pad_total", "pad_per_class"])
@pytest.mark.parametrize("shared", [True, False], ids=["q1", "qC"])
def test_combined_nms_matches_tensorflow(tf, tmp_path, shared, pad_per_class, clip):
    """CombinedNonMaxSuppression with a run-time batch size: q = 1 and q = C, both pad_per_class
    values (output rows max_total_size = 14, or max_size_per_class * C = 12), clipping on and off."""
    from tf2rt import convert

    c, n, per_class, total, score = 4, 24, 3, 14, 0.75
    q = 1 if shared else c
    rng = np.random.default_rng(7 + 2 * shared + pad_per_class)
    feeds = []
    for batch in (3, 1):
        bv, sv = _detections(rng, batch, n, q, c)
        feeds.append({"boxes": bv, "scores": sv})
    build = _combined_graph(tf, q, c, n, per_class, total, 0.4, score, pad_per_class, clip)
    path, names, cases = _freeze_run(tf, tmp_path, build, feeds)
    engine = convert(path, outputs=names)
    _check(engine, names, cases, SCORES)
    # what the cases exercise, read from TensorFlow's results
    (f0, (boxes, scores, classes, valid)) = cases[0]
    assert boxes.shape == (3, 12 if pad_per_class else 14, 4)
    assert (valid < boxes.shape[1]).any() and len(set(classes[0][: valid[0]])) > 1  # padding; several classes
    assert all((scores[i, : valid[i]] > score).all() and (scores[i, valid[i]:] == 0).all() for i in range(3))
    suppressed = 0  # (image, class) pairs whose kept scores are not simply their best scores
    for i in range(3):
        for k in range(c):
            kept = np.sort(scores[i, : valid[i]][classes[i, : valid[i]] == k])[::-1]
            suppressed += not np.array_equal(kept, np.sort(f0["scores"][i, :, k])[::-1][: len(kept)])
    assert suppressed > 0
    outside = ((f0["boxes"] < 0) | (f0["boxes"] > 1)).any()
    assert outside and (((boxes >= 0) & (boxes <= 1)).all() if clip else ((boxes < 0) | (boxes > 1)).any())


def test_combined_nms_keeps_the_best_across_classes(tf, tmp_path):
    """More boxes survive than max_total_size: each image keeps its best 6 of them, whatever their
    class; with q = 1 and three classes, and a score threshold of -inf (TensorFlow's default)."""
    from tf2rt import convert

    c, n = 3, 20
    rng = np.random.default_rng(21)
    feeds = [dict(zip(("boxes", "scores"), _detections(rng, 2, n, 1, c)))]
    build = _combined_graph(tf, 1, c, n, 5, 6, 0.5, float("-inf"), False, True)
    path, names, cases = _freeze_run(tf, tmp_path, build, feeds)
    _check(convert(path, outputs=names), names, cases, SCORES)
    assert (cases[0][1][3] == 6).all()  # truncated to max_total_size


@pytest.mark.parametrize("n_known", [True, False], ids=["static_n", "dynamic_n"])
def test_combined_nms_with_fewer_candidates_than_rows(tf, tmp_path, n_known):
    """C * N < max_total_size (2 classes x 3 boxes, 10 rows): the rest are zero rows. With the
    number of boxes known only at run time, also a larger N (2 x 25 > 10) through the same engine."""
    from tf2rt import convert

    c = 2
    rng = np.random.default_rng(5)
    sizes = (3,) if n_known else (3, 25)
    feeds = [dict(zip(("boxes", "scores"), _detections(rng, 2, n, 1, c))) for n in sizes]
    build = _combined_graph(tf, 1, c, 3, 4, 10, 0.5, 0.1, False, True, n_known=n_known)
    path, names, cases = _freeze_run(tf, tmp_path, build, feeds)
    _check(convert(path, outputs=names), names, cases, SCORES)
    assert cases[0][1][0].shape == (2, 10, 4) and (cases[0][1][3] <= 6).all()


def test_combined_nms_orders_equal_scores_by_class(tf, tmp_path):
    """Ties between classes (one score in several classes): the lower class first, as TensorFlow
    orders them (its sort keeps class order for up to 16 candidates; beyond that its order of
    ties is unspecified)."""
    from tf2rt import convert

    n, c = 5, 3
    boxes = np.zeros((1, n, 1, 4), np.float32)
    boxes[0, :, 0] = [[k / 5, 0.0, k / 5 + 0.1, 0.1] for k in range(n)]  # disjoint: none suppressed
    base = np.array([0.9, 0.3, 0.7, 0.5, 0.6], np.float32)
    scores = np.stack([base, base, base[::-1]], axis=-1)[None]
    build = _combined_graph(tf, 1, c, n, 5, 15, 0.5, float("-inf"), False, False)
    path, names, cases = _freeze_run(tf, tmp_path, build, [{"boxes": boxes, "scores": scores}])
    _check(convert(path, outputs=names), names, cases, SCORES)
    assert cases[0][1][2][0, :3].tolist() == [0.0, 1.0, 2.0]  # three classes tied at 0.9


@pytest.mark.parametrize("version", ["v4", "v5"])
def test_padded_nms_matches_tensorflow(tf, tmp_path, version):
    """NonMaxSuppressionV4 / NonMaxSuppressionV5 with pad_to_max_output_size=True: indices (and V5's
    scores) padded with zeros to max_output_size, valid_outputs the real count; V5 unpadded too."""
    from tf2rt import convert

    rng = np.random.default_rng(3)

    def build(tf1):
        b = tf1.placeholder(tf.float32, [None, 4], name="boxes")
        s = tf1.placeholder(tf.float32, [None], name="scores")
        args = dict(boxes=b, scores=s, max_output_size=10, iou_threshold=0.4, score_threshold=0.3)
        if version == "v4":
            idx, count = tf.raw_ops.NonMaxSuppressionV4(pad_to_max_output_size=True, **args)
            return {"idx": idx, "count": count, "picked": tf.gather(b, idx)}
        idx, sc, count = tf.raw_ops.NonMaxSuppressionV5(soft_nms_sigma=0.0, pad_to_max_output_size=True, **args)
        idx2, sc2, count2 = tf.raw_ops.NonMaxSuppressionV5(soft_nms_sigma=0.0, pad_to_max_output_size=False, **args)
        return {"idx": idx, "kept_scores": sc, "count": count, "idx2": idx2, "kept_scores2": sc2, "count2": count2}

    feeds = []
    for n in (40, 6):
        bv, sv = _detections(rng, 1, n, 1, 1, clusters=25)
        feeds.append({"boxes": bv[0, :, 0], "scores": sv[0, :, 0]})
    path, names, cases = _freeze_run(tf, tmp_path, build, feeds)
    _check(convert(path, outputs=names), names, cases, ("kept_scores", "kept_scores2"))
    counts = [want[names.index("count")] for _, want in cases]
    assert counts[0] == 10 and 0 < counts[1] < 6  # truncated, and padded
    assert (cases[1][1][0][counts[1]:] == 0).all()


def _refusal(tf, tmp_path, build, output):
    from tf2rt import convert
    from tf2rt.errors import UnsupportedError

    tf1 = tf.compat.v1
    g = tf.Graph()
    with g.as_default():
        tf.identity(build(tf1), name=output)
    (tmp_path / "m.pb").write_bytes(g.as_graph_def().SerializeToString())
    with pytest.raises(UnsupportedError) as info:
        convert(tmp_path / "m.pb", outputs=[output])
    return str(info.value)


def test_soft_nms_is_refused_naming_the_node(tf, tmp_path):
    """NonMaxSuppressionV5 with soft_nms_sigma > 0 (soft NMS): one line naming the node and why."""
    def build(tf1):
        b = tf1.placeholder(tf.float32, [None, 4], name="boxes")
        s = tf1.placeholder(tf.float32, [None], name="scores")
        return tf.raw_ops.NonMaxSuppressionV5(boxes=b, scores=s, max_output_size=5, iou_threshold=0.5,
                                              score_threshold=0.0, soft_nms_sigma=0.5, name="soft")[0]

    msg = _refusal(tf, tmp_path, build, "kept")
    assert "\n" not in msg and "'soft'" in msg and "soft_nms_sigma" in msg, msg


def test_combined_nms_with_a_run_time_total_size_is_refused(tf, tmp_path):
    """CombinedNonMaxSuppression whose max_total_size is fed at run time (it sets the output shape)."""
    def build(tf1):
        b = tf1.placeholder(tf.float32, [None, 8, 1, 4], name="boxes")
        s = tf1.placeholder(tf.float32, [None, 8, 3], name="scores")
        t = tf1.placeholder(tf.int32, [], name="total")
        return tf.raw_ops.CombinedNonMaxSuppression(boxes=b, scores=s, max_output_size_per_class=4, max_total_size=t,
                                                    iou_threshold=0.5, score_threshold=0.0, name="combined")[0]

    msg = _refusal(tf, tmp_path, build, "nmsed")
    assert "\n" not in msg and "'combined'" in msg and "max_total_size" in msg, msg

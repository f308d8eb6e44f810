"""A TF Object Detection API-style SSD as one frozen graph, the way its exporter writes it:
`map_fn` preprocessing (each image resized to the network's input size and scaled to
[-1, 1]), a small convolutional backbone with box and class heads, anchors decoded with the
center-size box coder (scale factors 10, 10, 5, 5), and `map_fn` post-processing (per-class
NonMaxSuppressionV5 in a Python loop, the top k across classes, padding to k rows,
`num_detections`). Both control-flow forms; the batch size and the image size are known only
at run time. Boxes, classes and counts must equal TensorFlow's."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.graphdef_cases import build_case, check_case, control_flow

SIZE, CLASSES, K, ANCHORS = 32, 3, 8, 2


def _anchors() -> np.ndarray:
    """[N, 4] (ycenter, xcenter, h, w) on the 8x8 feature map, two shapes per cell."""
    g = (np.arange(8) + 0.5) / 8
    cy, cx = np.meshgrid(g, g, indexing="ij")
    out = []
    for y, x in zip(cy.reshape(-1), cx.reshape(-1)):
        out += [(y, x, 0.25, 0.25), (y, x, 0.35, 0.18)]
    return np.array(out, np.float32)


def _ssd(tf, p, weights):
    images = p["images"]

    def preprocess(img):
        return tf.image.resize(img, [SIZE, SIZE]) / 127.5 - 1.0

    x = tf.map_fn(preprocess, images, fn_output_signature=tf.float32)
    for i, w in enumerate(weights["backbone"]):
        x = tf.nn.relu(tf.nn.conv2d(x, tf.constant(w), 2, "SAME"))
    n = 8 * 8 * ANCHORS
    enc = tf.reshape(tf.nn.conv2d(x, tf.constant(weights["box"]), 1, "SAME"), [-1, n, 4])
    logits = tf.reshape(tf.nn.conv2d(x, tf.constant(weights["cls"]), 1, "SAME"), [-1, n, CLASSES + 1])
    scores = tf.sigmoid(logits)[:, :, 1:]  # the background column is dropped
    a = tf.constant(_anchors())
    ty, tx, th, tw = tf.unstack(enc, axis=-1)
    yc, xc = ty / 10.0 * a[:, 2] + a[:, 0], tx / 10.0 * a[:, 3] + a[:, 1]
    h, w = tf.exp(th / 5.0) * a[:, 2], tf.exp(tw / 5.0) * a[:, 3]
    boxes = tf.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=-1)

    def nms(args):
        b, s = args
        bs, ss, cs = [], [], []
        for c in range(CLASSES):
            sel, sc = tf.image.non_max_suppression_with_scores(b, s[:, c], K, iou_threshold=0.6, score_threshold=0.3)
            bs.append(tf.gather(b, sel))
            ss.append(sc)
            cs.append(tf.fill(tf.shape(sc), float(c + 1)))
        bb, ss, cc = tf.concat(bs, 0), tf.concat(ss, 0), tf.concat(cs, 0)
        top = tf.math.top_k(ss, k=tf.minimum(K, tf.shape(ss)[0]))
        found = tf.shape(top.indices)[0]
        pad = K - found
        return (tf.pad(tf.clip_by_value(tf.gather(bb, top.indices), 0.0, 1.0), [[0, pad], [0, 0]]),
                tf.pad(top.values, [[0, pad]]), tf.pad(tf.gather(cc, top.indices), [[0, pad]]),
                tf.cast(found, tf.float32))
    det = tf.map_fn(nms, (boxes, scores), fn_output_signature=(tf.float32, tf.float32, tf.float32, tf.float32))
    return list(det)


@pytest.mark.parametrize("v2", [False, True], ids=["tf1-frames", "tf2-functions"])
def test_ssd_with_map_fn_pre_and_post_processing(tf, tmp_path, v2):
    from tf2rt.engine import build_engine

    rng = np.random.default_rng(5)
    weights = {"backbone": [rng.standard_normal((3, 3, 3, 6)).astype(np.float32) * 0.4,
                            rng.standard_normal((3, 3, 6, 8)).astype(np.float32) * 0.3],
               "box": rng.standard_normal((3, 3, 8, ANCHORS * 4)).astype(np.float32) * 0.3,
               "cls": rng.standard_normal((3, 3, 8, ANCHORS * (CLASSES + 1))).astype(np.float32) * 0.5}
    images = rng.uniform(0, 255, (2, 40, 48, 3)).astype(np.float32)
    with control_flow(tf, v2):
        case = build_case(tf, tmp_path / "ssd.pb", lambda tf, p: _ssd(tf, p, weights), {"images": images},
                          shapes={"images": [None, None, None, 3]})
    counts = case.refs["out3"]
    assert (counts > 0).all() and (counts < CLASSES * K).all()  # detections found, some suppressed or cut
    assert len(np.unique(case.refs["out2"][case.refs["out1"] > 0])) > 1  # more than one class detected
    engine = build_engine(check_case(case, tol=1e-5))
    assert {"Loop", "NonMaxSuppression"} <= {n.op_type for n in engine.onnx.graph.node} | {
        m.op_type for n in engine.onnx.graph.node for a in n.attribute if a.g.node for m in a.g.node}
    # another batch size and image size through the same engine, against TensorFlow again
    other = rng.uniform(0, 255, (3, 56, 36, 3)).astype(np.float32)
    case2 = build_case(tf, tmp_path / "ssd2.pb", lambda tf, p: _ssd(tf, p, weights), {"images": other},
                       shapes={"images": [None, None, None, 3]})
    got = engine.run({"images": other})
    for name, want in case2.refs.items():
        np.testing.assert_allclose(got[name], want, rtol=1e-5, atol=1e-5)

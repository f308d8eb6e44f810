"""A whole MTCNN face detector (Zhang et al. 2016) as ONE TensorFlow graph, written from the
paper's description: an image pyramid walked by a tf.while_loop (scales computed from the
run-time image size), a fully convolutional P-Net turned into candidate boxes (threshold,
box regression, per-scale NMS) accumulated in a growing loop variable, then NMS over all
scales, square boxes, crop_and_resize to 24x24 for R-Net and 48x48 for O-Net, each with a
score filter, regression and NMS. The nets are tiny, with random but fixed weights that answer
to image structure (see _weights): a flat image finds nothing, blobs give candidates at several
scales. The graph returns the counts after every stage too, so tests can tell it is not degenerate."""

from __future__ import annotations

from typing import Any

import numpy as np

MIN_FACE = 20.0      # smallest face: the first scale is 12 / MIN_FACE
FACTOR = 0.709       # pyramid step
THRESHOLDS = (0.8, 0.3, 0.2)   # face probability kept after P-Net, R-Net, O-Net
# NMS IoU per scale (not 0.5: grid boxes 4 px apart overlap by exactly half), over all scales,
# after R-Net, after O-Net
NMS_IOU = (0.6, 0.5, 0.5, 0.5)
GAIN, FLAT_LOGIT = 3.0, -2.0


def _leaky(v: np.ndarray) -> np.ndarray:
    return np.where(v < 0, 0.1 * v, v)


def _weights(seed: int = 3, gain: float = GAIN, flat: float = FLAT_LOGIT) -> dict[str, np.ndarray]:
    """Random nets that answer to image structure: first-layer filters sum to zero (a flat patch
    excites none), and each classifier is biased so that a flat patch scores logit `flat` as a
    face; `gain` widens the spread of the face logits."""
    rng = np.random.default_rng(seed)

    def conv(k, cin, cout):
        return (rng.standard_normal((k, k, cin, cout)) * np.sqrt(2.0 / (k * k * cin))).astype(np.float32)

    def dense(cin, cout):
        return (rng.standard_normal((cin, cout)) * np.sqrt(2.0 / cin)).astype(np.float32)

    def bias(n, s=0.1):
        return (rng.standard_normal(n) * s).astype(np.float32)

    w = {}
    for name, k, cin, cout in (("p1", 3, 3, 8), ("p2", 3, 8, 12), ("p3", 3, 12, 16), ("pc", 1, 16, 2),
                               ("pr", 1, 16, 4), ("r1", 3, 3, 12), ("r2", 3, 12, 16), ("o1", 3, 3, 8),
                               ("o2", 3, 8, 16), ("o3", 3, 16, 16)):
        w[name], w[name + "_b"] = conv(k, cin, cout), bias(cout)
    for name, cin, cout in (("rd", 256, 32), ("rc", 32, 2), ("rr", 32, 4), ("od", 256, 32), ("oc", 32, 2),
                            ("or", 32, 4), ("ol", 32, 10)):
        w[name], w[name + "_b"] = dense(cin, cout), bias(cout)
    for k in ("p1", "r1", "o1"):
        w[k] -= w[k].mean(axis=(0, 1, 2), keepdims=True)
    for k in ("pr", "rr", "or", "ol"):  # box offsets are small fractions of the box
        w[k] *= 0.05
    # what each net computes for a flat patch: every map is constant, convolutions sum their filters
    chain = {"pc": (("p1", "p2", "p3"), None), "rc": (("r1", "r2"), "rd"), "oc": (("o1", "o2", "o3"), "od")}
    for head, (convs, fc) in chain.items():
        w[head] = w[head] * np.float32(gain)
        v = _leaky(w[convs[0] + "_b"])
        for k in convs[1:]:
            v = _leaky(v @ w[k].sum(axis=(0, 1)) + w[k + "_b"])
        if fc is not None:
            v = _leaky(np.tile(v, w[fc].shape[0] // v.size) @ w[fc] + w[fc + "_b"])
        logits = v @ w[head].reshape(-1, 2) + w[head + "_b"]
        w[head + "_b"][1] += np.float32(flat - (logits[1] - logits[0]))
    return w


def mtcnn(tf: Any, image: Any, w: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Of an [H, W, 3] image (0..255): boxes [N, 5] (x1, y1, x2, y2, score), landmarks [N, 10], the
    P-Net candidates of all scales [M, 5], per scale [candidates, kept by its NMS], and the
    number of boxes after each stage (candidates, NMS, R-Net filter, NMS, O-Net filter, NMS)."""
    w = w or _weights()
    C = {k: tf.constant(v) for k, v in w.items()}

    def conv(x, k, stride=1):
        y = tf.nn.conv2d(x, C[k], stride, "VALID") + C[k + "_b"]
        return tf.nn.leaky_relu(y, 0.1)

    def pool(x):
        return tf.nn.max_pool2d(x, 2, 2, "VALID")

    def dense(x, k, act=True):
        y = tf.matmul(x, C[k]) + C[k + "_b"]
        return tf.nn.leaky_relu(y, 0.1) if act else y

    def pnet(x):
        h = conv(conv(pool(conv(x, "p1")), "p2"), "p3")
        prob = tf.nn.softmax(tf.nn.conv2d(h, C["pc"], 1, "VALID") + C["pc_b"])
        return prob[0, :, :, 1], (tf.nn.conv2d(h, C["pr"], 1, "VALID") + C["pr_b"])[0]

    def rnet(x):
        h = pool(conv(pool(conv(x, "r1")), "r2"))
        h = dense(tf.reshape(h, [-1, 256]), "rd")
        return tf.nn.softmax(dense(h, "rc", False))[:, 1], dense(h, "rr", False)

    def onet(x):
        h = pool(conv(pool(conv(pool(conv(x, "o1")), "o2")), "o3"))
        h = dense(tf.reshape(h, [-1, 256]), "od")
        return tf.nn.softmax(dense(h, "oc", False))[:, 1], dense(h, "or", False), dense(h, "ol", False)

    def cols(b):
        return b[:, 0], b[:, 1], b[:, 2], b[:, 3]

    def nms(boxes, scores, iou):
        x1, y1, x2, y2 = cols(boxes)
        keep = tf.image.non_max_suppression(tf.stack([y1, x1, y2, x2], 1), scores, 500, iou)
        return keep

    def regress(boxes, offs):
        x1, y1, x2, y2 = cols(boxes)
        bw, bh = x2 - x1, y2 - y1
        return tf.stack([x1 + offs[:, 0] * bw, y1 + offs[:, 1] * bh, x2 + offs[:, 2] * bw, y2 + offs[:, 3] * bh], 1)

    def square(boxes):
        x1, y1, x2, y2 = cols(boxes)
        bw, bh = x2 - x1, y2 - y1
        side = tf.maximum(bw, bh)
        x1, y1 = x1 + bw * 0.5 - side * 0.5, y1 + bh * 0.5 - side * 0.5
        return tf.stack([x1, y1, x1 + side, y1 + side], 1)

    img = (image - 127.5) * 0.0078125
    shape = tf.shape(img)
    hf, wf = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    first = 12.0 / MIN_FACE

    def more(scale, acc, per_scale):
        return tf.minimum(hf, wf) * scale >= 12.0

    def level(scale, acc, per_scale):
        hs, ws = tf.cast(tf.math.ceil(hf * scale), tf.int32), tf.cast(tf.math.ceil(wf * scale), tf.int32)
        x = tf.image.resize(img[None], tf.stack([hs, ws]))
        prob, reg = pnet(x)
        idx = tf.where(prob > THRESHOLDS[0])
        score = tf.gather_nd(prob, idx)
        offs = tf.gather_nd(reg, idx)
        yx = tf.cast(idx, tf.float32) * 2.0
        boxes = tf.stack([yx[:, 1] / scale, yx[:, 0] / scale, (yx[:, 1] + 12.0) / scale,
                          (yx[:, 0] + 12.0) / scale], 1)
        keep = nms(boxes, score, NMS_IOU[0])
        found = tf.concat([regress(tf.gather(boxes, keep), tf.gather(offs, keep)),
                           tf.gather(score, keep)[:, None]], 1)
        counts = tf.stack([tf.shape(idx)[0], tf.shape(keep)[0]])[None]
        return scale * FACTOR, tf.concat([acc, found], 0), tf.concat([per_scale, counts], 0)

    _, cands, per_scale = tf.while_loop(
        more, level, [tf.constant(first), tf.zeros([0, 5]), tf.zeros([0, 2], tf.int32)],
        shape_invariants=[tf.TensorShape([]), tf.TensorShape([None, 5]), tf.TensorShape([None, 2])])

    def refine(net, boxes, size):
        """The net on each box's crop. TensorFlow's oneDNN convolutions reject an empty batch, so
        the net sees one blank crop more, whose result is dropped."""
        x1, y1, x2, y2 = cols(boxes)
        norm = tf.stack([y1 / (hf - 1.0), x1 / (wf - 1.0), y2 / (hf - 1.0), x2 / (wf - 1.0)], 1)
        n = tf.shape(boxes)[:1]
        crops = tf.image.crop_and_resize(img[None], norm, tf.zeros(n, tf.int32), [size, size])
        outs = net(tf.concat([crops, tf.zeros([1, size, size, 3])], 0))
        return [tf.gather(o, tf.range(n[0])) for o in outs]

    def stage(boxes, score, offs, t, iou):
        """Boxes scoring above t, moved by their offsets, then NMS; their scores; the two selections."""
        keep = tf.reshape(tf.where(score > t), [-1])
        boxes, score = regress(tf.gather(boxes, keep), tf.gather(offs, keep)), tf.gather(score, keep)
        sel = nms(boxes, score, iou)
        return tf.gather(boxes, sel), lambda: tf.gather(score, sel), keep, sel

    keep = nms(cands[:, :4], cands[:, 4], NMS_IOU[1])
    boxes = square(tf.gather(cands[:, :4], keep))
    score, offs = refine(rnet, boxes, 24)
    boxes, _, r_pass, r_kept = stage(boxes, score, offs, THRESHOLDS[1], NMS_IOU[2])
    boxes = square(boxes)
    score, offs, marks = refine(onet, boxes, 48)
    o_pass = tf.reshape(tf.where(score > THRESHOLDS[2]), [-1])
    x1, y1, x2, y2 = cols(tf.gather(boxes, o_pass))
    m = tf.gather(marks, o_pass)
    marks = tf.concat([x1[:, None] + m[:, :5] * (x2 - x1)[:, None], y1[:, None] + m[:, 5:] * (y2 - y1)[:, None]], 1)
    boxes, score, _, o_kept = stage(boxes, score, offs, THRESHOLDS[2], NMS_IOU[3])
    stages = tf.stack([tf.shape(cands)[0], tf.shape(keep)[0], tf.shape(r_pass)[0], tf.shape(r_kept)[0],
                       tf.shape(o_pass)[0], tf.shape(o_kept)[0]])
    return {"boxes": tf.concat([boxes, score()[:, None]], 1), "landmarks": tf.gather(marks, o_kept),
            "candidates": cands, "per_scale": per_scale, "stages": stages}


def scene(h: int, w: int, seed: int, blobs: int = 12) -> np.ndarray:
    """An [h, w, 3] float image (0..255): a plain background with soft light and dark blobs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32) + rng.uniform(100, 160, 3)
    for _ in range(blobs):
        cy, cx, s = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(2, 8)
        img += rng.uniform(-100, 100, 3) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))[..., None]
    return np.clip(img, 0, 255).astype(np.float32)

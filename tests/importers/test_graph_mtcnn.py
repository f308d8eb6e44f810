"""A whole MTCNN face detector in ONE TensorFlow graph (tests/helpers/mtcnn_graph.py: image
pyramid in a tf.while_loop with scales from the run-time image size, ResizeBilinear to a
run-time size per level, P-Net, candidates from Where/GatherNd, per-scale
NonMaxSuppressionV3, boxes accumulated in a growing loop variable; then NMS over all scales,
square boxes, CropAndResize to 24x24 for R-Net and 48x48 for O-Net, score filters, box
regression, landmarks) converts in both control-flow forms (TF1 frames, TF2 While) into ONE
engine that matches TensorFlow at several image sizes, including images where nothing is found.

Ops covered: ResizeBilinear, CropAndResize, NonMaxSuppressionV3, Where, GatherNd, GatherV2,
StridedSlice, Pack, ConcatV2, Range, Fill, Shape, Ceil, Maximum, Minimum, Softmax, LeakyRelu,
Conv2D, MaxPool, MatMul."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.graphdef_cases import control_flow
from helpers.mtcnn_graph import mtcnn, scene

FORMS = [False, True]
FORM_IDS = ["tf1-frames", "tf2-functions"]
OUTPUTS = ("boxes", "landmarks", "candidates", "per_scale", "stages")
# two sizes with faces found (one engine for both), and images where nothing is found: a flat
# gray one (P-Net finds nothing), a busy one whose candidates R-Net rejects... and one smaller
# than the smallest face (the pyramid has no level)
IMAGES = {"64x80": scene(64, 80, 1), "96x72": scene(96, 72, 1), "96x72b": scene(96, 72, 7),
          "flat": np.full((64, 80, 3), 127.5, np.float32), "empty-scene": scene(64, 80, 4),
          "tiny": scene(16, 20, 1)}
FOUND = ("64x80", "96x72", "96x72b")


@pytest.fixture(scope="module", params=FORMS, ids=FORM_IDS)
def detector(request, tf, tmp_path_factory):
    """The detector's .pb (one control-flow form) and TensorFlow's outputs for every image."""
    tf1 = tf.compat.v1
    with control_flow(tf, request.param):
        g = tf.Graph()
        with g.as_default():
            image = tf1.placeholder(tf.float32, [None, None, 3], name="image")
            outs = {k: tf.identity(v, name=k) for k, v in mtcnn(tf, image).items()}
            with tf1.Session(graph=g) as sess:
                refs = {name: sess.run(outs, {image: img}) for name, img in IMAGES.items()}
    path = tmp_path_factory.mktemp("mtcnn") / "mtcnn.pb"
    path.write_bytes(g.as_graph_def().SerializeToString())
    return path, refs


def test_tensorflow_run_is_not_degenerate(detector):
    """Faces at several scales, every NMS removes boxes somewhere, each net filters; the other
    images find nothing."""
    _, refs = detector
    for name in FOUND:
        r = refs[name]
        per_scale, stages = r["per_scale"], r["stages"]
        assert (per_scale[:, 1] > 0).sum() >= 3, per_scale  # candidates at three scales or more
        assert (per_scale[:, 1] < per_scale[:, 0]).any(), per_scale  # per-scale NMS suppresses
        assert stages[1] < stages[0] and stages[2] < stages[1], stages  # NMS over all scales; R-Net filter
        assert len(r["boxes"]) >= 3 and stages[-1] == len(r["boxes"]), stages
    assert any(refs[n]["stages"][3] < refs[n]["stages"][2] for n in FOUND)  # NMS after R-Net suppresses
    for name in ("flat", "empty-scene", "tiny"):
        assert refs[name]["boxes"].shape == (0, 5) and refs[name]["landmarks"].shape == (0, 10)
    assert refs["tiny"]["per_scale"].shape == (0, 2)  # no pyramid level at all
    assert refs["empty-scene"]["stages"][0] == 0 and len(refs["flat"]["per_scale"]) == 4


@pytest.mark.parametrize("backend", ["onnxruntime", "reference"])
def test_one_engine_matches_tensorflow_at_every_size(detector, backend):
    from tf2rt import convert

    path, refs = detector
    engine = convert(path)  # the default outputs: the graph's results, not its unread loop counters
    assert sorted(engine.output_names) == sorted(OUTPUTS)
    for name, img in IMAGES.items():
        got = engine.run({"image": img}, backend=backend)
        for key in OUTPUTS:
            want = refs[name][key]
            assert got[key].shape == want.shape, (name, key, got[key].shape, want.shape)
            if key in ("per_scale", "stages"):
                assert np.array_equal(got[key], want), (name, key)
            elif want.size:  # pixel coordinates and scores
                err = float(np.abs(got[key] - want).max())
                assert err <= 1e-4, (name, key, err)


def test_the_engine_holds_the_pipeline(detector):
    """One Loop over the pyramid with a Resize inside; NMS and the crops outside it."""
    from tf2rt import convert

    engine = convert(detector[0], outputs=list(OUTPUTS))
    top = {n.op_type for n in engine.onnx.graph.node}
    loop = next(n for n in engine.onnx.graph.node if n.op_type == "Loop")
    body = {n.op_type for n in loop.attribute[0].g.node}
    nms = {op for op in top | body if op.startswith("NonMax")}  # ONNX's NMS, in the loop and after it
    assert {"Resize", "Conv"} <= body and "Conv" in top and nms <= body and nms <= top and nms

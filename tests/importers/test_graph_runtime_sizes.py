"""Image ops whose sizes are known only at run time, converted once and run at several image
sizes, compared with TensorFlow on onnxruntime and the reference backend: ResizeBilinear and
ResizeNearestNeighbor to a size computed from the image's shape (every align_corners /
half_pixel_centers setting, up and down), a constant size from an image of run-time size,
CropAndResize from an image of run-time height and width, StridedSlice adding or dropping
axes of a tensor with several run-time dimensions, and run-time sizes as outputs.

Ops covered: ResizeBilinear, ResizeNearestNeighbor, CropAndResize, StridedSlice, Shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from helpers.graphdef_cases import max_err

SIZES = [(5, 7), (9, 4), (1, 1)]


def _graph(tf: Any, path: Path, fn: Callable, inputs: dict[str, tuple], feeds: list[dict[str, np.ndarray]]):
    """Build fn(tf, placeholders) once, write the .pb, and run TensorFlow on every feed."""
    v1 = tf.compat.v1
    g = tf.Graph()
    with g.as_default():
        phs = {k: v1.placeholder(dt, shape, name=k) for k, (dt, shape) in inputs.items()}
        outs = [tf.identity(o, name=f"out{i}") for i, o in enumerate(fn(tf, phs))]
        with v1.Session(graph=g) as sess:
            refs = [sess.run(outs, {phs[k]: v for k, v in f.items()}) for f in feeds]
    path.write_bytes(g.as_graph_def().SerializeToString())
    return [o.op.name for o in outs], refs


def _check(path: Path, names: list[str], feeds: list[dict], refs: list[list[np.ndarray]], tol: float = 1e-5):
    from tf2rt import convert

    engine = convert(path, outputs=names)
    for backend in ("onnxruntime", "reference"):
        for f, want in zip(feeds, refs):
            got = engine.run(f, backend=backend)
            for name, w in zip(names, want):
                assert got[name].shape == w.shape, (backend, name, got[name].shape, w.shape)
                err = max_err(got[name], w)  # relative to the output's scale above 1
                assert err <= tol, f"{name} on {backend} for {f[next(iter(f))].shape}: error {err:.3g}"
    return engine


def _images(sizes, channels=2, seed=0):
    rng = np.random.default_rng(seed)
    return [{"x": rng.standard_normal((1, h, w, channels)).astype(np.float32)} for h, w in sizes]


@pytest.mark.parametrize("bilinear", [True, False], ids=["bilinear", "nearest"])
@pytest.mark.parametrize("align,half", [(False, False), (True, False), (False, True)],
                         ids=["legacy", "align_corners", "half_pixel"])
def test_resize_to_a_run_time_size(tf, tmp_path, bilinear, align, half):
    """Sizes from the image's shape: one up (2h-1, w+3), one down (ceil(0.6 h), ceil(0.45 w))."""
    op = tf.raw_ops.ResizeBilinear if bilinear else tf.raw_ops.ResizeNearestNeighbor

    def fn(tf, p):
        s = tf.shape(p["x"])
        up = tf.stack([s[1] * 2 - 1, s[2] + 3])
        down = tf.cast(tf.math.ceil(tf.cast(s[1:3], tf.float32) * [0.6, 0.45]), tf.int32)
        return [op(images=p["x"], size=up, align_corners=align, half_pixel_centers=half),
                op(images=p["x"], size=down, align_corners=align, half_pixel_centers=half)]

    feeds = _images(SIZES)
    names, refs = _graph(tf, tmp_path / "m.pb", fn, {"x": (tf.float32, [1, None, None, 2])}, feeds)
    engine = _check(tmp_path / "m.pb", names, feeds, refs)
    assert "Resize" in {n.op_type for n in _all_nodes(engine.onnx.graph)}


def test_constant_size_from_an_image_of_run_time_size(tf, tmp_path):
    """tf.image.resize (half-pixel bilinear) and nearest to a fixed size, any batch, height, width."""
    def fn(tf, p):
        return [tf.image.resize(p["x"], [6, 5]), tf.image.resize(p["x"], [3, 8], method="nearest")]

    feeds = _images([(5, 7), (11, 3)]) + [{"x": np.random.default_rng(1).standard_normal((3, 4, 4, 2))
                                           .astype(np.float32)}]
    names, refs = _graph(tf, tmp_path / "m.pb", fn, {"x": (tf.float32, [None, None, None, 2])}, feeds)
    _check(tmp_path / "m.pb", names, feeds, refs)


def test_resize_of_integer_pixels(tf, tmp_path):
    """An int32 image: bilinear gives float32, nearest keeps int32 (as TensorFlow's kernels do)."""
    def fn(tf, p):
        s = tf.shape(p["x"])[1:3] + 2
        return [tf.compat.v1.image.resize_bilinear(p["x"], s),
                tf.compat.v1.image.resize_nearest_neighbor(p["x"], s, half_pixel_centers=True)]

    rng = np.random.default_rng(2)
    feeds = [{"x": rng.integers(0, 256, (1, h, w, 3)).astype(np.int32)} for h, w in ((4, 6), (7, 2))]
    names, refs = _graph(tf, tmp_path / "m.pb", fn, {"x": (tf.int32, [1, None, None, 3])}, feeds)
    assert refs[0][0].dtype == np.float32 and refs[0][1].dtype == np.int32
    _check(tmp_path / "m.pb", names, feeds, refs)


def test_crop_and_resize_from_an_image_of_run_time_size(tf, tmp_path):
    """Boxes inside, partly outside and flipped; the image's height and width come from its shape."""
    boxes = np.array([[0.1, 0.2, 0.8, 0.9], [0.5, 0.5, 0.2, 0.1], [-0.2, 0.3, 0.6, 1.3]], np.float32)

    def fn(tf, p):
        n = tf.shape(p["boxes"])[:1]
        return [tf.image.crop_and_resize(p["x"], p["boxes"], tf.zeros(n, tf.int32), [4, 5], extrapolation_value=-2.0),
                tf.image.crop_and_resize(p["x"], p["boxes"], tf.zeros(n, tf.int32), [1, 3], method="nearest")]

    feeds = [dict(f, boxes=boxes) for f in _images([(11, 13), (6, 20)], channels=3)]
    feeds.append({"x": feeds[0]["x"], "boxes": np.zeros((0, 4), np.float32)})  # no boxes at all
    names, refs = _graph(tf, tmp_path / "m.pb", fn, {"x": (tf.float32, [1, None, None, 3]),
                                                     "boxes": (tf.float32, [None, 4])}, feeds)
    assert (refs[0][0] == -2.0).any() and refs[2][0].shape == (0, 4, 5, 3)
    _check(tmp_path / "m.pb", names, feeds, refs)


def test_slices_adding_and_dropping_axes_of_run_time_dims(tf, tmp_path):
    """img[None], x[0, :, :, 1] and x[:, None, :, :, 1:, tf.newaxis] with several run-time dims."""
    def fn(tf, p):
        x = p["x"]
        return [x[None] * 2.0, x[0, :, :, 1], x[:, None, :, :, 1:, tf.newaxis]]

    feeds = _images([(3, 4), (5, 2)], channels=3)
    names, refs = _graph(tf, tmp_path / "m.pb", fn, {"x": (tf.float32, [None, None, None, 3])}, feeds)
    _check(tmp_path / "m.pb", names, feeds, refs, tol=0.0)


def _all_nodes(graph):
    for node in graph.node:
        yield node
        for a in node.attribute:
            if a.g is not None:
                yield from _all_nodes(a.g)


def test_sizes_known_only_at_run_time_as_outputs(tf, tmp_path):
    """tf.shape(x)[1:3] * 2 and the number of positive elements are outputs of their own."""
    def fn(tf, p):
        return [tf.shape(p["x"])[1:3] * 2, tf.shape(tf.where(p["x"] > 0))[0]]

    feeds = _images([(3, 4), (6, 5)])
    names, refs = _graph(tf, tmp_path / "m.pb", fn, {"x": (tf.float32, [1, None, None, 2])}, feeds)
    assert refs[1][0].tolist() == [12, 10]
    _check(tmp_path / "m.pb", names, feeds, refs, tol=0.0)

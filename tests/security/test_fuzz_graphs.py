"""Bounded fuzzing of the TF graph front end and the engine loader: mutated frozen `.pb`
graphs (with an RNN while loop and with function calls), `.meta` graphs next to their
checkpoint, SavedModels and engines (bytes and metadata JSON). Whatever the bytes, converting
or loading either works or raises a Tf2rtError - never another exception - and no mutation
makes memory grow far beyond the files' size (tracemalloc peak)."""

from __future__ import annotations

import json
import os
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tf2rt.errors import Tf2rtError

EXAMPLES = int(os.environ.get("TF2RT_FUZZ_EXAMPLES", "40"))
PEAK_LIMIT = 256 << 20  # bytes: every source here is a few KiB to a few hundred KiB

mutation = st.lists(st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
    st.tuples(st.just("set"), st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True), st.just(0)),
    st.tuples(st.just("insert"), st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
), min_size=1, max_size=4)


def _mutate(data: bytes, muts) -> bytes:
    b = bytearray(data)
    for kind, where, value in muts:
        if not b:
            break
        i = min(int(where * len(b)), len(b) - 1)
        if kind == "flip":
            b[i] ^= value
        elif kind == "set":
            b[i] = value
        elif kind == "truncate":
            del b[i:]
        else:
            b.insert(i, value)
    return bytes(b)


@pytest.fixture(scope="module")
def sources(tf, tmp_path_factory):
    """A frozen dynamic_rnn graph, a TF1 checkpoint with its .meta graph, a SavedModel, an engine."""
    tf1 = tf.compat.v1
    root = tmp_path_factory.mktemp("fuzz_graphs")
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, None, 3], name="x")
        out, _ = tf1.nn.dynamic_rnn(tf1.nn.rnn_cell.GRUCell(4), x, dtype=tf.float32)
        probs = tf.nn.softmax(tf1.layers.dense(out, 3, name="head"), name="probs")
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            frozen = tf1.graph_util.convert_variables_to_constants(sess, g.as_graph_def(), [probs.op.name])
            prefix = tf1.train.Saver().save(sess, str(root / "ckpt" / "model.ckpt"))
    (root / "rnn.pb").write_bytes(frozen.SerializeToString())

    class M(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(np.arange(12, dtype=np.float32).reshape(3, 4) / 7)

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
        def __call__(self, x):
            return tf.nn.relu(tf.matmul(x, self.w))

    tf.saved_model.save(M(), str(root / "sm"))
    import tf2rt

    tf2rt.convert(root / "rnn.pb", root / "engine.onnx")
    return {"pb": root / "rnn.pb", "prefix": Path(prefix), "saved_model": root / "sm",
            "engine": root / "engine.onnx"}


def _attempt(fn) -> None:
    tracemalloc.start()
    try:
        fn()
    except Tf2rtError:
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < PEAK_LIMIT, f"peak {peak} bytes"


FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@FUZZ
@given(muts=mutation)
def test_mutated_frozen_graph(sources, tmp_path, muts):
    import tf2rt

    path = tmp_path / "m.pb"
    path.write_bytes(_mutate(sources["pb"].read_bytes(), muts))
    _attempt(lambda: tf2rt.convert(path))


@FUZZ
@given(muts=mutation)
def test_mutated_meta_graph(sources, tmp_path, muts):
    import tf2rt

    src = sources["prefix"]
    dst = tmp_path / "ckpt"
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src.parent, dst)
    meta = dst / (src.name + ".meta")
    meta.write_bytes(_mutate(meta.read_bytes(), muts))
    _attempt(lambda: tf2rt.convert(dst / src.name))


@FUZZ
@given(muts=mutation)
def test_mutated_saved_model(sources, tmp_path, muts):
    import tf2rt

    dst = tmp_path / "sm"
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(sources["saved_model"], dst)
    pb = dst / "saved_model.pb"
    pb.write_bytes(_mutate(pb.read_bytes(), muts))
    _attempt(lambda: tf2rt.convert(dst))


@FUZZ
@given(muts=mutation)
def test_mutated_engine_bytes(sources, tmp_path, muts):
    from tf2rt.engine import load_engine

    path = tmp_path / "e.onnx"
    path.write_bytes(_mutate(sources["engine"].read_bytes(), muts))

    def load_and_run() -> None:
        engine = load_engine(path)
        engine.run({"x": np.zeros((1, 2, 3), np.float32)})

    _attempt(load_and_run)


_json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2 ** 40, 2 ** 40), st.floats(allow_nan=False),
              st.text(max_size=8)),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=6), children,
                                                                               max_size=4)),
    max_leaves=12)


@FUZZ
@given(key=st.sampled_from(["inputs", "outputs", "states", "model", "precision", "version", "format", "source"]),
       value=_json_values)
def test_engine_metadata_with_any_json(sources, tmp_path, key, value):
    """Any JSON value in any metadata field: loads and runs, or a Tf2rtError."""
    import onnx

    from tf2rt.engine import load_engine

    model = onnx.load(str(sources["engine"]))
    for p in model.metadata_props:
        if p.key == "tf2rt":
            meta = json.loads(p.value)
            meta[key] = value
            p.value = json.dumps(meta)
    path = tmp_path / "e.onnx"
    path.write_bytes(model.SerializeToString())

    def load_and_run() -> None:
        engine = load_engine(path)
        engine.run({"x": np.zeros((1, 2, 3), np.float32)})

    _attempt(load_and_run)

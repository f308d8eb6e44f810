"""`tf2rt.convert` is the one front door: feed-forward Keras files and frozen graphs go to the
CNN importers, recurrent ones to the RNN importers; outputs match Keras / TensorFlow."""

from __future__ import annotations

import numpy as np
import pytest

import oracles
import tf2rt
from tf2rt.errors import FormatError
from tf2rt.importers import detect_source


@pytest.fixture(scope="module")
def small_cnn():
    keras = oracles.keras()
    rng = np.random.RandomState(3)
    model = keras.Sequential([
        keras.Input((12, 12, 3), name="image"),
        keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv"),
        keras.layers.MaxPooling2D(2, name="pool"),
        keras.layers.Flatten(name="flat"),
        keras.layers.Dense(5, activation="softmax", name="probs"),
    ])
    model.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype(np.float32) for w in model.get_weights()])
    x = rng.rand(2, 12, 12, 3).astype(np.float32)
    return model, x, np.asarray(model(x))


def _only_output(engine, x):
    outputs = engine.run({engine.inputs[0].name: x})
    assert len(outputs) == 1
    return next(iter(outputs.values()))


def test_convert_feed_forward_keras_file(small_cnn, tmp_path):
    model, x, expected = small_cnn
    path = tmp_path / "cnn.keras"
    model.save(path)
    assert detect_source(path) == "keras"
    engine = tf2rt.convert(path, tmp_path / "cnn.onnx")
    assert engine.metadata["model"]["format"] == "keras"
    assert "feed-forward" in engine.metadata["model"]["summary"]
    np.testing.assert_allclose(_only_output(engine, x), expected, atol=1e-5)


def test_convert_frozen_graphdef(small_cnn, tmp_path, tf):
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    model, x, expected = small_cnn
    spec = tf.TensorSpec([None, 12, 12, 3], tf.float32, name="image")
    frozen = convert_variables_to_constants_v2(tf.function(lambda t: model(t)).get_concrete_function(spec))
    path = tmp_path / "cnn.pb"
    path.write_bytes(frozen.graph.as_graph_def().SerializeToString())
    assert detect_source(path) == "graphdef"
    engine = tf2rt.convert(path)
    np.testing.assert_allclose(_only_output(engine, x), expected, atol=1e-5)


def test_convert_missing_pb_is_a_clear_error(tmp_path):
    with pytest.raises(FormatError, match="does not exist"):
        tf2rt.convert(tmp_path / "nothing.pb")

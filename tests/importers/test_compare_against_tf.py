"""`tf2rt compare ENGINE --against tf:MODEL` runs the original model with TensorFlow and
compares every backend with it; a model with other weights is reported as a mismatch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import oracles
import tf2rt
from tf2rt.cli import main

REPO = Path(__file__).resolve().parents[2]


def _keras_cnn(path: Path, seed: int) -> None:
    keras = oracles.keras()
    rng = np.random.RandomState(seed)
    model = keras.Sequential([
        keras.Input((10, 10, 3), name="image"),
        keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
        keras.layers.Flatten(name="flat"),
        keras.layers.Dense(6, name="logits"),
    ])
    model.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype(np.float32) for w in model.get_weights()])
    model.save(path)


@pytest.fixture(scope="module")
def cnn_files(tmp_path_factory):
    oracles.tf()
    root = tmp_path_factory.mktemp("against")
    _keras_cnn(root / "a.keras", 1)
    _keras_cnn(root / "b.keras", 2)  # same layers, other weights
    tf2rt.convert(root / "a.keras", root / "a.onnx")
    return root


def test_keras_model_matches_on_both_backends(cnn_files, capsys):
    rc = main(["compare", str(cnn_files / "a.onnx"), "--against", f"tf:{cnn_files / 'a.keras'}",
               "--backends", "onnxruntime,reference"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert out.count("| logits | [1, 6] |") == 2 and "OK: all outputs match" in out


def test_other_weights_are_a_mismatch(cnn_files, capsys):
    rc = main(["compare", str(cnn_files / "a.onnx"), "--against", f"tf:{cnn_files / 'b.keras'}",
               "--backends", "onnxruntime"])
    assert rc == 1
    assert "MISMATCH" in capsys.readouterr().out


def test_tf1_checkpoint_with_meta_graph(tmp_path, capsys):
    """The bundled char-RNN: TF1 graph restored from its .meta; streaming states start at zero."""
    model = REPO / "examples" / "charrnn" / "model"
    tf2rt.convert(model, tmp_path / "demo.onnx")
    rc = main(["compare", str(tmp_path / "demo.onnx"), "--against", f"tf:{model}", "--backends", "onnxruntime"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "| logits |" in out and "| probs |" in out


def test_frozen_graph_and_saved_model(cnn_files, tmp_path, capsys):
    tf = oracles.tf()
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    model = oracles.keras().models.load_model(cnn_files / "a.keras")
    spec = tf.TensorSpec([None, 10, 10, 3], tf.float32, name="image")
    fn = tf.function(lambda image: {"logits": model(image)})
    frozen = convert_variables_to_constants_v2(fn.get_concrete_function(spec))
    pb = tmp_path / "a.pb"
    pb.write_bytes(frozen.graph.as_graph_def().SerializeToString())
    module = tf.Module()
    module.model = model
    module.serve = tf.function(fn, input_signature=[spec])
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": module.serve})
    for src in (pb, tmp_path / "sm"):
        engine_path = tmp_path / f"{src.name}.onnx"
        tf2rt.convert(src, engine_path)
        rc = main(["compare", str(engine_path), "--against", f"tf:{src}", "--backends", "onnxruntime"])
        out = capsys.readouterr().out
        assert rc == 0 and "OK: all outputs match" in out, (src, out)

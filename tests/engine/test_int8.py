"""int8 post-training quantization: a CNN trained on scikit-learn's digits loses at most one
point of test accuracy; the QDQ engine runs in onnxruntime and in the reference backend."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import oracles

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "train_digits_cnn.py"


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    oracles.keras()
    spec = importlib.util.spec_from_file_location("train_digits_cnn", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    model, data = mod.train(seed=0, epochs=40)
    path = tmp_path_factory.mktemp("int8") / "digits.keras"
    model.save(path)
    keras_acc = float((model.predict(data["x_test"], verbose=0).argmax(1) == data["y_test"]).mean())
    return path, data, keras_acc


def test_int8_accuracy_on_digits(digits, tmp_path):
    from tf2rt.engine import build_engine, load_engine
    from tf2rt.engine.int8 import accuracy, quantize
    from tf2rt.importers.keras import import_keras

    path, data, keras_acc = digits
    assert keras_acc > 0.9, f"the trained CNN is too weak to test quantization ({keras_acc:.3f})"
    fp32 = build_engine(import_keras(path))
    acc32 = accuracy(fp32, data["x_test"], data["y_test"])
    assert abs(acc32 - keras_acc) < 1e-9
    calib = tmp_path / "calib.npz"
    np.savez(calib, digit=data["x_train"][:256])
    int8 = quantize(fp32, calib)
    assert int8.metadata["precision"] == "int8"
    ops = {n.op_type for n in int8.onnx.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    inits = {t.name: t for t in int8.onnx.graph.initializer}
    assert any(t.data_type == 3 and len(t.dims) == 4 for t in inits.values()), "no int8 conv weights"
    acc8 = accuracy(int8, data["x_test"], data["y_test"])
    print(f"digits test accuracy: keras {keras_acc:.4f}, fp32 engine {acc32:.4f}, int8 engine {acc8:.4f}")
    assert acc8 >= acc32 - 0.01, f"int8 lost {100 * (acc32 - acc8):.2f} points"
    # the saved file round-trips and the reference interpreter agrees with onnxruntime
    int8.save(tmp_path / "digits_int8.engine")
    again = load_engine(tmp_path / "digits_int8.engine")
    x = data["x_test"][:32]
    a = again.run({"digit": x})["logits"]
    b = again.run({"digit": x}, backend="reference")["logits"]
    assert np.abs(a - b).max() <= 0.05 * np.abs(b).max()
    assert (a.argmax(1) == b.argmax(1)).mean() >= 0.95


def test_int8_needs_fp32_engine(digits):
    from tf2rt.engine import build_engine
    from tf2rt.engine.int8 import quantize
    from tf2rt.errors import UnsupportedError
    from tf2rt.importers.keras import import_keras

    path, data, _ = digits
    with pytest.raises(UnsupportedError, match="fp32"):
        quantize(build_engine(import_keras(path), precision="fp16"), data["x_train"][:16])


def test_calibration_shape_checked(digits):
    from tf2rt.engine import build_engine
    from tf2rt.engine.int8 import quantize
    from tf2rt.errors import Tf2rtError
    from tf2rt.importers.keras import import_keras

    path, _, _ = digits
    with pytest.raises(Tf2rtError, match="calibration data has shape"):
        quantize(build_engine(import_keras(path)), np.zeros((4, 9, 9, 1), np.float32))

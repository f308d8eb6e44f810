"""Write the Keras GRU classifier the GPU engine benchmark runs (needs TensorFlow).

    python benchmarks/make_keras_gru_classifier.py

A sequence classifier as Keras users write one: x [batch, 50, 64] -> GRU(128) (Keras 3's
default reset_after=True, last output only) -> Dense(10, softmax), random weights from a
fixed seed, saved as a .keras file and converted by tf2rt. Writes
benchmarks/assets/keras_gru_classifier.onnx (the engine) and keras_gru_classifier.npz (the
Keras weights, for the PyTorch peer on a machine without TensorFlow) and checks the engine
against Keras.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ASSETS = ROOT / "benchmarks" / "assets"
T, FEATURES, HIDDEN, CLASSES = 50, 64, 128, 10


def main() -> int:
    import keras

    from tf2rt import convert

    keras.utils.set_random_seed(7)
    model = keras.Sequential([keras.Input((T, FEATURES)), keras.layers.GRU(HIDDEN, name="gru"),
                              keras.layers.Dense(CLASSES, activation="softmax", name="classes")])
    ASSETS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gru_classifier.keras"
        model.save(path)
        engine = convert(path, ASSETS / "keras_gru_classifier.onnx", states=False)
    gru, dense = model.get_layer("gru"), model.get_layer("classes")
    k, rk, b = (w.numpy() for w in gru.weights)
    dk, db = (w.numpy() for w in dense.weights)
    np.savez(ASSETS / "keras_gru_classifier.npz", kernel=k, recurrent_kernel=rk, bias=b, dense_kernel=dk,
             dense_bias=db)
    x = np.random.default_rng(0).standard_normal((4, T, FEATURES)).astype(np.float32)
    got = engine.run({engine.input_names[0]: x})["classes"]
    err = float(np.abs(got - model.predict(x, verbose=0)).max())
    print(f"engine inputs {[(s.name, s.shape) for s in engine.inputs]}, max error against Keras {err:.1e}")
    return 0 if err <= 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())

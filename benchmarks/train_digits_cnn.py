"""Train a small CNN on scikit-learn's digits (8x8 handwritten digits) with Keras.

Used by the int8 test and benchmark: the model is saved as .keras, with the calibration
split (training images) and the held-out test split in an .npz.

    python benchmarks/train_digits_cnn.py OUT_DIR [--epochs 40] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np


def digits_splits(seed: int = 0) -> dict[str, np.ndarray]:
    """x in [0, 1], shape [N, 8, 8, 1]; a stratified 75/25 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[..., None]
    xtr, xte, ytr, yte = train_test_split(x, d.target, test_size=0.25, random_state=seed, stratify=d.target)
    return {"x_train": xtr, "y_train": ytr.astype(np.int64), "x_test": xte, "y_test": yte.astype(np.int64)}


def train(seed: int = 0, epochs: int = 40):
    """(Keras model, splits): conv-BN-ReLU stack with a dense head, trained with Adam."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    keras.utils.set_random_seed(seed)
    data = digits_splits(seed)
    L = keras.layers
    inp = keras.Input((8, 8, 1), name="digit")
    x = L.Conv2D(16, 3, padding="same", use_bias=False, name="conv1")(inp)
    x = L.BatchNormalization(name="bn1")(x)
    x = L.ReLU(name="relu1")(x)
    x = L.Conv2D(32, 3, strides=2, padding="same", name="conv2")(x)
    x = L.BatchNormalization(name="bn2")(x)
    x = L.ReLU(name="relu2")(x)
    x = L.DepthwiseConv2D(3, padding="same", name="dw3")(x)
    x = L.Conv2D(32, 1, activation="relu", name="pw3")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(64, activation="relu", name="fc1")(x)
    out = L.Dense(10, name="logits")(x)
    model = keras.Model(inp, out, name="digits_cnn")
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(data["x_train"], data["y_train"], epochs=epochs, batch_size=64, verbose=0)
    return model, data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    model, data = train(args.seed, args.epochs)
    args.out.mkdir(parents=True, exist_ok=True)
    model.save(args.out / "digits_cnn.keras")
    np.savez(args.out / "digits.npz", **data)
    acc = float((model.predict(data["x_test"], verbose=0).argmax(1) == data["y_test"]).mean())
    print(f"saved {args.out / 'digits_cnn.keras'}; Keras test accuracy {acc:.4f}")


if __name__ == "__main__":
    main()

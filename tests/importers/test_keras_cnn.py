"""keras.applications CNNs (seeded, non-degenerate) saved as .keras, imported without Keras,
compared with Keras/TensorFlow on real photographs (scikit-image): fp32 and fp16 engines.

Also: a legacy tf.keras .h5 model, and unsupported layers listed all at once.
"""

from __future__ import annotations

import numpy as np
import pytest

import oracles
from helpers.keras_cnn import (MODELS, RAW_PIXELS, VAR_FLOOR, assert_not_degenerate,  # noqa: F401
                               check_engine, photos, rel_err, rel_l2, seeded_application)


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    out = {}
    d = tmp_path_factory.mktemp("keras_cnn")
    for name, size in MODELS.items():
        model = seeded_application(name, size)
        x = photos(size, name)
        ref = model(x).numpy().astype(np.float64)
        path = d / f"{name}.keras"
        model.save(path)
        out[name] = (path, x, ref)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_application_keras_file(keras_files, name):
    from tf2rt.importers.keras import import_keras

    path, x, ref = keras_files[name]
    assert_not_degenerate(ref)
    net = import_keras(path)
    assert [t.name for t in net.inputs] and net.outputs[0].name == "predictions"
    check_engine(net, x, ref, name)


def test_sequential_h5_legacy(tmp_path):
    """A tf.keras (Keras 2) Sequential CNN saved as .h5: PReLU, LeakyReLU, separable conv, pooling."""
    tfk = oracles.tf_keras()
    tfk.utils.set_random_seed(1)
    L = tfk.layers
    model = tfk.Sequential([
        L.InputLayer(input_shape=(20, 20, 3), name="pixels"),
        L.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="c1"),
        L.BatchNormalization(name="bn1"),
        L.PReLU(shared_axes=[1, 2], name="prelu"),
        L.SeparableConv2D(8, 3, padding="same", depth_multiplier=2, name="sep"),
        L.LeakyReLU(0.1, name="leaky"),
        L.AveragePooling2D(3, strides=2, padding="same", name="avg"),
        L.ZeroPadding2D(((1, 0), (0, 2)), name="zpad"),
        L.MaxPooling2D(2, name="max"),
        L.Activation("hard_sigmoid", name="hs"),
        L.Flatten(name="flat"),
        L.Dense(7, activation="softmax", name="probs"),
    ])
    rng = np.random.default_rng(2)
    bn = model.get_layer("bn1")
    bn.set_weights([rng.uniform(0.5, 1.5, 6), rng.normal(0, 0.3, 6), rng.normal(0, 0.3, 6), rng.uniform(0.5, 2, 6)])
    model.get_layer("prelu").set_weights([rng.uniform(0.05, 0.5, (1, 1, 6))])
    path = tmp_path / "small.h5"
    model.save(path)
    x = rng.uniform(-1, 1, (3, 20, 20, 3)).astype(np.float32)
    ref = model(x).numpy().astype(np.float64)
    from tf2rt.engine import build_engine
    from tf2rt.importers.keras import import_keras

    net = import_keras(path)
    y = build_engine(net).run({net.inputs[0].name: x})[net.outputs[0].name]
    assert rel_err(y, ref) < 1e-5, rel_err(y, ref)
    yr = build_engine(net).run({net.inputs[0].name: x}, backend="reference")[net.outputs[0].name]
    assert rel_err(yr, ref) < 1e-5, rel_err(yr, ref)


def test_unsupported_layers_listed_at_once(tmp_path):
    from tf2rt.errors import UnsupportedError
    from tf2rt.importers.keras import import_keras

    keras = oracles.keras()
    inp = keras.Input((8, 8, 3), name="img")
    x = keras.layers.Conv2D(4, 3, name="c")(inp)
    x = keras.layers.UpSampling2D(name="up1")(x)
    x = keras.layers.UpSampling2D(name="up2")(x)
    x = keras.layers.Cropping2D(1, name="crop")(x)
    x = keras.layers.Activation("mish", name="act")(x)
    path = tmp_path / "bad.keras"
    keras.Model(inp, x).save(path)
    with pytest.raises(UnsupportedError) as exc:
        import_keras(path)
    msg = str(exc.value)
    assert "UpSampling2D x2" in msg and "Cropping2D x1" in msg and "mish" in msg


@pytest.mark.parametrize("config", [{"class_name": "Functional", "config": {}},
                                    {"class_name": "Functional", "config": {"layers": [{"class_name": "Conv2D"}],
                                                                            "input_layers": [], "output_layers": []}},
                                    {"class_name": "Sequential", "config": {"layers": "nonsense"}}])
def test_malformed_keras_config(tmp_path, config):
    """Hand-made .keras files with broken configs fail with one clear error, no traceback."""
    import io
    import json
    import zipfile

    import h5py

    from tf2rt.errors import Tf2rtError
    from tf2rt.importers.keras import import_keras

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_group("layers")
    path = tmp_path / "broken.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", json.dumps(config))
        z.writestr("metadata.json", json.dumps({"keras_version": "3.15.0"}))
        z.writestr("model.weights.h5", buf.getvalue())
    with pytest.raises(Tf2rtError):
        import_keras(path)


def test_image_output_keeps_layer_name(tmp_path):
    """A model ending in an image tensor (NCHW inside) returns it NHWC under the layer's name."""
    from tf2rt.engine import build_engine
    from tf2rt.importers.keras import import_keras

    keras = oracles.keras()
    keras.utils.set_random_seed(3)
    inp = keras.Input((12, 10, 3), name="img")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inp)
    x = keras.layers.MaxPooling2D(name="features")(x)
    model = keras.Model(inp, x)
    model.save(tmp_path / "features.keras")
    net = import_keras(tmp_path / "features.keras")
    assert [t.name for t in net.outputs] == ["features"]
    x = np.random.default_rng(3).normal(size=(2, 12, 10, 3)).astype(np.float32)
    y = build_engine(net).run({"img": x})["features"]
    assert rel_err(y, model(x).numpy().astype(np.float64)) < 1e-6

"""`tf2rt classify`: preprocessing vs Keras' preprocess_input, decoding vs TensorFlow, label files,
and whole runs over a folder compared with the Keras model's own top-k."""

from __future__ import annotations

import json

import numpy as np
import pytest

import oracles


def _photo(name: str, size: tuple[int, int] | None = None) -> np.ndarray:
    from skimage import data, transform

    img = getattr(data, name)()
    if size is not None:
        img = (transform.resize(img, size, anti_aliasing=True) * 255).astype(np.uint8)
    return img


@pytest.mark.parametrize("scheme,mode", [("inception", "tf"), ("caffe", "caffe"), ("torch", "torch")])
def test_preprocess_matches_keras(scheme, mode):
    from tf2rt.apps.classify import preprocess

    keras = oracles.keras()
    img = _photo("coffee", (40, 50)).astype(np.float32)[None]
    want = keras.applications.imagenet_utils.preprocess_input(img.copy(), mode=mode)
    np.testing.assert_allclose(preprocess(img, scheme), want, rtol=1e-6, atol=1e-5)


def test_vgg_and_inception_schemes_of_tf_slim():
    """The two TF-slim schemes: RGB minus [123.68, 116.78, 103.94]; 2 * (x / 255 - 0.5)."""
    from tf2rt.apps.classify import preprocess

    px = np.array([[[[0, 128, 255]]]], np.float32)
    np.testing.assert_allclose(preprocess(px, "vgg")[0, 0, 0], [-123.68, 11.22, 151.06], rtol=1e-6)
    np.testing.assert_allclose(preprocess(px, "inception")[0, 0, 0], [-1.0, 128 / 127.5 - 1, 1.0], atol=1e-6)


def test_decode_matches_tensorflow(tf, tmp_path):
    import cv2

    from tf2rt.apps.classify import load_image

    img = _photo("astronaut")
    p = tmp_path / "a.png"
    cv2.imwrite(str(p), img[:, :, ::-1])
    want = tf.io.decode_png(tf.io.read_file(str(p)), channels=3).numpy()
    np.testing.assert_array_equal(load_image(p), want)


def test_label_files(tmp_path):
    from tf2rt.apps.classify import label_for, load_labels

    f1001 = tmp_path / "l1001.txt"
    f1001.write_text("background\n" + "".join(f"class{i}\n" for i in range(1000)))
    f1000 = tmp_path / "l1000.txt"
    f1000.write_text("".join(f"n{i:08d} class{i}\n" for i in range(1000)))
    l1001, l1000 = load_labels(f1001), load_labels(f1000)
    assert len(l1001) == 1001 and len(l1000) == 1000 and l1000[5] == "class5"
    assert label_for(215, l1001, 1001) == "class214"  # 1001-class model, 1001 labels: direct
    assert label_for(214, l1001, 1000) == "class214"  # vgg/resnet_v1 (1000) with the 1001 file: +1
    assert label_for(215, l1000, 1001) == "class214"  # 1001-class model with the 1000 file: -1
    assert label_for(0, l1000, 1001) == "background"


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    """A seeded 10-class CNN saved as .keras, a folder of real photos, and a label file."""
    import cv2

    keras = oracles.keras()
    keras.utils.set_random_seed(5)
    L = keras.layers
    inp = keras.Input((48, 48, 3), name="image")
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)
    x = L.BatchNormalization()(x)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu6")(x)
    x = L.Conv2D(16, 1)(x)
    x = L.GlobalAveragePooling2D()(x)
    out = L.Dense(10, name="logits")(x)
    model = keras.Model(inp, out)
    rng = np.random.default_rng(5)
    bn = [layer for layer in model.layers if isinstance(layer, L.BatchNormalization)][0]
    bn.set_weights([rng.uniform(0.5, 1.5, 8), rng.normal(0, 0.2, 8), rng.normal(0, 0.2, 8), rng.uniform(0.5, 2, 8)])
    d = tmp_path_factory.mktemp("classify")
    path = d / "small.keras"
    imgs = d / "imgs"
    (imgs / "sub").mkdir(parents=True)
    for i, name in enumerate(("astronaut", "coffee", "chelsea", "rocket")):
        target = imgs / "sub" if i == 3 else imgs
        cv2.imwrite(str(target / f"{name}.png"), _photo(name)[:, :, ::-1])
    labels = d / "labels.txt"
    labels.write_text("".join(f"label{i}\n" for i in range(10)))
    # scale the classifier so the photos get confident, different classes
    from tf2rt.apps.classify import load_image

    x = np.stack([load_image(f, (48, 48)) for f in sorted(imgs.rglob("*.png"))]).astype(np.float32)
    w = model.get_layer("logits").get_weights()
    ref = model(x / 127.5 - 1).numpy() - w[1]
    k = 3.0 / (ref - ref.mean(0)).std()
    model.get_layer("logits").set_weights([w[0] * k, -0.9 * k * ref.mean(0) + rng.normal(0, 0.3, 10)])
    model.save(path)
    return model, path, imgs, labels


def _keras_top(model, files, k):
    from tf2rt.apps.classify import load_image

    keras = oracles.keras()
    x = np.stack([load_image(f, (48, 48)) for f in files]).astype(np.float32)
    logits = model(keras.applications.imagenet_utils.preprocess_input(x, mode="tf")).numpy().astype(np.float64)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return p, np.argsort(-p, axis=1)[:, :k]


def test_cli_classify_folder_matches_keras(small_model, capsys):
    from tf2rt.cli import main

    model, path, imgs, labels = small_model
    rc = main(["classify", str(imgs), "--model", str(path), "--labels", str(labels), "--preprocess", "inception",
               "--topk", "3", "--json", "--batch-size", "3"])
    assert rc == 0
    results = json.loads(capsys.readouterr().out)
    files = [r["image"] for r in results]
    assert len(files) == 4 and files[-1].endswith("sub/rocket.png")
    p, top = _keras_top(model, files, 3)
    assert len({int(r["top"][0]["index"]) for r in results}) > 1, "the test model is degenerate"
    for r, pi, ti in zip(results, p, top):
        assert [t["index"] for t in r["top"]] == ti.tolist()
        assert [t["label"] for t in r["top"]] == [f"label{i}" for i in ti]
        np.testing.assert_allclose([t["score"] for t in r["top"]], pi[ti], rtol=1e-4, atol=1e-6)


def test_classify_with_saved_engine(small_model, tmp_path, capsys):
    from tf2rt.apps.classify import classify_paths, load_classifier_engine
    from tf2rt.cli import main

    model, path, imgs, labels = small_model
    engine = load_classifier_engine(path)
    engine.save(tmp_path / "small.engine")
    got = classify_paths(tmp_path / "small.engine", [imgs], labels, "inception", k=2)
    want = classify_paths(path, [imgs], labels, "inception", k=2, precision="fp16")
    assert [r["top"][0]["index"] for r in got] == [r["top"][0]["index"] for r in want]
    assert main(["classify", str(imgs / "coffee.png"), "--model", str(tmp_path / "small.engine")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(str(imgs / "coffee.png")) and "  1. " in out


def test_cli_bad_image(small_model, tmp_path, capsys):
    from tf2rt.cli import main

    _, path, _, _ = small_model
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    assert main(["classify", str(bad), "--model", str(path)]) == 2
    assert "broken.jpg" in capsys.readouterr().err


def test_cli_int8_with_calibration_folder(small_model, capsys):
    from tf2rt.cli import main

    model, path, imgs, labels = small_model
    assert main(["classify", str(imgs), "--model", str(path), "--precision", "int8", "--calibration", str(imgs),
                 "--json", "--topk", "1"]) == 0
    results = json.loads(capsys.readouterr().out)
    p, top = _keras_top(model, [r["image"] for r in results], 1)
    agree = np.mean([r["top"][0]["index"] == t[0] for r, t in zip(results, top)])
    assert agree >= 0.75, f"int8 top-1 agrees with Keras on {agree:.0%} of the photos"
    assert main(["classify", str(imgs), "--model", str(path), "--precision", "int8"]) == 2
    assert "calibration" in capsys.readouterr().err

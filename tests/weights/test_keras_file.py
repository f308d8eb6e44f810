"""Keras files (.keras, legacy .h5, weights-only .h5) read without Keras, against Keras itself."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

import oracles
from fmt_fixtures import keras_model
from tf2rt.errors import FormatError, MissingTensorError, Tf2rtError
from tf2rt.weights.api import dump_weights, load_weights, open_weights
from tf2rt.weights.formats import detect_format
from tf2rt.weights.keras_file import open_keras, snake_case


@pytest.fixture(scope="module")
def saved(tmp_path_factory, tf):
    out = tmp_path_factory.mktemp("keras")
    k3, k2 = oracles.keras(), oracles.tf_keras()
    files = {}
    files["keras3"] = keras_model(k3, out, "m.keras")
    files["legacy"] = keras_model(k2, out, "m.h5")
    m3 = files["keras3"][1]
    m3.save_weights(str(out / "k3.weights.h5"))
    files["keras3_weights"] = (out / "k3.weights.h5", m3)
    m2 = files["legacy"][1]
    m2.save_weights(str(out / "k2_weights.h5"))
    files["legacy_weights"] = (out / "k2_weights.h5", m2)
    return files, k3.__version__, k2.__version__


@pytest.mark.parametrize("which", ["keras3", "legacy", "keras3_weights", "legacy_weights"])
def test_layer_weights_match_get_weights(saved, which):
    files, _, _ = saved
    path, model = files[which]
    assert detect_format(path) == "keras"
    with open_keras(path) as kf:
        weighted = [layer for layer in model.layers if layer.get_weights()]
        if which.startswith("keras3") and which.endswith("weights"):
            # without a config, Keras 3 weights files name layers by class (bidirectional, gru, ...)
            names = {layer.name: snake_case(type(layer).__name__) for layer in weighted}
        else:
            names = {layer.name: layer.name for layer in weighted}
        assert sorted(kf.layer_names()) == sorted(names.values())
        for layer in weighted:
            ours = kf.layer_weights(names[layer.name])
            theirs = layer.get_weights()
            assert len(ours) == len(theirs), layer.name
            for a, b in zip(ours, theirs):
                assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b), layer.name
        total = sum(w.size for w in model.get_weights())
        assert sum(i.size for i in kf.infos() if i.kind == "variable") == total


@pytest.mark.parametrize("which", ["keras3", "legacy"])
def test_config_and_version(saved, which):
    files, v3, v2 = saved
    path, model = files[which]
    with open_keras(path) as kf:
        config = kf.model_config()
        assert config["class_name"] in ("Functional", "Model")
        assert [layer["config"]["name"] for layer in config["config"]["layers"]] == [layer.name for layer in model.layers]
        assert kf.keras_version() == (v3 if which == "keras3" else v2)
        with pytest.raises(MissingTensorError, match="did you mean 'gru_old'"):
            kf.layer_weights("gru_ol")


def test_weights_only_file_has_no_config(saved):
    files, _, _ = saved
    with open_keras(files["legacy_weights"][0]) as kf:
        with pytest.raises(FormatError, match="weights only"):
            kf.model_config()


def test_legacy_names_are_variable_names(saved):
    files, _, _ = saved
    path, model = files["legacy"]
    weights = load_weights(path)
    by_name = {w.name.split(":")[0]: w.numpy() for w in model.weights}
    assert set(weights) == set(by_name)
    for name, w in weights.items():
        assert np.array_equal(w.array, by_name[name])


def _rezip(src, dst, rename=None, extra=None, drop=None):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for zi in zin.infolist():
            if zi.filename == drop:
                continue
            zout.writestr((rename or {}).get(zi.filename, zi.filename), zin.read(zi))
        for name, data in (extra or {}).items():
            zout.writestr(name, data)
    return dst


def test_hostile_keras_zips(saved, tmp_path):
    src = saved[0]["keras3"][0]
    evil = _rezip(src, tmp_path / "evil.keras", extra={"../../etc/passwd": b"x"})
    with pytest.raises(FormatError, match="unsafe path"):
        open_keras(evil)
    nocfg = _rezip(src, tmp_path / "nocfg.keras", drop="config.json")
    with pytest.raises(FormatError, match="config.json"):
        open_keras(nocfg)
    badjson = _rezip(src, tmp_path / "badjson.keras", drop="config.json", extra={"config.json": b"{oops"})
    with pytest.raises(FormatError, match="not valid JSON"):
        open_keras(badjson)
    badh5 = _rezip(src, tmp_path / "badh5.keras", drop="model.weights.h5", extra={"model.weights.h5": b"\x89HDF\r\n\x1a\n" + b"\0" * 100})
    with pytest.raises(FormatError, match="HDF5"):
        open_keras(badh5)
    # a member whose header claims far more bytes than the archive holds
    big = bytearray(open(src, "rb").read())
    cd = big.rfind(b"PK\x01\x02")
    pos = big.find(b"model.weights.h5", cd) - 46 + 24  # uncompressed size field of that entry
    big[pos:pos + 4] = (0x7FFFFFFF).to_bytes(4, "little")
    (tmp_path / "big.keras").write_bytes(bytes(big))
    with pytest.raises(FormatError, match="more than the archive can hold"):
        open_keras(tmp_path / "big.keras")


def test_truncated_h5(saved, tmp_path):
    data = open(saved[0]["legacy"][0], "rb").read()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(Tf2rtError):
        with open_weights(cut) as src:
            for i in src.infos():
                src.read(i.name)


@pytest.mark.parametrize("suffix", [".wts2", ".npz", ".safetensors"])
def test_dump_keras_file_to_other_formats(saved, tmp_path, suffix):
    path, model = saved[0]["keras3"]
    out = dump_weights(path, tmp_path / ("k" + suffix), keep_names=True)
    back = load_weights(out)
    expected = {}
    for layer in model.layers:
        for i, w in enumerate(layer.get_weights()):
            expected.setdefault(layer.name, []).append(w)
    with open_keras(path) as kf:
        for layer, arrays in expected.items():
            names = [i.name for i in kf._order() if i.name.startswith(layer + "/")]
            assert [back[n].array.tobytes() for n in names] == [a.tobytes() for a in arrays], layer

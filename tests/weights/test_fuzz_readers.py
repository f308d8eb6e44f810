"""Bounded fuzzing of the inputs tf2rt parses beyond tensor data: Keras model configs (mutated
JSON structures), the joblib unpickler, checkpoint state files and .npy headers inside npz
archives. Each must read or fail with a tf2rt error - never another exception, a hang or a
runaway allocation. TF2RT_FUZZ_EXAMPLES bounds every test (default 40: ~30 s in all)."""

from __future__ import annotations

import copy
import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tf2rt.errors import Tf2rtError

EXAMPLES = int(os.environ.get("TF2RT_FUZZ_EXAMPLES", "40"))
SETTINGS = dict(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                      st.text(max_size=12))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                          max_leaves=12)

# -- Keras configs ---------------------------------------------------------------------------
BASE_CONFIG = {
    "class_name": "Sequential",
    "config": {
        "name": "seq",
        "layers": [
            {"class_name": "InputLayer", "config": {"batch_shape": [None, 5, 3], "dtype": "float32", "name": "in"}},
            {"class_name": "LSTM", "config": {"name": "lstm", "units": 4, "return_sequences": True,
                                              "activation": "tanh", "recurrent_activation": "sigmoid",
                                              "use_bias": True, "unit_forget_bias": True}},
            {"class_name": "Dense", "config": {"name": "dense", "units": 2, "activation": "linear",
                                               "use_bias": True}},
        ],
    },
}


def _weights_h5() -> bytes:
    import h5py

    rng = np.random.default_rng(3)
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        layers = f.create_group("layers")
        cell = layers.create_group("lstm").create_group("cell").create_group("vars")
        cell.create_dataset("0", data=rng.standard_normal((3, 16)).astype(np.float32))
        cell.create_dataset("1", data=rng.standard_normal((4, 16)).astype(np.float32))
        cell.create_dataset("2", data=rng.standard_normal(16).astype(np.float32))
        dense = layers.create_group("dense").create_group("vars")
        dense.create_dataset("0", data=rng.standard_normal((4, 2)).astype(np.float32))
        dense.create_dataset("1", data=rng.standard_normal(2).astype(np.float32))
    return buf.getvalue()


def _paths(value, prefix=()):
    """Every path into a JSON structure (list indices and dict keys)."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


ALL_PATHS = list(_paths(BASE_CONFIG))


def _mutate(config, path, new):
    if not path:
        return new
    out = copy.deepcopy(config)
    target = out
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = new
    return out


@pytest.fixture(scope="module")
def h5_bytes():
    pytest.importorskip("h5py")
    return _weights_h5()


@settings(**SETTINGS)
@given(edits=st.lists(st.tuples(st.sampled_from(ALL_PATHS), json_value), min_size=1, max_size=3))
def test_mutated_keras_configs(tmp_path_factory, h5_bytes, edits):
    from tf2rt.importers import build_network
    from tf2rt.weights.keras_file import open_keras

    config = BASE_CONFIG
    for path, new in edits:
        try:
            config = _mutate(config, path, new)
        except (KeyError, IndexError, TypeError):  # an earlier edit removed the path
            pass
    src = tmp_path_factory.mktemp("kc") / "m.keras"
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.weights.h5", h5_bytes)
    try:
        with open_keras(src) as kf:
            kf.infos()
            kf.model_config()
    except Tf2rtError:
        pass
    try:
        build_network(src)
    except Tf2rtError:
        pass


# -- joblib ------------------------------------------------------------------------------------
def _joblib_seeds() -> list[bytes]:
    arrays = [np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, -2], np.int64)]
    return [pickle.dumps(arrays, protocol=p) for p in (2, 3, 4, 5)]


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.integers(0, 10_000), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.integers(0, 255)),
)


def _apply(data: bytes, ops) -> bytes:
    buf = bytearray(data)
    for op, pos, val in ops:
        pos %= max(len(buf), 1)
        if op == "flip" and buf:
            buf[pos] ^= val
        elif op == "cut":
            del buf[pos:]
        else:
            buf[pos:pos] = bytes([val])
    return bytes(buf)


@settings(**SETTINGS)
@given(seed=st.sampled_from(_joblib_seeds()), ops=st.lists(mutation, min_size=1, max_size=4))
def test_mutated_joblib_pickles(seed, ops):
    from tf2rt.apps.faces.safe_pickle import safe_loads

    data = _apply(seed, ops)
    try:
        out = safe_loads(data)
    except Tf2rtError:
        return
    # whatever loads was built within the reader's budget
    total = sum(a.nbytes for a in out if isinstance(a, np.ndarray)) if isinstance(out, list) else 0
    assert total <= 2 * len(data) + (1 << 20)


def test_joblib_seeds_load():
    from tf2rt.apps.faces.safe_pickle import safe_loads

    for seed in _joblib_seeds():
        out = safe_loads(seed)
        np.testing.assert_array_equal(out[0], np.arange(6, dtype=np.float32).reshape(2, 3))


# -- checkpoint state files ----------------------------------------------------------------------
state_line = st.one_of(
    st.builds(lambda s: f'model_checkpoint_path: "{s}"', st.text(max_size=30)),
    st.builds(lambda s: f'all_model_checkpoint_paths: "{s}"', st.text(max_size=30)),
    st.sampled_from(['model_checkpoint_path: "checkpoint"', 'model_checkpoint_path: "."',
                     'model_checkpoint_path: ".."', 'model_checkpoint_path: "model.ckpt-1"',
                     'model_checkpoint_path: "\\x00\\377\\"', 'model_checkpoint_path: "/"',
                     'model_checkpoint_path: "*"', 'model_checkpoint_path: "[a-"']),
    st.text(max_size=40),
)


@settings(**SETTINGS)
@given(lines=st.lists(state_line, max_size=5), raw=st.binary(max_size=64))
def test_mutated_state_files(tmp_path_factory, lines, raw):
    from tf2rt.weights.tf_checkpoint import resolve

    d = tmp_path_factory.mktemp("state")
    try:
        (d / "checkpoint").write_bytes("\n".join(lines).encode("utf-8", "surrogatepass") + raw)
    except (UnicodeEncodeError, OSError):
        return
    (d / "model.ckpt-1.index").write_bytes(b"")  # present but not a table
    try:
        resolve(d)
    except Tf2rtError:
        pass


# -- npz headers -------------------------------------------------------------------------------
dim = st.one_of(st.integers(0, 4), st.integers(-3, 2**70), st.sampled_from([2**32, 2**63, 2**64 - 1]))
header = st.fixed_dictionaries({
    "descr": st.one_of(st.sampled_from(["<f4", ">i8", "|u1", "<c16", "O", "|V4", "<M8[s]", "f4", "<U3", "|b1"]),
                       st.text(max_size=6)),
    "fortran_order": st.one_of(st.booleans(), st.integers(0, 2)),
    "shape": st.one_of(st.lists(dim, max_size=5).map(tuple), dim),
})


@settings(**SETTINGS)
@given(h=header, body=st.binary(max_size=64), version=st.sampled_from([(1, 0), (2, 0), (3, 0)]),
       compress=st.booleans())
def test_random_npy_headers(tmp_path_factory, h, body, version, compress):
    from tf2rt.engine.inputs import load_npz
    from tf2rt.weights.npz import NpzFile

    text = repr(h).encode("latin1", "replace")
    text += b" " * (-(len(text) + 12) % 64) + b"\n"
    prefix = b"\x93NUMPY" + bytes(version)
    size = len(text).to_bytes(2 if version == (1, 0) else 4, "little")
    src = tmp_path_factory.mktemp("npz") / "x.npz"
    with zipfile.ZipFile(src, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as zf:
        zf.writestr("t.npy", prefix + size + text + body)
    try:
        with NpzFile(src) as f:
            for info in f.infos():
                assert f._read(info).shape == info.shape
    except Tf2rtError:
        pass
    try:
        load_npz(src)
    except Tf2rtError:
        pass

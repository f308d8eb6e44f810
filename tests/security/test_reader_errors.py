"""Reader problems that must end in one line from the CLI (exit 2), never a traceback:
lone surrogates in names, type-swapped Keras configs, shapes whose products overflow,
truncated files of every format."""

from __future__ import annotations

import json
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from sec_bounded import assert_refused, run_cli
from test_ckpt_slices import write_partitioned
from tf2rt.cli import main
from tf2rt.errors import FormatError
from tf2rt.weights.api import dump_weights

h5py = pytest.importorskip("h5py")

TENSORS = {"a/kernel": np.arange(12, dtype=np.float32).reshape(3, 4), "a/bias": np.arange(4, dtype=np.float16)}


def _cli(capsys, args) -> tuple[int, str]:
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    return code, err


def _safetensors(path: Path, header: dict, data: bytes = b"", raw_header: bytes | None = None) -> Path:
    text = raw_header if raw_header is not None else json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + data)
    return path


def test_lone_surrogate_in_safetensors_name(tmp_path):
    raw = b'{"bad\\ud800name": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}'
    src = _safetensors(tmp_path / "s.safetensors", {}, b"\0" * 4, raw_header=raw)
    for args in (["inspect", src], ["dump", src, "-o", tmp_path / "o.npz"]):
        assert_refused(run_cli(args), "surrogate")


def test_lone_surrogate_in_safetensors_metadata(tmp_path):
    raw = b'{"__metadata__": {"k": "v\\udc80"}, "t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}'
    src = _safetensors(tmp_path / "m.safetensors", {}, b"\0" * 4, raw_header=raw)
    assert_refused(run_cli(["inspect", src]), "surrogate")


@pytest.mark.parametrize("entry", [
    {"dtype": ["F32"], "shape": [1], "data_offsets": [0, 4]},
    {"dtype": "F32", "shape": "1", "data_offsets": [0, 4]},
    {"dtype": "F32", "shape": [1], "data_offsets": {"a": 1}},
    {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]},
    [1, 2, 3],
])
def test_type_swapped_safetensors_entries(tmp_path, capsys, entry):
    src = _safetensors(tmp_path / "t.safetensors", {"t": entry}, b"\0" * 4)
    code, err = _cli(capsys, ["inspect", src])
    assert code == 2 and len(err.strip().splitlines()) == 1, err


# -- shapes whose product overflows, with zero elements ------------------------------------
HUGE = [1 << 32, 1 << 32, 0]


def test_overflowing_zero_shape_safetensors(tmp_path):
    src = _safetensors(tmp_path / "z.safetensors", {"z": {"dtype": "F32", "shape": HUGE, "data_offsets": [0, 0]}})
    for args in (["inspect", src], ["dump", src, "-o", tmp_path / "o.npz"]):
        assert_refused(run_cli(args), "overflows")


def test_overflowing_zero_shape_wts2(tmp_path):
    src = tmp_path / "z.wts2"
    src.write_bytes(b"1\nz 0 (4294967296,4294967296,0) \n")
    assert_refused(run_cli(["dump", src, "-o", tmp_path / "o.npz"]), "overflows")


def test_overflowing_zero_shape_keras(tmp_path):
    src = tmp_path / "z.weights.h5"
    with h5py.File(src, "w") as f:
        f.create_group("layers").create_group("d").create_group("vars").create_dataset("0", shape=HUGE, dtype="f4")
    assert_refused(run_cli(["dump", src, "-o", tmp_path / "o.npz"]), "overflows")


# -- Keras configs with swapped types --------------------------------------------------------
CONFIGS = [
    "[1, 2, 3]",
    '"Sequential"',
    "42",
    '{"class_name": ["Sequential"], "config": {}}',
    '{"class_name": "Sequential", "config": "layers"}',
    '{"class_name": "Sequential", "config": 7}',
    "null",
]


def _keras_with_config(path: Path, config: str) -> Path:
    import io

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_group("layers").create_group("dense").create_group("vars").create_dataset(
            "0", data=np.ones((2, 2), np.float32))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", config)
        zf.writestr("metadata.json", config)
        zf.writestr("model.weights.h5", buf.getvalue())
    return path


@pytest.mark.parametrize("config", CONFIGS)
def test_type_swapped_keras_config(tmp_path, capsys, config):
    from tf2rt.weights.keras_file import open_keras

    src = _keras_with_config(tmp_path / "c.keras", config)
    with open_keras(src) as kf:  # the weights stay readable
        assert kf.names() == ["dense/vars/0"]
        with pytest.raises(FormatError, match="damaged|no model config"):
            kf.model_config()
    code, err = _cli(capsys, ["convert", src, "-o", tmp_path / "m.onnx"])
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


@pytest.mark.parametrize("config", CONFIGS)
def test_type_swapped_legacy_model_config(tmp_path, config):
    from tf2rt.weights.keras_file import open_keras

    src = tmp_path / "c.h5"
    with h5py.File(src, "w") as f:
        f.attrs["model_config"] = config
        f.attrs["keras_version"] = "2.21.0"
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = np.array([b"d"])
        g.create_group("d").attrs["weight_names"] = np.array([], dtype="S1")
    with open_keras(src) as kf:
        with pytest.raises(FormatError, match="damaged|no model config"):
            kf.model_config()


def test_deeply_nested_keras_config(tmp_path):
    from tf2rt.weights.keras_file import open_keras

    config = '{"class_name": "Sequential", "config": ' + "[" * 500 + "]" * 500 + "}"
    src = _keras_with_config(tmp_path / "deep.keras", config)
    with pytest.raises(FormatError, match="nests deeper"):
        open_keras(src)


# -- truncated files of every format --------------------------------------------------------
def _valid_files(d: Path) -> dict[str, Path]:
    out = {}
    for fmt, suffix in (("wts", ".wts"), ("wts2", ".wts2"), ("npz", ".npz"), ("safetensors", ".safetensors")):
        out[fmt] = dump_weights(TENSORS, d / f"w{suffix}", format=fmt)
    legacy = d / "w.h5"
    with h5py.File(legacy, "w") as f:
        f.attrs["keras_version"] = "2.21.0"
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = np.array([b"a"])
        lg = g.create_group("a")
        lg.attrs["weight_names"] = np.array([b"a/kernel:0"])
        lg.create_dataset("a/kernel:0", data=TENSORS["a/kernel"])
    out["h5"] = legacy
    keras = d / "w.keras"
    with zipfile.ZipFile(keras, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", '{"class_name": "Sequential", "config": {"layers": []}}')
        zf.write(legacy, "model.weights.h5")
    out["keras"] = keras
    ck = d / "ck"
    ck.mkdir()
    out["ckpt-index"] = Path(f"{write_partitioned(ck / 'model', (6,), [([(0, 6)], 0, np.arange(6, dtype=np.float32))])}.index")
    return out


def test_truncated_files_of_every_format(tmp_path, capsys):
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    files = _valid_files(src_dir)
    for name, path in files.items():
        data = path.read_bytes()
        assert main(["dump", str(path), "-o", str(tmp_path / f"ok-{name}.npz")]) == 0, name
        capsys.readouterr()
        cuts = sorted({0, 1, 7, 8, 9, len(data) // 3, len(data) // 2, len(data) - 5, len(data) - 1})
        if name == "wts":
            # hex text with unpadded tokens: a cut inside the last token still leaves a valid
            # (shorter) token, so cut whole tokens away instead
            cuts = sorted(set(cuts) - {len(data) - 1, len(data) - 5} | {len(data) - 11})
        for cut in cuts:
            work = tmp_path / f"cut-{name}-{cut}"
            if name == "ckpt-index":
                shutil.copytree(path.parent, work)
                target = work / path.name
            else:
                work.mkdir()
                target = work / path.name
            target.write_bytes(data[:cut])
            if name == "h5":
                # libhdf5 parses these bytes: run it in a bounded child
                res = run_cli(["dump", target, "-o", work / "o.npz"], timeout=60)
                assert_refused(res)
                continue
            code, err = _cli(capsys, ["dump", target, "-o", work / "o.npz"])
            assert code == 2, (name, cut, err)
            assert len(err.strip().splitlines()) == 1, (name, cut, err)


def test_truncated_checkpoint_data_file(tmp_path, capsys):
    prefix = write_partitioned(tmp_path / "model", (6,), [([(0, 6)], 0, np.arange(6, dtype=np.float32))])
    data = Path(f"{prefix}.data-00000-of-00001")
    data.write_bytes(data.read_bytes()[:10])
    code, err = _cli(capsys, ["dump", prefix, "-o", tmp_path / "o.npz"])
    assert code == 2 and "truncated" in err, err


def test_object_graph_chain_is_bounded():
    """A TF2 object graph that is one long chain would copy quadratically many path parts."""
    from tf2rt.weights.object_graph import _paths

    chain = [[(i + 1, "x")] for i in range(5000)] + [[]]
    with pytest.raises(FormatError, match="nests deeper than"):
        _paths(chain, set(), "ckpt.index")
    shallow = [[(i + 1, "x")] for i in range(100)] + [[]]
    assert _paths(shallow, set())[100] == ["x"] * 100

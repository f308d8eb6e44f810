"""Format detection from contents, npz and safetensors against their reference
implementations (numpy, the `safetensors` package), and every-format round trips."""

from __future__ import annotations

import itertools
import json
import zipfile

import ml_dtypes
import numpy as np
import pytest

from tf2rt.errors import FormatError, Tf2rtError, UnsupportedError
from tf2rt.weights.api import dump_weights, load_weights, open_weights
from tf2rt.weights.formats import detect_format, format_for_suffix, get_format
from tf2rt.weights.npz import NpzFile, write_npz
from tf2rt.weights.safetensors import SafetensorsFile, write_safetensors


def _values(dtype: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    if dtype == "bool":
        return (rng.integers(0, 2, n) == 1).reshape(shape)
    if dtype.startswith(("int", "uint")):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, n, dtype=dtype, endpoint=True).reshape(shape)
    if dtype.startswith("complex"):
        return (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(dtype).reshape(shape)
    if dtype == "bfloat16":
        return rng.standard_normal(n).astype(ml_dtypes.bfloat16).reshape(shape)
    return (rng.standard_normal(n) * 10).astype(dtype).reshape(shape)


NUMERIC = ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16",
           "uint32", "uint64", "bool", "complex64", "complex128", "bfloat16"]
# dtypes each writable format keeps exactly
SUPPORTED = {
    "npz": set(NUMERIC) - {"bfloat16"},
    "safetensors": set(NUMERIC) - {"complex128"},
    "wts2": {"float32", "float16", "int8", "int32"},
    "wts": {"float32"},
}
SUFFIX = {"npz": ".npz", "safetensors": ".safetensors", "wts2": ".wts2", "wts": ".wts"}


def tensors_for(dtypes) -> dict[str, np.ndarray]:
    shapes = [(2, 3), (4,), (), (1, 2, 2), (0, 2)]
    return {f"layer_{i}/{d}": _values(d, shapes[i % len(shapes)], i)
            for i, d in enumerate(sorted(dtypes))}


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("src_fmt,dst_fmt", list(itertools.product(SUPPORTED, SUPPORTED)))
def test_roundtrip_every_format_pair(tmp_path, src_fmt, dst_fmt):
    common = SUPPORTED[src_fmt] & SUPPORTED[dst_fmt]
    tensors = tensors_for(common)
    keep = {"keep_names": True} if src_fmt.startswith("wts") else {}
    src = dump_weights(tensors, tmp_path / ("src" + SUFFIX[src_fmt]), format=src_fmt, **keep)
    dst = dump_weights(src, tmp_path / ("dst" + SUFFIX[dst_fmt]), keep_names=True)
    assert detect_format(dst) == dst_fmt
    back = {k: w.array for k, w in load_weights(dst).items()}
    assert set(back) == set(tensors)
    for name, arr in tensors.items():
        if "wts" in (src_fmt, dst_fmt):
            arr = arr.reshape(-1)  # .wts v1 records keep the element count, not the shape
        assert same(back[name], arr), name


@pytest.mark.parametrize("fmt", list(SUPPORTED))
def test_detection_ignores_suffix(tmp_path, fmt):
    tensors = tensors_for(SUPPORTED[fmt])
    path = dump_weights(tensors, tmp_path / "weights.bin", format=fmt, keep_names=True)
    assert detect_format(path) == fmt
    with open_weights(path) as src:
        assert sorted(src.names()) == sorted(tensors)


def test_detection_of_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("hello\nworld\n")
    with pytest.raises(FormatError, match="not a weight file"):
        detect_format(tmp_path / "notes.txt")
    with pytest.raises(FormatError, match="no such file"):
        detect_format(tmp_path / "missing")
    # a V1 checkpoint is a bare SSTable: recognised by the magic in its last 8 bytes
    table = tmp_path / "model.ckpt"
    table.write_bytes(b"\0" * 40 + (0xDB4775248B80FB57).to_bytes(8, "little"))
    assert detect_format(table) == "tf-checkpoint"
    other_zip = tmp_path / "x.zip"
    with zipfile.ZipFile(other_zip, "w") as zf:
        zf.writestr("readme.txt", "hi")
    with pytest.raises(FormatError, match="neither"):
        detect_format(other_zip)
    assert format_for_suffix("a.WTS2") == "wts2" and format_for_suffix("a.h5") is None
    with pytest.raises(UnsupportedError, match="unknown weight format"):
        get_format("onnx")
    with pytest.raises(UnsupportedError, match="does not write"):
        get_format("keras").write({}, tmp_path / "x.keras")


def test_npz_against_numpy(tmp_path):
    tensors = tensors_for(SUPPORTED["npz"])
    tensors["file"] = np.arange(3.0)  # a name numpy.savez could not take as a keyword
    ours = write_npz(tensors, tmp_path / "ours.npz")
    with np.load(ours, allow_pickle=False) as z:
        assert set(z.files) == set(tensors)
        for k, v in tensors.items():
            assert same(z[k], v)
    theirs = tmp_path / "theirs.npz"
    del tensors["file"]
    np.savez_compressed(theirs, **{k.replace("/", "_"): v for k, v in tensors.items()})
    with NpzFile(theirs) as src:
        for k, v in tensors.items():
            assert same(src.read(k.replace("/", "_")), v)
    fortran = tmp_path / "f.npz"
    np.savez(fortran, a=np.asfortranarray(np.arange(6, dtype=np.int16).reshape(2, 3)))
    assert load_weights(fortran)["a"].array.tolist() == [[0, 1, 2], [3, 4, 5]]


def test_npz_refuses_pickles_and_bombs(tmp_path):
    obj = tmp_path / "obj.npz"
    np.savez(obj, a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(UnsupportedError, match="never unpickles"):
        NpzFile(obj).infos()
    with pytest.raises(UnsupportedError, match="cannot record"):
        write_npz({"bf": np.zeros(2, ml_dtypes.bfloat16)}, tmp_path / "bf.npz")
    lying = tmp_path / "lying.npz"
    with zipfile.ZipFile(lying, "w") as zf:
        header = np.lib.format.header_data_from_array_1_0(np.zeros((1000, 1000), np.float64))
        with zf.open("a.npy", "w") as f:
            np.lib.format.write_array_header_1_0(f, header)
            f.write(b"\0" * 16)
    with pytest.raises(FormatError, match="truncated or corrupted"):
        NpzFile(lying).infos()


SAFETENSORS_DTYPES = SUPPORTED["safetensors"]


def test_safetensors_written_read_by_reference_package(tmp_path):
    from safetensors.numpy import load_file

    tensors = tensors_for(SAFETENSORS_DTYPES)
    path = write_safetensors(tensors, tmp_path / "ours.safetensors", metadata={"source": "test"})
    theirs = load_file(str(path))
    assert set(theirs) == set(tensors)
    for k, v in tensors.items():
        assert theirs[k].shape == v.shape and theirs[k].tobytes() == v.tobytes(), k
    with SafetensorsFile(path) as src:
        assert src.metadata == {"source": "test"}


def test_safetensors_reads_reference_package_files(tmp_path):
    from safetensors.numpy import save_file

    tensors = tensors_for(SAFETENSORS_DTYPES)
    path = tmp_path / "theirs.safetensors"
    save_file(tensors, str(path), metadata={"format": "np"})
    back = load_weights(path)
    for k, v in tensors.items():
        assert same(back[k].array, v), k


def _raw_safetensors(header: object, data: bytes = b"", length: int | None = None) -> bytes:
    text = json.dumps(header).encode() if not isinstance(header, bytes) else header
    return (len(text) if length is None else length).to_bytes(8, "little") + text + data


@pytest.mark.parametrize("content,msg", [
    (b"\x01\x00", "8-byte header length"),
    (_raw_safetensors({}, length=1 << 40), "does not fit"),
    (_raw_safetensors(b"{not json"), "not UTF-8 JSON"),
    (_raw_safetensors([1, 2]), "not a JSON object"),
    (_raw_safetensors({"a": {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4), "unknown dtype"),
    (_raw_safetensors({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4), "bad shape"),
    (_raw_safetensors({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4), "needs 8 bytes"),
    (_raw_safetensors({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}, b"\0" * 4), "bad data_offsets"),
    (_raw_safetensors({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 2), "truncated"),
    (_raw_safetensors({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                       "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 8), "overlap"),
    (_raw_safetensors({"__metadata__": {"a": 1}}), "__metadata__"),
])
def test_safetensors_rejects_bad_headers(tmp_path, content, msg):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(Tf2rtError, match=msg):
        SafetensorsFile(path)


def test_bfloat16_wts_and_string_tensor_errors(tmp_path):
    with pytest.raises(UnsupportedError, match="convert=True"):
        dump_weights({"bf": np.zeros(2, ml_dtypes.bfloat16)}, tmp_path / "x.wts2")
    strings = {"s": np.array([b"ab", b"c"], dtype=object)}
    with pytest.raises(UnsupportedError, match="safetensors cannot store"):
        dump_weights(strings, tmp_path / "x.safetensors")
    out = dump_weights(strings, tmp_path / "x.npz")  # npz keeps byte strings without pickling
    assert load_weights(out)["s"].array.tolist() == [b"ab", b"c"]
    with pytest.raises(FormatError, match="cannot tell the output format"):
        dump_weights({"a": np.zeros(1)}, tmp_path / "x.bin")

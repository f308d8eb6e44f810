"""TensorRT .wts v1/v2: written files are parsed by a C port of TensorRT's loadWeights,
compared byte for byte with dumpTFWts' output, and read back."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tf2rt.errors import FormatError, Tf2rtError, UnsupportedError
from tf2rt.weights.api import dump_weights, load_weights
from fmt_fixtures import dumptfwts_reference
from tf2rt.weights.wts import WtsFile, read_wts, write_wts

HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def trt_loader(tmp_path_factory) -> Path:
    """tests/weights/trt_loadweights.c compiled with gcc (missing gcc fails the test)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.fail("gcc is needed to build the TensorRT loadWeights oracle; install gcc", pytrace=False)
    exe = tmp_path_factory.mktemp("trt") / "trt_loadweights"
    subprocess.run([gcc, "-O1", "-Wall", "-Werror", "-o", str(exe), str(HERE / "trt_loadweights.c")], check=True)
    return exe


def run_loader(exe: Path, version: str, path: Path, *names: str) -> dict[str, tuple[int, int, bytes]]:
    out = subprocess.run([str(exe), version, str(path), *names], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    records = {}
    for line in out.stdout.splitlines():
        name, type_, count, *data = line.split(" ")
        records[name] = (int(type_), int(count), bytes.fromhex(data[0] if data else ""))
    return records


def sample_tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "rnn/multi_rnn_cell/cell_0/basic_lstm_cell/kernel": rng.standard_normal((5, 8)).astype(np.float32),
        "rnn/multi_rnn_cell/cell_0/basic_lstm_cell/bias": np.linspace(-3, 4, 8, dtype=np.float32),
        "softmax/softmax_b": np.array([0.0, -0.0, np.inf, -np.inf, 1e-40, 3.5], np.float32),
        "embedding": rng.standard_normal((3, 2, 2)).astype(np.float16),
        "quant/w": np.array([-128, -1, 0, 1, 127], np.int8),
        "step": np.array([2**31 - 1, -(2**31), 5], np.int32),
        "scalar": np.float32(-2.25),
        "empty": np.zeros((0, 3), np.float32),
    }


def test_v2_parsed_by_trt_loadweights(tmp_path, trt_loader):
    tensors = sample_tensors()
    path = write_wts(tensors, tmp_path / "m.wts2", version=2)
    got = run_loader(trt_loader, "v2", path)
    codes = {np.float32: 0, np.float16: 1, np.int8: 2, np.int32: 3}
    assert len(got) == len(tensors)
    for name, arr in tensors.items():
        arr = np.asarray(arr)
        type_, count, data = got[name.replace("/", "_")]
        assert type_ == codes[arr.dtype.type]
        assert count == arr.size
        assert data == arr.astype(arr.dtype.newbyteorder("<")).tobytes()


def test_v2_loader_skips_unrequested_records_by_byte_count(tmp_path, trt_loader):
    tensors = sample_tensors()
    # Blob bytes that look like separators must not confuse a reader that seeks.
    tensors["tricky"] = np.frombuffer(b"\n ( ) 0 \n(1, 2)\n \n", np.int8).copy()
    path = write_wts(tensors, tmp_path / "m.wts", version=2)
    got = run_loader(trt_loader, "v2", path, "softmax_softmax_b", "step")
    assert set(got) == {"softmax_softmax_b", "step"}
    assert got["step"][2] == tensors["step"].astype("<i4").tobytes()
    assert read_wts(path)["tricky"].tobytes() == tensors["tricky"].tobytes()


def test_v1_parsed_by_trt_loadweights(tmp_path, trt_loader):
    tensors = sample_tensors()
    path = write_wts(tensors, tmp_path / "m.wts", version=1)
    got = run_loader(trt_loader, "v1", path)
    for name, arr in tensors.items():
        type_, count, data = got[name.replace("/", "_")]
        assert (type_, count) == (0, np.asarray(arr).size)  # v1 is always float32, like dumpTFWts
        assert data == np.asarray(arr).astype("<f4").tobytes()


@pytest.mark.parametrize("version", [1, 2])
def test_byte_identical_to_dumptfwts_for_float32(tmp_path, version):
    rng = np.random.default_rng(3)
    tensors = {
        "rnn/multi_rnn_cell/cell_1/basic_lstm_cell/kernel": rng.standard_normal((6, 12)).astype(np.float32),
        "rnn/multi_rnn_cell/cell_1/basic_lstm_cell/bias": np.arange(-6, 6, dtype=np.float32) / 7,
        "a_scalar": np.array(1.0, np.float32),
        "zeros": np.zeros(3, np.float32),
    }
    path = write_wts(tensors, tmp_path / "x", version=version)
    assert path.read_bytes() == dumptfwts_reference(tensors, v1=version == 1)


def test_roundtrip_v2_keeps_dtype_and_shape(tmp_path):
    tensors = sample_tensors()
    back = read_wts(write_wts(tensors, tmp_path / "m.wts2"))
    for name, arr in tensors.items():
        got = back[name.replace("/", "_")]
        assert got.dtype == np.asarray(arr).dtype and got.shape == np.shape(arr)
        assert got.tobytes() == np.asarray(arr).tobytes()


def test_roundtrip_v1_gives_float32_vectors(tmp_path):
    tensors = sample_tensors()
    back = read_wts(write_wts(tensors, tmp_path / "m.wts", version=1))
    for name, arr in tensors.items():
        got = back[name.replace("/", "_")]
        assert got.dtype == np.float32 and got.shape == (np.asarray(arr).size,)
        assert got.tobytes() == np.asarray(arr, np.float32).reshape(-1).tobytes()


def test_keep_names_and_original_name_lookup(tmp_path):
    tensors = {"a/b": np.ones(2, np.float32), "c": np.zeros(1, np.float32)}
    kept = write_wts(tensors, tmp_path / "k.wts2", keep_names=True)
    assert set(read_wts(kept)) == {"a/b", "c"}
    mapped = write_wts(tensors, tmp_path / "m.wts2")
    assert set(read_wts(mapped)) == {"a_b", "c"}
    # load_weights accepts the checkpoint spelling for a mapped .wts file
    assert load_weights(mapped, names=["a/b"])["a/b"].array.tolist() == [1.0, 1.0]


def test_other_dtypes_need_convert(tmp_path):
    tensors = {"d": np.array([1.5, -2.25], np.float64), "i": np.array([7, -9], np.int64),
               "b": np.array([True, False]), "u": np.array([0, 255], np.uint8)}
    with pytest.raises(UnsupportedError, match="convert=True"):
        write_wts(tensors, tmp_path / "x.wts2")
    back = read_wts(write_wts(tensors, tmp_path / "x.wts2", convert=True))
    assert back["d"].dtype == np.float32 and back["d"].tolist() == [1.5, -2.25]
    assert back["i"].dtype == np.int32 and back["i"].tolist() == [7, -9]
    assert back["b"].tolist() == [1, 0] and back["u"].tolist() == [0, 255]
    with pytest.raises(UnsupportedError, match="do not fit"):
        write_wts({"big": np.array([2**40], np.int64)}, tmp_path / "y.wts2", convert=True)
    with pytest.raises(UnsupportedError):
        write_wts({"c": np.array([1j], np.complex64)}, tmp_path / "z.wts", version=1)


def test_bfloat16_converts_to_float32(tmp_path):
    import ml_dtypes
    arr = np.array([1.5, -3.0, 0.125], dtype=ml_dtypes.bfloat16)
    back = read_wts(write_wts({"bf": arr}, tmp_path / "b.wts2", convert=True))
    assert back["bf"].dtype == np.float32 and back["bf"].tolist() == [1.5, -3.0, 0.125]


@pytest.mark.parametrize("names,msg", [
    ({"has space": 1.0}, "whitespace"),
    ({"a/b": 1.0, "a_b": 2.0}, "both become"),
    ({}, "no tensors"),
])
def test_write_errors(tmp_path, names, msg):
    tensors = {k: np.array([v], np.float32) for k, v in names.items()}
    with pytest.raises(FormatError, match=msg):
        write_wts(tensors, tmp_path / "x.wts2")


@pytest.mark.parametrize("content,msg", [
    (b"", "file ends"),
    (b"abc\n", "decimal"),
    (b"999999\nx 0 (1,) ", "claims 999999"),
    (b"1\nx 0 (2,) \x00\x00\x80?\n", "needs 8 bytes"),
    (b"1\nx 0 (1,) \x00\x00\x80?X", "no newline"),
    (b"1\nx 9 (1,) \x00\x00\x80?\n", "type code 9"),
    (b"1\nx 0 (1, a) \x00\x00\x80?\n", "bad shape"),
    (b"1\nx 0 (1 \x00\x00\x80?\n", "no '\\)'"),
    (b"2\nx 0 (1,) \x00\x00\x80?\nx 0 (1,) \x00\x00\x80?\n", "twice"),
    (b"1\nx 0 (1,) \x00\x00\x80?\ny 0 (1,) \x00\x00\x80?\n", "unexpected data"),
    (b"1\nx 0 3 1 2 \n", "3 values"),
    (b"1\nx 2 1 7f \n", "float16"),
])
def test_read_errors(tmp_path, content, msg):
    path = tmp_path / "bad.wts"
    path.write_bytes(content)
    with pytest.raises(Tf2rtError, match=msg):
        read_wts(path)


def test_v1_bad_hex_is_an_error_on_read(tmp_path):
    path = tmp_path / "bad.wts"
    path.write_bytes(b"1\nx 0 2 3f800000 zz \n")
    with WtsFile(path) as src:
        assert src.info("x").shape == (2,)  # listing is lazy
        with pytest.raises(FormatError, match="not hexadecimal"):
            src.read("x")
    path.write_bytes(b"1\nx 0 1 1ffffffff \n")
    with pytest.raises(FormatError, match="wider than 32 bits"):
        read_wts(path)


def test_reader_accepts_dumptfwts_files_and_half_v1(tmp_path):
    tensors = {"w/x": np.array([[1.0, -2.0]], np.float32), "s": np.array(0.5, np.float32)}
    path = tmp_path / "ref.wts2"
    path.write_bytes(dumptfwts_reference(tensors, v1=False))
    back = read_wts(path)
    assert back["w_x"].tolist() == [[1.0, -2.0]] and back["s"].shape == ()
    # TensorRT's v1 reader also takes type 1 (half) records as 16-bit hex words
    path.write_bytes(b"1\nh 1 2 3c00 c000 \n")
    assert read_wts(path)["h"].tolist() == [1.0, -2.0]


def test_dump_weights_picks_version_from_suffix(tmp_path):
    tensors = {"k": np.arange(4, dtype=np.float32).reshape(2, 2)}
    v1 = dump_weights(tensors, tmp_path / "a.wts")
    v2 = dump_weights(tensors, tmp_path / "a.wts2")
    assert v1.read_bytes() == b"1\nk 0 4 0 3f800000 40000000 40400000 \n"
    assert v2.read_bytes().startswith(b"1\nk 0 (2, 2) ")
    # charRNN's data file is v2 content under a .wts name: format= overrides the suffix
    v2b = dump_weights(tensors, tmp_path / "b.wts", format="wts2")
    assert v2b.read_bytes() == v2.read_bytes()

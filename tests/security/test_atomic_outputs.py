"""Outputs are written to a temporary file and renamed into place only on success: a failure
half-way (CRC error, full disk, file-size limit, Ctrl-C) leaves an existing output intact and
no partial or temporary file behind."""

from __future__ import annotations

import errno
import resource

import numpy as np
import pytest

from sec_helpers import copy_checkpoint, good_engine, leftovers, one_line_error, run_cli, snapshot
from tf2rt.cli import main
from tf2rt.errors import Tf2rtError
from tf2rt.outputs import OutputError, atomic_output

PRECIOUS = b"an older result the user still needs\n"


@pytest.fixture
def ckpt(tmp_path):
    return copy_checkpoint(tmp_path / "ck")


def _corrupt_data(prefix):
    """Flip bytes in the middle of the data shard: reading a late tensor fails its CRC."""
    data = prefix.parent / f"{prefix.name}.data-00000-of-00001"
    raw = bytearray(data.read_bytes())
    mid = len(raw) // 2
    raw[mid:mid + 8] = bytes(b ^ 0xFF for b in raw[mid:mid + 8])
    data.write_bytes(bytes(raw))


@pytest.mark.parametrize("fmt", ["wts", "wts2", "npz", "safetensors"])
def test_dump_failing_half_way_keeps_the_old_output(ckpt, tmp_path, capsys, fmt):
    _corrupt_data(ckpt)
    out = tmp_path / f"out.{fmt}"
    out.write_bytes(PRECIOUS)
    before = snapshot(tmp_path)
    code = main(["dump", str(ckpt), "-o", str(out)])
    err = one_line_error(capsys.readouterr().err, "dump")
    assert code == 2 and ("CRC" in err or "checksum" in err.lower()), err
    assert snapshot(tmp_path) == before
    assert not leftovers(tmp_path)


@pytest.mark.parametrize("failure,code", [(OSError(errno.ENOSPC, "No space left on device"), 2),
                                          (KeyboardInterrupt(), 130)])
def test_dump_full_disk_or_interrupt(ckpt, tmp_path, capsys, monkeypatch, failure, code):
    calls = []

    def write_array(*args, **kwargs):  # the second tensor hits a full disk / Ctrl-C
        calls.append(1)
        if len(calls) > 1:
            raise failure
        return real(*args, **kwargs)

    real = np.lib.format.write_array
    monkeypatch.setattr(np.lib.format, "write_array", write_array)
    out = tmp_path / "out.npz"
    out.write_bytes(PRECIOUS)
    assert main(["dump", str(ckpt), "-o", str(out)]) == code
    err = capsys.readouterr().err
    if code == 2:
        assert "No space left on device" in one_line_error(err, "dump")
    assert out.read_bytes() == PRECIOUS
    assert not leftovers(tmp_path)


def _fsize_limit(limit):
    def set_limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return set_limit


def test_file_size_limit_is_an_error_not_a_partial_file(ckpt, tmp_path):
    """Under `ulimit -f`, SIGXFSZ is ignored so the write fails with EFBIG and is cleaned up."""
    out = tmp_path / "out.wts"
    out.write_bytes(PRECIOUS)
    before = snapshot(tmp_path)
    proc = run_cli(["dump", ckpt, "-o", out], preexec_fn=_fsize_limit(256 << 10))
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "File too large" in one_line_error(err, "dump")
    assert snapshot(tmp_path) == before
    assert not leftovers(tmp_path)


def test_convert_under_a_file_size_limit(ckpt, tmp_path):
    out = tmp_path / "m.onnx"
    out.write_bytes(PRECIOUS)
    proc = run_cli(["convert", ckpt, "-o", out], preexec_fn=_fsize_limit(64 << 10))
    assert proc.returncode == 2, proc.stderr.decode()
    assert "File too large" in one_line_error(proc.stderr.decode(), "convert", only=False)
    assert out.read_bytes() == PRECIOUS
    assert not leftovers(tmp_path)


def test_run_outputs_replaced_only_on_success(tmp_path, capsys):
    engine = good_engine(tmp_path / "e.onnx")
    out = tmp_path / "out.npz"
    out.write_bytes(PRECIOUS)
    np.savez(tmp_path / "bad.npz", x=np.zeros(5, np.float32))  # wrong shape and dtype: the run fails
    assert main(["run", str(engine), "--inputs", str(tmp_path / "bad.npz"), "--outputs", str(out)]) == 2
    one_line_error(capsys.readouterr().err, "run")
    assert out.read_bytes() == PRECIOUS
    np.savez(tmp_path / "in.npz", x=np.arange(4, dtype=np.uint8))
    assert main(["run", str(engine), "--inputs", str(tmp_path / "in.npz"), "--outputs", str(out)]) == 0
    with np.load(out) as z:
        np.testing.assert_array_equal(z["y"], np.arange(4, dtype=np.uint8) + [1, 2, 3, 4])
    assert not leftovers(tmp_path)


@pytest.mark.parametrize("command", ["compare", "bench"])
def test_json_reports_are_atomic(tmp_path, capsys, monkeypatch, command):
    engine = good_engine(tmp_path / "e.onnx")
    out = tmp_path / "report.json"
    out.write_bytes(PRECIOUS)
    import tf2rt.outputs as outputs

    real_replace = outputs.os.replace

    def full_disk(src, dst):  # the rename itself fails: nothing may be left behind
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(outputs.os, "replace", full_disk)
    extra = ["--iterations", "2", "--warmup", "0"] if command == "bench" else []
    assert main([command, str(engine), "--json", str(out), *extra]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert out.read_bytes() == PRECIOUS
    assert not leftovers(tmp_path)
    monkeypatch.setattr(outputs.os, "replace", real_replace)
    assert main([command, str(engine), "--json", str(out), *extra]) == 0
    import json

    assert isinstance(json.loads(out.read_text()), dict)


def test_faces_drawing_is_atomic(tmp_path, capsys, monkeypatch):
    import cv2

    img = tmp_path / "img.png"
    cv2.imwrite(str(img), np.full((40, 40, 3), 90, np.uint8))
    out = tmp_path / "drawn.png"
    out.write_bytes(PRECIOUS)
    monkeypatch.setattr(cv2, "imwrite", lambda path, image: (open(path, "wb").write(b"half"), False)[1])
    assert main(["faces", "detect", str(img), "--detector", "haar", "--draw", str(out)]) == 2
    one_line_error(capsys.readouterr().err, "faces")
    assert out.read_bytes() == PRECIOUS
    assert not leftovers(tmp_path)


def test_atomic_output_api(tmp_path):
    out = tmp_path / "x.bin"
    out.write_bytes(PRECIOUS)
    out.chmod(0o640)
    with pytest.raises(RuntimeError):
        with atomic_output(out) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("boom")
    assert out.read_bytes() == PRECIOUS and not leftovers(tmp_path)
    with pytest.raises(OutputError, match="No space left"):
        with atomic_output(out) as tmp:
            raise OSError(errno.ENOSPC, "No space left on device")
    assert out.read_bytes() == PRECIOUS and not leftovers(tmp_path)
    with atomic_output(out) as tmp:
        assert tmp.parent == out.parent and tmp.suffix == ".bin"
        tmp.write_bytes(b"new")
    assert out.read_bytes() == b"new" and oct(out.stat().st_mode & 0o777) == oct(0o640)
    assert issubclass(OutputError, Tf2rtError)

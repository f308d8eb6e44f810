"""No command may write its output over one of its inputs: any file of a checkpoint, of a
SavedModel directory, the model file, the engine, the inputs file - by path, symlink or
hard link."""

from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest

from sec_helpers import copy_checkpoint, good_engine, leftovers, one_line_error, snapshot
from tf2rt.cli import main
from tf2rt.outputs import input_files


@pytest.fixture
def ckpt(tmp_path):
    return copy_checkpoint(tmp_path / "ck")


def _refused(capsys, argv, directory):
    before = snapshot(directory)
    code = main(argv)
    err = one_line_error(capsys.readouterr().err, argv[0])
    assert code == 2
    assert "input" in err and "another output path" in err, err
    assert snapshot(directory) == before, "an input was modified"
    assert not leftovers(directory)


@pytest.mark.parametrize("target,fmt", [
    ("charrnn.data-00000-of-00001", None), ("charrnn.data-00000-of-00001", "npz"),
    ("charrnn.index", "wts2"), ("charrnn.index", "wts"), ("charrnn.meta", "safetensors"),
    ("checkpoint", "npz"), ("charrnn", "wts2"),
])
@pytest.mark.parametrize("source", ["prefix", "index", "dir"])
def test_dump_onto_a_checkpoint_file(ckpt, capsys, target, fmt, source):
    src = {"prefix": ckpt, "index": f"{ckpt}.index", "dir": ckpt.parent}[source]
    argv = ["dump", str(src), "-o", str(ckpt.parent / target)] + (["--format", fmt] if fmt else [])
    _refused(capsys, argv, ckpt.parent)


def test_dump_onto_a_hard_link_or_symlink_of_an_input(ckpt, tmp_path, capsys):
    os.link(f"{ckpt}.index", tmp_path / "hard.wts2")
    os.symlink(f"{ckpt}.data-00000-of-00001", tmp_path / "soft.npz")
    _refused(capsys, ["dump", str(ckpt), "-o", str(tmp_path / "hard.wts2")], tmp_path)
    _refused(capsys, ["dump", str(ckpt), "-o", str(tmp_path / "soft.npz")], tmp_path)


def test_dump_of_a_weight_file_onto_itself(tmp_path, capsys):
    np.savez(tmp_path / "w.npz", a=np.arange(3.0))
    _refused(capsys, ["dump", str(tmp_path / "w.npz"), "-o", str(tmp_path / "w.npz")], tmp_path)


@pytest.mark.parametrize("target", ["charrnn.meta", "charrnn.index", "charrnn.data-00000-of-00001", "checkpoint"])
def test_convert_onto_a_checkpoint_file(ckpt, capsys, target):
    _refused(capsys, ["convert", str(ckpt), "-o", str(ckpt.parent / target)], ckpt.parent)


@pytest.mark.parametrize("name", ["m.keras", "m.h5", "m.pb"])
def test_convert_a_model_file_onto_itself(tmp_path, capsys, name):
    with zipfile.ZipFile(tmp_path / name, "w") as zf:  # contents do not matter: refused before reading
        zf.writestr("config.json", "{}")
    _refused(capsys, ["convert", str(tmp_path / name), "-o", str(tmp_path / name)], tmp_path)


@pytest.mark.parametrize("target", ["saved_model.pb", "variables/variables.index", "variables/new.onnx", "new.onnx"])
def test_convert_into_a_saved_model(tmp_path, capsys, target):
    sm = tmp_path / "sm"
    (sm / "variables").mkdir(parents=True)
    (sm / "saved_model.pb").write_bytes(b"\x08\x01")
    (sm / "variables" / "variables.index").write_bytes(b"index")
    _refused(capsys, ["convert", str(sm), "-o", str(sm / target)], tmp_path)


def test_run_outputs_onto_engine_or_inputs(tmp_path, capsys):
    engine = good_engine(tmp_path / "e.onnx")
    np.savez(tmp_path / "in.npz", x=np.zeros(4, np.uint8))
    base = ["run", str(engine), "--inputs", str(tmp_path / "in.npz"), "--outputs"]
    _refused(capsys, base + [str(engine)], tmp_path)
    _refused(capsys, base + [str(tmp_path / "in.npz")], tmp_path)


@pytest.mark.parametrize("command", ["compare", "bench"])
def test_json_onto_engine(tmp_path, capsys, command):
    engine = good_engine(tmp_path / "e.onnx")
    _refused(capsys, [command, str(engine), "--json", str(engine)], tmp_path)


def test_faces_draw_onto_the_image(tmp_path, capsys):
    import cv2

    img = tmp_path / "img.png"
    cv2.imwrite(str(img), np.full((32, 32, 3), 127, np.uint8))
    _refused(capsys, ["faces", "detect", str(img), "--detector", "haar", "--draw", str(img)], tmp_path)


def test_input_files_lists_every_file_of_a_checkpoint(ckpt):
    names = {p.name for p in input_files(ckpt)}
    assert {"charrnn.index", "charrnn.data-00000-of-00001", "charrnn.meta", "checkpoint"} <= names
    assert {p.name for p in input_files(f"{ckpt}.meta")} >= names - {"charrnn"}
    assert {p.name for p in input_files(ckpt.parent)} >= {"charrnn.index", "charrnn.meta", "checkpoint"}


def test_writing_next_to_the_inputs_still_works(ckpt, capsys):
    out = ckpt.parent / "charrnn.wts2"
    assert main(["dump", str(ckpt), "-o", str(out)]) == 0
    from tf2rt.weights.api import load_weights

    want = load_weights(ckpt)
    got = load_weights(out)
    assert len(got) == len(want) > 0
    for name, w in want.items():
        np.testing.assert_array_equal(np.asarray(got[name.replace("/", "_")].array), np.asarray(w.array))

"""Hostile or broken inputs and bad options end in one line `tf2rt CMD: error: ...` and exit
status 2 - never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from sec_helpers import (copy_checkpoint, engine_model, good_engine, leftovers, meta, one_line_error, run_cli,
                         snapshot, with_metadata_text, write_model)
from tf2rt.cli import main

DEEP = "[" * 100_000 + "]" * 100_000
REPO = Path(__file__).resolve().parents[2]


def _meta_text(**changes) -> str:
    m = meta(4)
    for key, value in changes.items():
        m[key] = value
    return json.dumps(m)


BAD_METADATA = {
    "version-string": _meta_text(version="2b"),
    "version-huge-float": _meta_text().replace('"version": 1', '"version": 1e999'),
    "version-nan": _meta_text().replace('"version": 1', '"version": NaN'),
    "states-not-list": _meta_text(states="x"),
    "states-bad-entry": _meta_text(states=[{"input": 3}]),
    "states-unknown-tensor": _meta_text(states=[{"input": "nope", "output": "y"}]),
    "model-string": _meta_text(model="a string card"),
    "model-settings-bad": _meta_text(model={"settings": {"forget_bias": 1.0}}),
    "bogus-dtype": _meta_text(inputs=[{"name": "x", "dtype": "float128x", "shape": [4]}]),
    "negative-shape": _meta_text(inputs=[{"name": "x", "dtype": "uint8", "shape": [-4]}]),
    "huge-shape": _meta_text(inputs=[{"name": "x", "dtype": "uint8", "shape": [2 ** 32, 2 ** 32, 0]}]),
    "shape-not-list": _meta_text(outputs=[{"name": "y", "dtype": "uint8", "shape": "4"}]),
    "bool-dim": _meta_text(inputs=[{"name": "x", "dtype": "uint8", "shape": [True]}]),
    "hints-bad": _meta_text(input_hints={"x": {"low": "a"}}),
    "deep-json": DEEP,
    "deep-json-in-field": _meta_text(model={"detected": json.loads("[" * 60 + "]" * 60)}),
    "not-json": "{not json",
}


@pytest.mark.parametrize("case", sorted(BAD_METADATA))
@pytest.mark.parametrize("command", ["inspect", "run", "compare", "bench"])
def test_bad_engine_metadata(tmp_path, capsys, case, command):
    from onnx import TensorProto, helper

    c = helper.make_tensor("cv", TensorProto.UINT8, [4], [1, 2, 3, 4])
    model = engine_model([helper.make_node("Constant", [], ["c"], value=c)], n=4)
    engine = write_model(tmp_path / "e.onnx", with_metadata_text(model, BAD_METADATA[case]))
    np.savez(tmp_path / "in.npz", x=np.zeros(4, np.uint8))
    extra = {"run": ["--inputs", str(tmp_path / "in.npz")], "bench": ["--iterations", "1"]}.get(command, [])
    code = main([command, str(engine), *extra])
    err = one_line_error(capsys.readouterr().err, command)
    assert code == 2
    assert "metadata" in err or "nested" in err or "limit" in err, err


@pytest.mark.parametrize("where", ["op_type", "node_name"])
def test_damaged_engine_with_invalid_utf8(tmp_path, capsys, where):
    """Bytes that are not UTF-8 where ONNX expects text (the checker fails decoding its own message)."""
    from onnx import TensorProto, helper

    c = helper.make_tensor("cv", TensorProto.UINT8, [4], [1, 2, 3, 4])
    op = "ZZUNKNOWNOPZZ" if where == "op_type" else "Constant"
    node = helper.make_node(op, [], ["c"], value=c, name="NODENAME_NODENAME")
    marker = b"ZZUNKNOWNOPZZ" if where == "op_type" else b"NODENAME_NODENAME"
    data = engine_model([node], n=4).SerializeToString().replace(marker, bytes((0xF0 + i) % 256 | 0x80 for i in range(len(marker))))
    (tmp_path / "e.onnx").write_bytes(data)
    np.savez(tmp_path / "in.npz", x=np.zeros(4, np.uint8))
    for argv in (["run", str(tmp_path / "e.onnx"), "--inputs", str(tmp_path / "in.npz")],
                 ["inspect", str(tmp_path / "e.onnx")]):
        code = main(argv)
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err
        if where == "op_type" or code != 0:  # a readable engine with an odd node name may still run
            assert code == 2
            one_line_error(captured.err, argv[0])


def test_checkpoint_state_file_naming_itself(tmp_path, capsys):
    d = tmp_path / "loop"
    d.mkdir()
    for target in (str(d), ".", "loop", "../loop"):
        (d / "checkpoint").write_text(f'model_checkpoint_path: "{target}"\n')
        for argv in (["inspect", str(d)], ["dump", str(d), "-o", str(tmp_path / "o.npz")], ["convert", str(d), "-o",
                                                                                             str(tmp_path / "o.onnx")]):
            assert main(argv) == 2
            one_line_error(capsys.readouterr().err, argv[0])
    assert not (tmp_path / "o.npz").exists() and not (tmp_path / "o.onnx").exists()


@pytest.fixture
def ckpt(tmp_path):
    return copy_checkpoint(tmp_path / "ck")


def _unwritable(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    (tmp_path / "adir.npz").mkdir()
    return {
        "missing-dir": str(tmp_path / "nope" / "out.npz"),
        "dot": ".",
        "trailing-slash": str(tmp_path) + "/",
        "is-directory": str(tmp_path / "adir.npz"),
        "long-name": str(tmp_path / ("x" * 300 + ".npz")),
        "read-only-dir": "/sys/tf2rt-out.npz",  # creating files there is refused even to root
        "device": "/dev/null",
        "parent-is-file": str(tmp_path / "in.npz" / "out.npz"),
    }


@pytest.mark.parametrize("case", ["missing-dir", "dot", "trailing-slash", "is-directory", "long-name",
                                  "read-only-dir", "device", "parent-is-file"])
@pytest.mark.parametrize("command", ["dump", "convert", "run", "compare", "bench"])
def test_unwritable_outputs(tmp_path, ckpt, capsys, monkeypatch, case, command):
    monkeypatch.chdir(tmp_path)
    engine = good_engine(tmp_path / "e.onnx")
    np.savez(tmp_path / "in.npz", x=np.zeros(4, np.uint8))
    out = _unwritable(tmp_path)[case]
    argv = {"dump": ["dump", str(ckpt), "-o", out, "--format", "npz"],
            "convert": ["convert", str(ckpt), "-o", out],
            "run": ["run", str(engine), "--inputs", "in.npz", "--outputs", out],
            "compare": ["compare", str(engine), "--json", out],
            "bench": ["bench", str(engine), "--iterations", "1", "--json", out]}[command]
    before = snapshot(tmp_path)
    assert main(argv) == 2
    one_line_error(capsys.readouterr().err, command)
    assert snapshot(tmp_path) == before
    assert not leftovers(tmp_path)


def test_over_long_input_path(tmp_path, capsys):
    long = str(tmp_path / ("y" * 5000))
    for argv in (["inspect", long], ["dump", long, "-o", str(tmp_path / "o.npz")], ["run", long, "--inputs", long],
                 ["convert", long, "-o", str(tmp_path / "o.onnx")], ["compare", long]):
        assert main(argv) == 2
        one_line_error(capsys.readouterr().err, argv[0])


def test_full_stdout(tmp_path):
    engine = good_engine(tmp_path / "e.onnx")
    with open("/dev/full", "w") as full:
        proc = run_cli(["inspect", engine], stdout=full)
    assert proc.returncode == 2
    assert "No space left on device" in one_line_error(proc.stderr.decode(), "inspect")


def test_closed_stdout(tmp_path):
    engine = good_engine(tmp_path / "e.onnx")
    proc = subprocess.run(["sh", "-c", '"$0" -m tf2rt inspect "$1" >&-', os.sys.executable, str(engine)],
                          stderr=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=300)
    assert proc.returncode == 2
    assert "standard output is closed" in one_line_error(proc.stderr.decode(), "inspect")


def test_memory_limit_is_one_line(tmp_path):
    """Under a small address-space limit, what cannot be allocated is an error, not a traceback."""
    import resource

    np.savez(tmp_path / "big.npz", a=np.zeros((64, 1 << 20), np.float32))  # 256 MiB of zeros

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (1200 << 20, 1200 << 20))

    proc = run_cli(["dump", tmp_path / "big.npz", "-o", tmp_path / "o.wts"], preexec_fn=limit,
                   env={"TF2RT_MAX_BYTES": "64G"})
    err = proc.stderr.decode()
    if proc.returncode != 0:  # the hex text of 256 MiB does not fit: one line, nothing left behind
        assert proc.returncode == 2, err
        one_line_error(err, "dump", only=False)
        assert not (tmp_path / "o.wts").exists()
    assert not leftovers(tmp_path)


BAD_OPTIONS = [
    (["bench", "E", "--batch", "-3"], "--batch"),
    (["bench", "E", "--iterations", "0"], "--iterations"),
    (["charrnn", "E", "--vocab", "v", "--seed", "-1"], "--seed"),
    (["charrnn", "E", "--vocab", "v", "--length", str(10 ** 12)], "--length"),
    (["charrnn", "E", "--vocab", "v", "--top-k", "0"], "--top-k"),
    (["charrnn", "E", "--vocab", "v", "--temperature", "nan"], "--temperature"),
    (["classify", "I", "--model", "M", "--batch-size", "0"], "--batch-size"),
    (["classify", "I", "--model", "M", "--topk", "-1"], "--topk"),
    (["compare", "E", "--atol", "nan"], "--atol"),
    (["compare", "E", "--atol", "-1"], "--atol"),
    (["compare", "E", "--rtol", "inf"], "--rtol"),
    (["compare", "E", "--batch", "0"], "--batch"),
    (["faces", "detect", "I", "--draw", "x.unknownext"], "--draw"),
    (["faces", "detect", "I", "--draw", "noextension"], "--draw"),
    (["faces", "eval", "--dataset", "lfw-subset", "--plot", "x.unknownext"], "--plot"),
    (["demo", "--length", "-5"], "--length"),
]


@pytest.mark.parametrize("argv,option", BAD_OPTIONS, ids=[" ".join(a[:1] + [o]) + str(i) for i, (a, o) in
                                                          enumerate(BAD_OPTIONS)])
def test_bad_option_values_refused_by_the_parser(capsys, argv, option):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err and "Traceback" not in err, err


def test_last_line_of_defence(monkeypatch, capsys):
    """An OSError / MemoryError / RecursionError a command lets escape is still one line."""
    import tf2rt.cli.inspect as inspect_cmd

    for exc, text in ((OSError(5, "Input/output error"), "Input/output error"),
                      (MemoryError(), "out of memory"), (RecursionError(), "nested too deeply")):
        def boom(args, exc=exc):
            raise exc

        monkeypatch.setattr(inspect_cmd, "run", boom)
        assert main(["inspect", "whatever"]) == 2
        assert text in one_line_error(capsys.readouterr().err, "inspect")

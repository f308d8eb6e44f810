"""Hostile files for the security tests, built by hand (onnx.helper, protobuf, zipfile)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

SECRET = b"TOPSECRET-ssh-key-0123456789abcd"  # 32 bytes that must never show up in an output


def meta(n: int = len(SECRET), **extra) -> dict:
    base = {"format": "tf2rt-engine", "version": 1,
            "inputs": [{"name": "x", "dtype": "uint8", "shape": [n]}],
            "outputs": [{"name": "y", "dtype": "uint8", "shape": [n]}]}
    base.update(extra)
    return base


def external_tensor(name: str, location: str, n: int = len(SECRET), offset: int = 0) -> TensorProto:
    """A uint8 tensor whose bytes live in `location` (ONNX external data)."""
    t = TensorProto(name=name, data_type=TensorProto.UINT8, dims=[n])
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", str(offset)), ("length", str(n))):
        e = t.external_data.add()
        e.key, e.value = k, v
    return t


def engine_model(nodes, initializers=(), n: int = len(SECRET), metadata: dict | None = None,
                 sparse=()) -> onnx.ModelProto:
    """y = x + c, where the nodes compute `c`; metadata as a tf2rt engine."""
    graph = helper.make_graph(
        list(nodes) + [helper.make_node("Add", ["x", "c"], ["y"])], "hostile",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, [n])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, [n])],
        initializer=list(initializers), sparse_initializer=list(sparse))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    entry = model.metadata_props.add()
    entry.key, entry.value = "tf2rt", json.dumps(meta(n) if metadata is None else metadata)
    return model


def good_engine(path: Path, n: int = 4) -> Path:
    """A valid engine: y = x + [1, 2, ...] (uint8)."""
    c = helper.make_tensor("cv", TensorProto.UINT8, [n], list(range(1, n + 1)))
    model = engine_model([helper.make_node("Constant", [], ["c"], value=c)], n=n)
    path.write_bytes(model.SerializeToString())
    return path


def write_model(path: Path, model: onnx.ModelProto) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def with_metadata_text(model: onnx.ModelProto, text: str) -> onnx.ModelProto:
    for p in model.metadata_props:
        if p.key == "tf2rt":
            p.value = text
    return model


def run_cli(args, cwd=None, preexec_fn=None, stdout=subprocess.PIPE, timeout=300, env=None):
    """`python -m tf2rt ARGS` in a subprocess (for process-level behaviour)."""
    full_env = dict(os.environ, **(env or {}))
    full_env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2]) + os.pathsep + full_env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "tf2rt", *map(str, args)], cwd=cwd, stdout=stdout,
                          stderr=subprocess.PIPE, preexec_fn=preexec_fn, timeout=timeout, env=full_env)


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under `directory` with its bytes (to check nothing changed or was left behind)."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def one_line_error(err: str, command: str, only: bool = True) -> str:
    """The error line of a CLI run, after checking it carries no traceback (and, with `only`,
    that it is the only line on stderr)."""
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert lines, "no error message"
    if only:
        assert len(lines) == 1, err
    last = lines[-1]
    assert last.startswith(f"tf2rt {command}: error: "), err
    return last


def npz_bytes_all(path: Path) -> bytes:
    with np.load(path) as z:
        return b"".join(z[k].tobytes() for k in z.files)


def identity_engine(path: Path, inp: str = "x", out: str = "y", n: int = 4) -> Path:
    """A float32 engine out = Identity(inp) of shape [batch, n] (to compare with a TF model)."""
    graph = helper.make_graph([helper.make_node("Identity", [inp], [out])], "identity",
                              [helper.make_tensor_value_info(inp, TensorProto.FLOAT, [None, n])],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, [None, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    entry = model.metadata_props.add()
    entry.key, entry.value = "tf2rt", json.dumps({
        "format": "tf2rt-engine", "version": 1,
        "inputs": [{"name": inp, "dtype": "float32", "shape": [None, n]}],
        "outputs": [{"name": out, "dtype": "float32", "shape": [None, n]}]})
    path.write_bytes(model.SerializeToString())
    return path


CHARRNN = Path(__file__).resolve().parents[2] / "tf2rt" / "data" / "charrnn" / "model"


def copy_checkpoint(dst: Path) -> Path:
    """A copy of the bundled TF1 char-RNN checkpoint (index, data shard, .meta, state file); its prefix."""
    import shutil

    dst.mkdir(parents=True, exist_ok=True)
    for f in CHARRNN.iterdir():
        shutil.copyfile(f, dst / f.name)
    return dst / "charrnn"


def leftovers(directory: Path) -> list[str]:
    """Temporary files tf2rt may have left in `directory`."""
    return [p.name for p in directory.rglob("*") if ".tmp" in p.name]

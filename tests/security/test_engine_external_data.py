"""Engines whose tensors keep their data in other files: only regular files inside the
engine's own directory may be named, for every tensor of every graph and attribute."""

from __future__ import annotations

import os

import numpy as np
import pytest
from onnx import TensorProto, helper

from sec_helpers import (SECRET, engine_model, external_tensor, good_engine, npz_bytes_all, one_line_error,
                     snapshot, write_model)
from tf2rt.cli import main

N = len(SECRET)


@pytest.fixture
def layout(tmp_path, monkeypatch):
    """home/ holds the secret and is the current directory; the engine lives in home/dl/."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_bytes(SECRET)
    (home / "dl").mkdir()
    np.savez(home / "in.npz", x=np.zeros(N, np.uint8))
    monkeypatch.chdir(home)
    return home


def _constant(location: str):
    return [helper.make_node("Constant", [], ["c"], value=external_tensor("cv", location))]


def _initializer(location: str):
    return [], [external_tensor("c", location)]


def _if_subgraph(location: str):
    branch = helper.make_graph([helper.make_node("Constant", [], ["cb"], value=external_tensor("cv", location))],
                               "branch", [], [helper.make_tensor_value_info("cb", TensorProto.UINT8, [N])])
    cond = helper.make_tensor("cond", TensorProto.BOOL, [], [True])
    return [helper.make_node("Constant", [], ["k"], value=cond),
            helper.make_node("If", ["k"], ["c"], then_branch=branch, else_branch=branch)]


def _tensors_attr(location: str):
    # a node attribute of type TENSORS (no standard op reads it, but a backend may resolve it)
    node = helper.make_node("Identity", ["c0"], ["c"])
    node.attribute.append(helper.make_attribute("payload", [external_tensor("cv", location)]))
    return [helper.make_node("Constant", [], ["c0"], value=helper.make_tensor("z", TensorProto.UINT8, [N], [0] * N)),
            node]


def _sparse(location: str):
    values = external_tensor("sv", location)
    indices = helper.make_tensor("si", TensorProto.INT64, [N], list(range(N)))
    sp = helper.make_sparse_tensor(values, indices, [N])
    return [helper.make_node("Constant", [], ["c"], sparse_value=sp)]


def _model(kind: str, location: str):
    if kind == "initializer":
        nodes, inits = _initializer(location)
        return engine_model(nodes, inits)
    return engine_model({"constant": _constant, "if": _if_subgraph, "tensors": _tensors_attr,
                         "sparse": _sparse}[kind](location))


LOCATIONS = ["../.ssh/id_rsa", ".ssh/id_rsa", "{abs}", "link_to_secret", "dl_fifo"]


@pytest.mark.parametrize("backend", ["onnxruntime", "reference"])
@pytest.mark.parametrize("kind", ["constant", "initializer", "if", "tensors", "sparse"])
@pytest.mark.parametrize("location", LOCATIONS)
def test_external_data_outside_engine_dir_is_refused(layout, capsys, backend, kind, location):
    engine_dir = layout / "dl"
    if location == "{abs}":
        location = str(layout / ".ssh" / "id_rsa")
    elif location == "link_to_secret":  # a symlink inside the directory pointing out of it
        os.symlink(layout / ".ssh" / "id_rsa", engine_dir / "link_to_secret")
    elif location == "dl_fifo":  # inside, but not a regular file (would block a reader)
        os.mkfifo(engine_dir / "dl_fifo")
    engine = write_model(engine_dir / "downloaded.onnx", _model(kind, location))
    before = snapshot(layout)
    out = layout / "out.npz"
    code = main(["run", str(engine), "--inputs", "in.npz", "--outputs", str(out), "--backend", backend])
    err = one_line_error(capsys.readouterr().err, "run")
    assert code == 2
    assert "external data" in err
    assert not out.exists()
    assert snapshot(layout) == before
    for name in (p.name for p in layout.rglob("*")):
        assert ".tmp" not in name


@pytest.mark.parametrize("command", [["inspect"], ["compare"], ["bench", "--iterations", "1", "--warmup", "0"]])
def test_other_commands_refuse_it_too(layout, capsys, command):
    engine = write_model(layout / "dl" / "e.onnx", _model("constant", "../.ssh/id_rsa"))
    code = main([command[0], str(engine), *command[1:]])
    captured = capsys.readouterr()
    assert code == 2
    assert "external data" in one_line_error(captured.err, command[0])
    assert SECRET.decode() not in captured.out


def test_engine_from_bytes_has_no_directory(layout):
    from tf2rt.engine.engine import from_bytes
    from tf2rt.errors import FormatError

    data = _model("constant", "data.bin").SerializeToString()
    with pytest.raises(FormatError, match="given as bytes has no directory"):
        from_bytes(data)


@pytest.mark.parametrize("backend,kind", [("onnxruntime", "constant"), ("reference", "constant"),
                                          ("onnxruntime", "initializer"), ("reference", "initializer"),
                                          ("onnxruntime", "if")])  # the reference backend has no If
def test_external_data_inside_engine_dir_is_inlined(layout, capsys, backend, kind):
    """Legitimate external data (a regular file next to the engine) is read by tf2rt itself."""
    engine_dir = layout / "dl"
    payload = bytes(range(7, 7 + N))
    (engine_dir / "weights.bin").write_bytes(b"\xff" * 8 + payload)
    model = _model(kind, "weights.bin")
    for t in (model.graph.initializer if kind == "initializer" else []):
        t.external_data[1].value = "8"
    if kind == "constant":
        model.graph.node[0].attribute[0].t.external_data[1].value = "8"
    if kind == "if":
        for a in model.graph.node[1].attribute:
            a.g.node[0].attribute[0].t.external_data[1].value = "8"
    engine = write_model(engine_dir / "ok.onnx", model)
    out = layout / "out.npz"
    assert main(["run", str(engine), "--inputs", "in.npz", "--outputs", str(out), "--backend", backend]) == 0
    assert npz_bytes_all(out) == payload
    # the runner saw no path: the loaded model holds the bytes itself
    from tf2rt.engine import load_engine
    from tf2rt.engine.external import iter_tensors

    assert all(t.data_location != TensorProto.EXTERNAL for t in iter_tensors(load_engine(engine).onnx))


def test_external_data_range_outside_file_is_refused(layout, capsys):
    engine_dir = layout / "dl"
    (engine_dir / "short.bin").write_bytes(b"abc")
    engine = write_model(engine_dir / "e.onnx", _model("constant", "short.bin"))
    assert main(["run", str(engine), "--inputs", "in.npz"]) == 2
    assert "external data" in one_line_error(capsys.readouterr().err, "run")


def test_external_data_size_is_capped(layout, capsys, monkeypatch):
    engine_dir = layout / "dl"
    (engine_dir / "big.bin").write_bytes(b"\1" * (1 << 20))
    model = _model("constant", "big.bin")
    model.graph.node[0].attribute[0].t.external_data[2].value = str(1 << 20)  # length
    engine = write_model(engine_dir / "e.onnx", model)
    monkeypatch.setenv("TF2RT_MAX_BYTES", "64K")
    assert main(["run", str(engine), "--inputs", "in.npz"]) == 2
    assert "TF2RT_MAX_BYTES" in one_line_error(capsys.readouterr().err, "run")


@pytest.mark.parametrize("backend", ["onnxruntime", "reference"])
def test_engine_built_in_memory_cannot_hand_paths_to_a_backend(layout, backend):
    """Engine(model, metadata) skips file loading; the backend loader still refuses external data."""
    from sec_helpers import meta
    from tf2rt.engine.engine import Engine
    from tf2rt.errors import FormatError

    engine = Engine(_model("constant", ".ssh/id_rsa"), meta())
    with pytest.raises(FormatError, match="another file"):
        engine.run({"x": np.zeros(N, np.uint8)}, backend=backend)

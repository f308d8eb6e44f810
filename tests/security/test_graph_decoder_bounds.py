"""Hostile GraphDefs and MetaGraphDefs: exponential function inlining, constant folding that
expands a few bytes to gigabytes, oversized TensorProto fills. Each file is built here with
the protobuf wire format by hand and must fail fast with one line, inside a memory limit."""

from __future__ import annotations

import resource
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

# --- a tiny protobuf writer (wire format), enough for GraphDef / FunctionDef / MetaGraphDef


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _len(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _int(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _str(field: int, text: str) -> bytes:
    return _len(field, text.encode())


def _shape(dims: list[int]) -> bytes:
    return b"".join(_len(2, _int(1, d)) for d in dims)


def _tensor(dtype: int, dims: list[int], int_vals: list[int] = (), floats: list[float] = ()) -> bytes:
    body = _int(1, dtype) + _len(2, _shape(dims))
    if int_vals:
        body += _len(7, b"".join(_varint(v) for v in int_vals))
    if floats:
        body += _len(5, struct.pack(f"<{len(floats)}f", *floats))
    return body


def _attr(key: str, value: bytes) -> bytes:
    return _len(5, _str(1, key) + _len(2, value))


def _node(name: str, op: str, inputs: list[str] = (), attrs: list[bytes] = ()) -> bytes:
    return _str(1, name) + _str(2, op) + b"".join(_str(3, i) for i in inputs) + b"".join(attrs)


def _const(name: str, tensor: bytes, dtype: int) -> bytes:
    return _node(name, "Const", [], [_attr("value", _len(8, tensor)), _attr("dtype", _int(6, dtype))])


def _placeholder(name: str) -> bytes:
    return _node(name, "Placeholder", [], [_attr("dtype", _int(6, 1)), _attr("shape", _len(7, _shape([1, 4])))])


def _graphdef(nodes: list[bytes], functions: list[bytes] = ()) -> bytes:
    out = b"".join(_len(1, n) for n in nodes)
    if functions:
        out += _len(2, b"".join(_len(1, f) for f in functions))
    return out


def _function(name: str, body: list[bytes], ret: str) -> bytes:
    sig = _str(1, name) + _len(2, _str(1, "x")) + _len(3, _str(1, "y"))
    return _len(1, sig) + b"".join(_len(3, n) for n in body) + _len(4, _str(1, "y") + _str(2, ret))


def _run_limited(args: list[str], cwd: Path, mem_gib: float = 2.0, timeout: float = 90) -> subprocess.CompletedProcess:
    limit = int(mem_gib * (1 << 30))

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return subprocess.run([sys.executable, "-m", "tf2rt", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, preexec_fn=cap)


def _one_line_error(proc: subprocess.CompletedProcess, command: str, *words: str) -> None:
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"tf2rt {command}: error: "), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    for w in words:
        assert w in err[0], err[0]


def test_exponential_function_inlining_is_bounded(tmp_path: Path) -> None:
    """f0 calls f1 twice, f1 calls f2 twice, ... 40 levels: 2^40 nodes if inlined naively."""
    levels = 40
    fns = []
    for k in range(levels):
        if k == levels - 1:
            body = [_node("id", "Identity", ["x"])]
            ret = "id:output:0"
        else:
            call = [_attr("f", _len(10, _str(1, f"f{k + 1}")))]
            body = [_node("a", "PartitionedCall", ["x"], call), _node("b", "PartitionedCall", ["a:output:0"], call)]
            ret = "b:output:0"
        fns.append(_function(f"f{k}", body, ret))
    data = _graphdef([_placeholder("x"), _node("call", "PartitionedCall", ["x"],
                                               [_attr("f", _len(10, _str(1, "f0")))])], fns)
    assert len(data) < 10_000
    (tmp_path / "bomb.pb").write_bytes(data)
    proc = _run_limited(["convert", "bomb.pb", "-o", "out.onnx"], tmp_path)
    _one_line_error(proc, "convert", "inlining")
    assert not (tmp_path / "out.onnx").exists()


@pytest.mark.parametrize("op", ["Fill", "Tile", "Range", "BroadcastTo"])
def test_constant_folding_is_capped(tmp_path: Path, op: str) -> None:
    """A ~300-byte graph whose folded constant would need gigabytes."""
    int32 = 3
    nodes = [_placeholder("x")]
    if op == "Fill":
        nodes += [_const("dims", _tensor(int32, [2], [20000, 20000]), int32),
                  _const("v", _tensor(1, [], floats=[1.0]), 1),
                  _node("big", "Fill", ["dims", "v"])]
    elif op == "Tile":
        nodes += [_const("v", _tensor(1, [1, 4], floats=[1, 2, 3, 4]), 1),
                  _const("m", _tensor(int32, [2], [100_000_000, 1]), int32),
                  _node("big", "Tile", ["v", "m"])]
    elif op == "Range":
        nodes += [_const("a", _tensor(int32, [], [0]), int32), _const("b", _tensor(int32, [], [2_000_000_000]), int32),
                  _const("c", _tensor(int32, [], [1]), int32), _node("big", "Range", ["a", "b", "c"])]
    else:
        nodes += [_const("v", _tensor(1, [1, 4], floats=[1, 2, 3, 4]), 1),
                  _const("s", _tensor(int32, [2], [200_000_000, 4]), int32),
                  _node("big", "BroadcastTo", ["v", "s"])]
    nodes += [_node("y", "Add", ["x", "big"])]
    (tmp_path / "g.pb").write_bytes(_graphdef(nodes))
    proc = _run_limited(["convert", "g.pb", "-o", "out.onnx"], tmp_path)
    _one_line_error(proc, "convert", op)
    assert not (tmp_path / "out.onnx").exists()


def test_tensorproto_fill_is_capped(tmp_path: Path) -> None:
    """A 30-byte TensorProto that asks for 2^33 float32 values from one stored value."""
    nodes = [_placeholder("x"), _const("big", _tensor(1, [1 << 17, 1 << 16], floats=[1.0]), 1),
             _node("y", "Add", ["x", "big"])]
    (tmp_path / "g.pb").write_bytes(_graphdef(nodes))
    proc = _run_limited(["convert", "g.pb", "-o", "out.onnx"], tmp_path)
    _one_line_error(proc, "convert", "constant of shape")


def test_meta_graph_uses_the_capped_decoder() -> None:
    """The .meta reader decodes constants through the same capped TensorProto decoder."""
    from tf2rt.errors import FormatError
    from tf2rt.importers.meta_graph import _tensor_value
    from tf2rt.proto import Message

    small = Message(_tensor(1, [3], floats=[1.5]))
    assert np.array_equal(_tensor_value(small), [1.5, 1.5, 1.5])
    huge = Message(_tensor(1, [1 << 33], floats=[1.0]))
    with pytest.raises(FormatError, match="constant of shape"):
        _tensor_value(huge)


def test_bad_fold_inputs_are_one_line_errors(tmp_path: Path) -> None:
    """A Transpose with a bad permutation and an out-of-range Gather, folded at import."""
    int32 = 3
    cases = {
        "Transpose": ([_const("p", _tensor(int32, [2], [0, 7]), int32)], ["v", "p"]),
        "GatherV2": ([_const("i", _tensor(int32, [1], [99]), int32), _const("ax", _tensor(int32, [], [0]), int32)],
                     ["v", "i", "ax"]),
    }
    for op, (extra, refs) in cases.items():
        nodes = [_placeholder("x"), _const("v", _tensor(1, [1, 4], floats=[1, 2, 3, 4]), 1), *extra,
                 _node("c", op, refs), _node("y", "Add", ["x", "c"])]
        (tmp_path / f"{op}.pb").write_bytes(_graphdef(nodes))
        proc = _run_limited(["convert", f"{op}.pb", "-o", "out.onnx"], tmp_path)
        _one_line_error(proc, "convert", op)

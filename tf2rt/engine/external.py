"""ONNX external tensor data, handled before any backend sees a model.

An ONNX tensor may say "my bytes are in file X at offset O": onnxruntime and onnx's
numpy_helper resolve X against the current directory (for models given as bytes), so a
hostile engine could make a backend read any file and return it as an output. tf2rt
therefore reads such data itself, only from regular files inside the engine's own
directory, and stores it in the in-memory model; no backend ever resolves a path.

Every tensor is visited: initializers, sparse initializers, node attributes (tensor,
tensors, sparse tensor(s)) and every subgraph (If/Loop/Scan bodies), functions and
training-info graphs.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Iterator, Optional

from ..errors import FormatError
from ..limits import check_bytes


def iter_tensors(model: Any) -> Iterator[Any]:
    """Every TensorProto anywhere in a ModelProto (iterative: subgraphs may nest deeply)."""
    graphs: list[Any] = [model.graph]
    nodes: list[Any] = []
    for fn in model.functions:
        nodes.extend(fn.node)
    for info in model.training_info:
        graphs.extend((info.initialization, info.algorithm))
    while graphs or nodes:
        if graphs:
            g = graphs.pop()
            yield from g.initializer
            for sp in g.sparse_initializer:
                yield sp.values
                yield sp.indices
            nodes.extend(g.node)
            continue
        node = nodes.pop()
        for a in node.attribute:
            if a.HasField("t"):
                yield a.t
            yield from a.tensors
            sparse = ([a.sparse_tensor] if a.HasField("sparse_tensor") else []) + list(a.sparse_tensors)
            for sp in sparse:
                yield sp.values
                yield sp.indices
            if a.HasField("g"):
                graphs.append(a.g)
            graphs.extend(a.graphs)


def _int_field(value: str, key: str, what: str) -> int:
    if not value.isdigit():
        raise FormatError(f"{what}: external data {key} {value[:40]!r} is not a non-negative integer")
    return int(value)


def inline_external_data(model: Any, base_dir: Optional[Path], where: str) -> int:
    """Read every tensor's external data into the model; returns the bytes read.

    Refuses (FormatError) data outside `base_dir` (resolved, symlinks followed), non-regular
    files, absolute or escaping locations, and any external data when `base_dir` is None
    (an engine given as bytes has no directory of its own)."""
    from onnx import TensorProto

    total = 0
    base_real = os.path.realpath(base_dir) if base_dir is not None else None
    for t in iter_tensors(model):
        if t.data_location != TensorProto.EXTERNAL:
            if len(t.external_data):
                raise FormatError(f"{where}: tensor {t.name[:80]!r} carries external-data entries but is not "
                                  "marked external; the file is damaged")
            continue
        what = f"{where}: tensor {t.name[:80]!r}"
        if base_real is None:
            raise FormatError(f"{what} keeps its data in another file, and an engine given as bytes has no "
                              "directory to read it from; load it from its file, or rebuild it self-contained")
        info = {e.key: e.value for e in t.external_data}
        location = info.get("location", "")
        if not location or "\0" in location or os.path.isabs(location):
            raise FormatError(f"{what}: external data location {location[:80]!r} is not a relative file name; "
                              "external data may only name files in the engine's own directory")
        real = os.path.realpath(os.path.join(base_real, location))
        if not real.startswith(base_real.rstrip(os.sep) + os.sep):
            raise FormatError(f"{what}: external data {location[:80]!r} lies outside the engine's directory; "
                              "refusing to read it (external data may only name files next to the engine)")
        try:
            st = os.stat(real)
        except OSError as exc:
            raise FormatError(f"{what}: external data file {location[:80]!r}: {exc.strerror or exc}") from None
        if not stat.S_ISREG(st.st_mode):
            raise FormatError(f"{what}: external data {location[:80]!r} is not a regular file")
        offset = _int_field(info.get("offset", "0"), "offset", what)
        length = _int_field(info["length"], "length", what) if "length" in info else st.st_size - min(offset, st.st_size)
        if offset + length > st.st_size:
            raise FormatError(f"{what}: external data asks for bytes {offset}..{offset + length} of "
                              f"{location[:80]!r}, which has {st.st_size}; the engine is damaged")
        check_bytes(length, f"{what}: external data")
        total += length
        check_bytes(total, f"{where}: external data of all tensors")
        try:
            with open(real, "rb") as f:
                f.seek(offset)
                data = f.read(length)
        except OSError as exc:
            raise FormatError(f"{what}: cannot read external data {location[:80]!r}: {exc.strerror or exc}") from None
        if len(data) != length:
            raise FormatError(f"{what}: external data {location[:80]!r} is truncated")
        t.raw_data = data
        del t.external_data[:]
        t.data_location = TensorProto.DEFAULT
    return total


def refuse_external_data(model: Any, where: str = "engine") -> None:
    """FormatError if any tensor still points at another file (backends never resolve paths;
    an engine loaded from a file has had its external data read in already)."""
    from onnx import TensorProto

    for t in iter_tensors(model):
        if t.data_location == TensorProto.EXTERNAL or len(t.external_data):
            raise FormatError(f"{where}: tensor {t.name[:80]!r} keeps its data in another file; backends never "
                              "read files an engine names - load the engine with tf2rt.load_engine(path), which "
                              "reads external data from the engine's own directory")

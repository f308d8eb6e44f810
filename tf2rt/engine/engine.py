"""Engine: an ONNX model plus tf2rt metadata; saved as a plain, valid .onnx file."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import numpy as np

from ..errors import FormatError, Tf2rtError

METADATA_KEY = "tf2rt"
FORMAT_NAME = "tf2rt-engine"
FORMAT_VERSION = 1

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class TensorSpec:
    """Name, dtype ("float32", "int32", ...) and shape (None = dynamic) of an engine input or output."""

    name: str
    dtype: str
    shape: tuple

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "TensorSpec":
        return cls(str(d["name"]), str(d["dtype"]), tuple(None if v is None else int(v) for v in d["shape"]))


class Engine:
    """A built network: `onnx` (ModelProto), `metadata` (dict), `inputs`/`outputs` (TensorSpec)."""

    def __init__(self, model: Any, metadata: Mapping[str, Any]):
        self.onnx = model
        self.metadata: dict[str, Any] = dict(metadata)
        try:
            self.inputs = [TensorSpec.from_json(d) for d in self.metadata["inputs"]]
            self.outputs = [TensorSpec.from_json(d) for d in self.metadata["outputs"]]
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise FormatError(f"engine metadata is malformed ({exc}); rebuild the engine") from None
        self._runners: dict[Any, Any] = {}

    # --- properties ------------------------------------------------------------------
    @property
    def precision(self) -> str:
        return str(self.metadata.get("precision", "fp32"))

    @property
    def source(self) -> Optional[str]:
        return self.metadata.get("source")

    @property
    def states(self) -> list[tuple[str, str]]:
        """(state input, state output) name pairs for streaming use."""
        return [(s["input"], s["output"]) for s in self.metadata.get("states", [])]

    @property
    def foreign(self) -> bool:
        """True for an ONNX model tf2rt did not build (metadata read from its graph)."""
        return bool(self.metadata.get("foreign", False))

    @property
    def input_names(self) -> list[str]:
        return [s.name for s in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [s.name for s in self.outputs]

    # --- running -----------------------------------------------------------------------
    def runner(self, backend: str = "onnxruntime", **options: Any) -> Any:
        """A loaded Runner (load once, run many) for `backend`."""
        from ..backends import load

        return load(self, backend, **options)

    def run(self, feeds: Mapping[str, Any], backend: str = "onnxruntime", **options: Any) -> dict[str, np.ndarray]:
        """Run once on `backend` (its Runner is cached on the engine); returns name -> array."""
        key = (backend, tuple(sorted((k, repr(v)) for k, v in options.items())))
        runner = self._runners.get(key)
        if runner is None:
            runner = self._runners[key] = self.runner(backend, **options)
        return runner.run(feeds)

    def __call__(self, *arrays: Any, **feeds: Any) -> Any:
        """engine(x, ...) -> the output array (one output) or a tuple of output arrays."""
        if len(arrays) > len(self.inputs):
            raise Tf2rtError(f"engine takes {len(self.inputs)} input(s) ({', '.join(self.input_names)}), "
                             f"got {len(arrays)} positional arrays")
        all_feeds = dict(zip(self.input_names, arrays))
        all_feeds.update(feeds)
        out = self.run(all_feeds)
        values = tuple(out[n] for n in self.output_names)
        return values[0] if len(values) == 1 else values

    def stream(self, backend: str = "onnxruntime", **options: Any) -> Any:
        """A Stream that runs step by step, feeding final states back as initial states."""
        from .stream import Stream

        return Stream(self, self.runner(backend, **options))

    def close(self) -> None:
        for r in self._runners.values():
            r.close()
        self._runners.clear()

    # --- files ---------------------------------------------------------------------------
    def serialize(self) -> bytes:
        return self.onnx.SerializeToString()

    def save(self, path: PathLike, inputs: Any = ()) -> Path:
        """Write the engine as one .onnx file (metadata in metadata_props['tf2rt']), atomically;
        `inputs`: files it must not overwrite (the model it was converted from)."""
        from ..outputs import write_bytes

        return write_bytes(path, self.serialize(), inputs, "engine")

    def __repr__(self) -> str:
        ins = ", ".join(f"{s.name}:{s.dtype}{list(s.shape)}" for s in self.inputs)
        outs = ", ".join(f"{s.name}:{s.dtype}{list(s.shape)}" for s in self.outputs)
        return f"<Engine {self.precision} ({ins}) -> ({outs})>"


def attach_metadata(model: Any, metadata: Mapping[str, Any]) -> None:
    """Store the metadata JSON in the model's metadata_props (replacing an older entry)."""
    props = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(props)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata, sort_keys=True)


def read_metadata(model: Any, where: str) -> dict[str, Any]:
    """The checked metadata of an engine file (every field tf2rt uses has its expected type)."""
    from .metadata import check_metadata, parse_metadata

    for p in model.metadata_props:
        if p.key == METADATA_KEY:
            return check_metadata(parse_metadata(p.value, where), where, FORMAT_NAME, FORMAT_VERSION)
    # Any other ONNX model runs too: its inputs and outputs come from the graph ("foreign": true).
    from .foreign import foreign_metadata

    return check_metadata(foreign_metadata(model, where, FORMAT_NAME, FORMAT_VERSION), where, FORMAT_NAME,
                          FORMAT_VERSION)


def from_bytes(data: bytes, where: str = "<bytes>", base_dir: Optional[PathLike] = None) -> Engine:
    """An Engine from serialized bytes; FormatError for anything that is not a valid engine.

    Nothing in the bytes is trusted: external tensor data is read here (only from regular
    files inside `base_dir`, the engine file's directory; none for bytes without one) into
    the in-memory model, so no backend ever resolves a path the file names."""
    try:
        return _from_bytes(data, where, base_dir)
    except UnicodeDecodeError:
        raise FormatError(f"{where}: the engine holds text that is not valid UTF-8; the file is damaged") from None


def _from_bytes(data: bytes, where: str, base_dir: Optional[PathLike]) -> Engine:
    import onnx
    from google.protobuf.message import DecodeError

    from .external import inline_external_data

    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError, RecursionError) as exc:
        raise FormatError(f"{where}: not an ONNX engine file (protobuf decode failed: {exc})") from None
    if not model.HasField("graph") or not model.opset_import:
        raise FormatError(f"{where}: not an ONNX engine file (no graph); check the path")
    meta = read_metadata(model, where)
    inline_external_data(model, None if base_dir is None else Path(base_dir), where)
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid model"
        raise FormatError(f"{where}: the engine's ONNX graph is invalid ({first[:300]}); rebuild the engine") from None
    engine = Engine(model, meta)
    graph_in = {i.name for i in model.graph.input}
    graph_out = {o.name for o in model.graph.output}
    missing = [s.name for s in engine.inputs if s.name not in graph_in] + \
              [s.name for s in engine.outputs if s.name not in graph_out]
    if missing:
        raise FormatError(f"{where}: metadata names tensors the graph lacks ({', '.join(missing)}); rebuild the engine")
    return engine


def load_engine(path: PathLike) -> Engine:
    """Load an engine file written by Engine.save()."""
    from ..limits import max_bytes, read_capped, regular_file

    p = Path(path)
    try:
        regular_file(p, "engine file")
    except Tf2rtError as exc:
        raise FormatError(str(exc)) from None
    return from_bytes(read_capped(p, max_bytes(), "engine file"), str(p), p.parent)

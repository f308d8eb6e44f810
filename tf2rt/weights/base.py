"""The weight model shared by every reader and writer: `Weights`, `TensorInfo`, `WeightSource`.

A `WeightSource` is a lazily opened file (or set of files): listing its tensors reads only
metadata; `read(name)` reads one tensor. Readers of every format implement it, so
`load_weights` and `dump_weights` work the same way for all of them.
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import MissingTensorError

# Kinds of tensor a checkpoint holds. Only "variable" tensors are model weights.
VARIABLE = "variable"
OPTIMIZER_SLOT = "optimizer_slot"  # Adam/Momentum/... slots, optimizer iterations, beta powers
BOOKKEEPING = "bookkeeping"  # global_step, save_counter, the object graph


@dataclass(frozen=True)
class TensorInfo:
    """What a source knows about one tensor without reading it."""

    name: str  # readable name (TF1-style variable name where known)
    dtype: np.dtype | str  # a numpy dtype, or "string" for DT_STRING tensors
    shape: tuple[int, ...]
    kind: str = VARIABLE
    key: str = ""  # the name as stored (e.g. a TF2 object-based key); "" = same as name
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def size(self) -> int:
        """Number of elements."""
        n = 1
        for d in self.shape:
            n *= int(d)
        return n

    @property
    def nbytes(self) -> int:
        """Bytes of the array in memory (strings: unknown until read, reported as 0)."""
        if isinstance(self.dtype, str):
            return 0
        return self.size * np.dtype(self.dtype).itemsize


@dataclass
class Weights:
    """A named array: the unit every format reads and writes (TensorRT's `Weights`)."""

    name: str
    array: np.ndarray

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def count(self) -> int:
        """Element count, as TensorRT's `Weights.count`."""
        return int(self.array.size)

    def __repr__(self) -> str:
        return f"Weights({self.name!r}, dtype={self.array.dtype}, shape={self.shape})"


class WeightSource(ABC):
    """A readable collection of tensors. Open cheaply; read tensors only when asked."""

    format: str = ""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @abstractmethod
    def infos(self) -> list[TensorInfo]:
        """Every tensor in the source, sorted by name. Reads metadata only."""

    @abstractmethod
    def _read(self, info: TensorInfo) -> np.ndarray:
        """Read one tensor's data."""

    # -- derived helpers -------------------------------------------------------------
    def names(self, include_optimizer: bool = True) -> list[str]:
        return [i.name for i in self.infos() if include_optimizer or i.kind == VARIABLE]

    def info(self, name: str) -> TensorInfo:
        """Look a tensor up by readable name or by stored key."""
        index = self._index()
        if name in index:
            return index[name]
        raise MissingTensorError(missing_message([name], list(index), self.path))

    def read(self, name: str) -> np.ndarray:
        return self._read(self.info(name))

    def weights(self, name: str) -> Weights:
        info = self.info(name)
        return Weights(info.name, self._read(info))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._index()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def _index(self) -> dict[str, TensorInfo]:
        cached = getattr(self, "_tf2rt_index", None)
        if cached is None:
            cached = {}
            for i in self.infos():
                cached[i.name] = i
                if i.key and i.key != i.name:
                    cached.setdefault(i.key, i)
            self._tf2rt_index = cached
        return cached

    def close(self) -> None:
        """Release open files or memory maps."""

    def __enter__(self) -> "WeightSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def missing_message(missing: list[str], available: list[str], where: object) -> str:
    """An error message for names not found, with the closest available names."""
    lines = [f"{len(missing)} tensor name(s) not found in {where}:"]
    for name in missing:
        close = difflib.get_close_matches(name, available, n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        lines.append(f"  {name!r}{hint}")
    lines.append("Run `tf2rt inspect PATH` to list the tensors it holds.")
    return "\n".join(lines)

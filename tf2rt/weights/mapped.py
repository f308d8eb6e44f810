"""A `WeightSource` over one file mapped read-only into memory (.wts, .safetensors)."""

from __future__ import annotations

import mmap
import os
from pathlib import Path

from ..errors import FormatError
from ..limits import regular_file
from .base import WeightSource


class MappedSource(WeightSource):
    """Opens `path` and maps it; subclasses parse `self._buf` (bytes-like) lazily or eagerly."""

    def __init__(self, path: str | Path):
        super().__init__(path)
        regular_file(self.path, "weight file")
        try:
            self._file = open(self.path, "rb")
        except OSError as exc:
            raise FormatError(f"cannot open {self.path}: {exc.strerror}") from None
        size = os.fstat(self._file.fileno()).st_size
        # mmap refuses empty files; an empty buffer lets the parser report a clear error
        self._buf: bytes | mmap.mmap = (
            mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        )

    def close(self) -> None:
        if isinstance(self._buf, mmap.mmap):
            self._buf.close()
        self._buf = b""
        self._file.close()

"""Resource caps for everything tf2rt reads from files it does not trust (all of them).

A model file of N bytes may cost time and memory proportional to N plus the tensors it
really holds. Anything a file merely *declares* (a shape, an element count, a decompressed
size, a number of inlined nodes) is checked against these caps before memory is allocated.

One place to raise them: the environment variable `TF2RT_MAX_BYTES` (bytes, suffixes K/M/G
accepted, e.g. `TF2RT_MAX_BYTES=16G`) sets the cap on any single allocation a file can ask
for; the other caps derive from it or are fixed because no real model comes near them.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import FormatError, Tf2rtError

DEFAULT_MAX_BYTES = 4 << 30  # 4 GiB


class ResourceLimitError(FormatError):
    """A file asks for more memory, time or nesting than tf2rt allows; the message says how to raise the cap."""


def _parse_size(text: str) -> int:
    t = text.strip().upper().rstrip("B")
    mult = 1
    if t and t[-1] in "KMGT":
        mult = 1 << (10 * ("KMGT".index(t[-1]) + 1))
        t = t[:-1]
    try:
        value = int(float(t) * mult)
    except ValueError:
        raise Tf2rtError(f"TF2RT_MAX_BYTES={text!r} is not a size; use bytes or a suffix K/M/G, e.g. 8G") from None
    if value <= 0:
        raise Tf2rtError(f"TF2RT_MAX_BYTES={text!r} must be positive")
    return value


def max_bytes() -> int:
    """The cap on one tensor / decompressed member / buffer a file may make tf2rt allocate."""
    env = os.environ.get("TF2RT_MAX_BYTES")
    return _parse_size(env) if env else DEFAULT_MAX_BYTES


# Fixed caps (far above any real model, far below what exhausts a machine).
MAX_FOLD_BYTES = 64 << 20        # a constant computed at import time (larger ones stay in the engine)
MAX_INLINED_NODES = 2_000_000    # nodes of a graph after function inlining
MAX_TEXT_BYTES = 1 << 20         # small text files: checkpoint state files, label lists' lines, ...
MAX_JSON_DEPTH = 64              # nesting of JSON a file may carry (metadata, Keras configs)
MAX_RATIO = 1100                 # deflate expands at most ~1032:1; a member claiming more is a bomb
MAX_HDF5_OBJECTS = 200_000       # distinct groups/datasets visited in one HDF5 file
MAX_HDF5_DEPTH = 64              # group nesting in an HDF5 file
MAX_LINK_HOPS = 16               # soft links followed to resolve one HDF5 path, state files followed
_NUMPY_MAX = (1 << 63) - 1       # numpy's limit on elements * itemsize, zero dims or not


def check_bytes(nbytes: int, what: str, cap: int | None = None) -> None:
    """Raise ResourceLimitError if `nbytes` (a size a file declares) exceeds the cap."""
    limit = max_bytes() if cap is None else cap
    if nbytes < 0:
        raise ResourceLimitError(f"{what}: negative size {nbytes}; the file is damaged")
    if nbytes > limit:
        hint = ("set TF2RT_MAX_BYTES to a larger size if the file really holds that much"
                if cap is None else "this cap is fixed; the file is hostile or damaged")
        raise ResourceLimitError(f"{what}: needs {nbytes} bytes, more than the limit of {limit} bytes ({hint})")


def check_elements(shape: tuple[int, ...] | list[int], itemsize: int, what: str, cap: int | None = None) -> int:
    """Number of elements of `shape`, after checking it is non-negative and within the byte cap."""
    n, nonzero = 1, max(int(itemsize), 1)
    for d in shape:
        d = int(d)
        if d < 0:
            raise ResourceLimitError(f"{what}: negative dimension in shape {tuple(shape)}; the file is damaged")
        n *= d
        nonzero *= d or 1
    # numpy refuses such shapes even with a zero dimension ([2**32, 2**32, 0])
    if nonzero > _NUMPY_MAX:
        raise ResourceLimitError(f"{what}: shape {tuple(shape)} overflows any array size; the file is damaged")
    check_bytes(n * max(int(itemsize), 1), what, cap)
    return n


class Budget:
    """A running total of bytes a reader builds from one file, refused once past `limit`."""

    def __init__(self, limit: int, what: str):
        self.limit, self.what, self.used = limit, what, 0

    def take(self, nbytes: int) -> None:
        self.used += int(nbytes)
        if self.used > self.limit:
            raise ResourceLimitError(
                f"{self.what}: would build more than {self.limit} bytes, more than the file can justify "
                "(repeated or overlapping data); it is hostile or damaged (raise TF2RT_MAX_BYTES only "
                "if it really holds that much)")


def regular_file(path: str | Path, what: str = "input") -> Path:
    """`path` if it names a regular file (symlinks followed); a clear error for FIFOs, devices,
    directories and missing files - a FIFO would block a read forever, a device never end."""
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise FormatError(f"{what} {str(p)!r} does not exist") from None
    except OSError as exc:
        raise FormatError(f"cannot read {what} {str(p)!r}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file (a FIFO, socket or device)"
        raise FormatError(f"{what} {str(p)!r} is {kind}; pass a regular file")
    return p


def read_capped(path: str | Path, cap: int, what: str = "file") -> bytes:
    """The bytes of a regular file, refusing files larger than `cap` (read at most cap + 1 bytes)."""
    p = regular_file(path, what)
    try:
        with open(p, "rb") as f:
            # read() preallocates what it is asked for: ask for what the file holds, not the cap
            data = f.read(min(os.fstat(f.fileno()).st_size, cap) + 1)
    except OSError as exc:
        raise FormatError(f"cannot read {what} {str(p)!r}: {exc.strerror or exc}") from None
    if len(data) > cap:
        raise ResourceLimitError(f"{what} {str(p)!r} is larger than {cap} bytes; it is not a file of this kind")
    return data

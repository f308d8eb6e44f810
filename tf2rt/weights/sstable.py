"""Reader of the immutable sorted string table (LevelDB table format) TensorFlow uses for
checkpoint `.index` files and V1 checkpoints.

Layout: data blocks, a metaindex block, an index block (one entry per data block) and a
48-byte footer with the two block handles and a magic number. Each block is followed by a
one-byte compression type and a masked CRC32C. Reads are bounded by the file size and
every length is checked before anything is allocated.
"""

from __future__ import annotations

import os
import stat
from bisect import bisect_left
from pathlib import Path
from typing import BinaryIO, Iterator

from ..errors import ChecksumError, FormatError
from ..limits import regular_file
from ..proto import read_varint
from . import crc32c, snappy

MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
TRAILER_SIZE = 5
NO_COMPRESSION, SNAPPY = 0, 1


def decode_handle(buf: bytes, what: str) -> tuple[int, int]:
    """Decode a BlockHandle (varint64 offset, varint64 size)."""
    off, pos = read_varint(buf, 0, what, len(buf))
    size, _ = read_varint(buf, pos, what, len(buf))
    return off, size


_MAX_KEY_EXPANSION = 64


def parse_block(block: bytes, what: str) -> list[tuple[bytes, bytes]]:
    """Entries (key, value) of one block, in stored order."""
    n = len(block)
    if n < 4:
        raise FormatError(f"{what}: block of {n} bytes is too short")
    num_restarts = int.from_bytes(block[n - 4 :], "little")
    if num_restarts > (n - 4) // 4:
        raise FormatError(f"{what}: block claims {num_restarts} restart points, too many for {n} bytes")
    limit = n - 4 * (num_restarts + 1)
    entries: list[tuple[bytes, bytes]] = []
    pos = 0
    key = b""
    # Prefix-shared keys are rebuilt whole: a block whose every key shares all of the last
    # one and adds a byte would rebuild quadratically many bytes. Real keys expand a block
    # a few times at most.
    budget = _MAX_KEY_EXPANSION * n + (1 << 20)
    while pos < limit:
        # The three header varints are usually one byte each.
        shared = block[pos]
        if shared < 128:
            pos += 1
        else:
            shared, pos = read_varint(block, pos, what, limit, 5)
        non_shared, pos = read_varint(block, pos, what, limit, 5)
        value_len, pos = read_varint(block, pos, what, limit, 5)
        if shared > len(key):
            raise FormatError(f"{what}: entry shares {shared} bytes of a {len(key)}-byte key")
        if non_shared + value_len > limit - pos:
            raise FormatError(f"{what}: entry runs past the end of its block")
        key = key[:shared] + block[pos : pos + non_shared]
        budget -= len(key)
        if budget < 0:
            raise FormatError(f"{what}: its prefix-shared keys expand to more than {_MAX_KEY_EXPANSION} times "
                              "the block; the table is hostile or corrupted")
        pos += non_shared
        entries.append((key, block[pos : pos + value_len]))
        pos += value_len
    return entries


class Table:
    """An open SSTable file: `items()` scans it, `get(key)` looks one key up."""

    def __init__(self, path: str | Path, verify: bool = True, label: str = "table"):
        self.path = Path(path)
        self.verify = verify
        self.label = label
        self.snappy_blocks = 0  # how many Snappy-compressed blocks were read
        regular_file(self.path, label)  # a FIFO would block the read forever
        try:
            self._file: BinaryIO = open(self.path, "rb")
        except OSError as exc:
            raise FormatError(f"cannot open {label} {self.path}: {exc.strerror or exc}") from None
        try:
            self.size = os.fstat(self._file.fileno()).st_size
            self._index = self._read_index()
            self._seps = [k for k, _ in self._index]
        except BaseException:
            self._file.close()
            raise

    @property
    def what(self) -> str:
        return f"{self.label} {self.path}"

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "Table":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- structure -----------------------------------------------------------------------
    def _pread(self, offset: int, size: int) -> bytes:
        self._file.seek(offset)
        data = self._file.read(size)
        if len(data) != size:
            raise FormatError(f"{self.what}: truncated (wanted {size} bytes at {offset})")
        return data

    def _read_index(self) -> list[tuple[bytes, tuple[int, int]]]:
        if self.size < FOOTER_SIZE:
            raise FormatError(
                f"{self.what} is not a TensorFlow table: {self.size} bytes is shorter than the "
                f"{FOOTER_SIZE}-byte footer (truncated or not a checkpoint file)"
            )
        footer = self._pread(self.size - FOOTER_SIZE, FOOTER_SIZE)
        magic = int.from_bytes(footer[40:44], "little") | int.from_bytes(footer[44:48], "little") << 32
        if magic != MAGIC:
            raise FormatError(
                f"{self.what} is not a TensorFlow table (bad magic number {magic:#018x}); "
                "the file is truncated, corrupted or not a checkpoint"
            )
        _meta_off, pos = read_varint(footer, 0, f"{self.what} footer", 40)
        _meta_size, pos = read_varint(footer, pos, f"{self.what} footer", 40)
        idx_off, pos = read_varint(footer, pos, f"{self.what} footer", 40)
        idx_size, pos = read_varint(footer, pos, f"{self.what} footer", 40)
        block = self.read_block(idx_off, idx_size, "index block")
        index = []
        prev = None
        for key, value in parse_block(block, f"{self.what} index block"):
            if prev is not None and key <= prev:
                raise FormatError(f"{self.what}: index block keys out of order")
            prev = key
            index.append((key, decode_handle(value, f"{self.what} index block")))
        return index

    def read_block(self, offset: int, size: int, name: str = "block") -> bytes:
        """The (decompressed) contents of the block at `offset`, its CRC checked."""
        if offset < 0 or size < 0 or offset + size + TRAILER_SIZE > self.size - FOOTER_SIZE:
            raise FormatError(
                f"{self.what}: {name} at offset {offset} size {size} lies outside the "
                f"{self.size}-byte file (truncated or corrupted)"
            )
        raw = self._pread(offset, size + TRAILER_SIZE)
        ctype = raw[size]
        if self.verify:
            stored = crc32c.unmask(int.from_bytes(raw[size + 1 :], "little"))
            if crc32c.value(raw[: size + 1]) != stored:
                raise ChecksumError(f"{self.what}: CRC mismatch in {name} at offset {offset} (file corrupted)")
        if ctype == NO_COMPRESSION:
            return raw[:size]
        if ctype == SNAPPY:
            self.snappy_blocks += 1
            return snappy.decompress(raw[:size], f"{self.what} {name}")
        raise FormatError(f"{self.what}: {name} has unknown compression type {ctype}")

    # -- access --------------------------------------------------------------------------
    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) in key order; keys are checked to be strictly increasing."""
        prev: bytes | None = None
        for i, (_sep, (off, size)) in enumerate(self._index):
            for key, value in parse_block(self.read_block(off, size, f"data block {i}"), f"{self.what} data block {i}"):
                if prev is not None and key <= prev:
                    raise FormatError(f"{self.what}: keys out of order in data block {i} (corrupted)")
                prev = key
                yield key, value

    def get(self, key: bytes) -> bytes | None:
        """The value stored under `key`, or None."""
        i = bisect_left(self._seps, key)  # first block whose separator is >= key
        if i == len(self._seps):
            return None
        off, size = self._index[i][1]
        for k, value in parse_block(self.read_block(off, size, f"data block {i}"), f"{self.what} data block {i}"):
            if k == key:
                return value
            if k > key:
                break
        return None


def is_table(path: str | Path) -> bool:
    """True when `path` is a readable file ending with the table magic number."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() < FOOTER_SIZE:
                return False
            f.seek(-8, os.SEEK_END)
            tail = f.read(8)
    except OSError:
        return False
    return int.from_bytes(tail[:4], "little") | int.from_bytes(tail[4:], "little") << 32 == MAGIC

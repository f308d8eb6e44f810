"""CRC32C (Castagnoli) as TensorFlow's checkpoints and tables use it, plus its masking.

`google_crc32c` (the `fast` extra, hardware accelerated) is used when its C extension is
importable. Otherwise a numpy implementation runs: the buffer is split into many equal
lanes whose CRCs advance together one 32-bit word per step (two 64K-entry tables), and the
lane CRCs are then merged pairwise with GF(2) "append zeros" operators. CRC is linear over
GF(2), so a lane's CRC started from zero, shifted past the bytes that follow it, and XORed
with the rest gives the CRC of the whole buffer.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

_POLY = 0x82F63B78  # reflected Castagnoli polynomial
_MASK_DELTA = 0xA282EAD8
_U32 = 0xFFFFFFFF

try:  # pragma: no cover - depends on the environment
    import google_crc32c as _g

    FAST = _g.implementation == "c"
except ImportError:  # pragma: no cover
    _g = None
    FAST = False

Buffer = bytes | bytearray | memoryview | np.ndarray


def mask(crc: int) -> int:
    """TensorFlow's masked form of a CRC (stored in files so CRCs of CRCs stay strong)."""
    crc &= _U32
    return ((((crc >> 15) | (crc << 17)) & _U32) + _MASK_DELTA) & _U32


def unmask(masked: int) -> int:
    """Inverse of `mask`."""
    rot = (masked - _MASK_DELTA) & _U32
    return ((rot >> 17) | (rot << 15)) & _U32


def value(data: Buffer, crc: int = 0, *, use_fast: bool | None = None) -> int:
    """CRC32C of `data`, continuing from `crc` (the CRC of the bytes before it, or 0)."""
    u8 = _as_u8(data)
    if use_fast is None:
        use_fast = FAST
    if use_fast:
        return _g.extend(crc, u8) if crc else _g.value(u8)
    return numpy_value(u8, crc)


def _as_u8(data: Buffer) -> np.ndarray:
    if isinstance(data, np.ndarray):
        if not data.flags.c_contiguous:
            data = np.ascontiguousarray(data)
        return data.reshape(-1).view(np.uint8)
    return np.frombuffer(data, dtype=np.uint8)


# ---------------------------------------------------------------------------------------
# numpy implementation

_SMALL = 256  # below this many bytes a plain table loop is quickest
_CHUNK_LANES = 8192
_MAX_LANE = 512  # bytes per lane; a chunk is at most 8192 * 512 = 4 MiB


@lru_cache(maxsize=1)
def _byte_table() -> np.ndarray:
    t = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        t = np.where(t & 1, (t >> 1) ^ np.uint32(_POLY), t >> 1).astype(np.uint32)
    return t


@lru_cache(maxsize=1)
def _word_tables() -> tuple[np.ndarray, np.ndarray]:
    """Tables advancing a CRC state by one little-endian 32-bit word, 16 bits per lookup."""
    t0 = _byte_table()
    tabs = [t0]
    for _ in range(3):
        prev = tabs[-1]
        tabs.append((prev >> 8) ^ t0[prev & 0xFF])
    t0, t1, t2, t3 = tabs
    # word byte 0 passes through 4 table steps (t3), byte 3 through one (t0)
    lo = (t3[None, :] ^ t2[:, None]).reshape(-1)  # index = byte1 << 8 | byte0
    hi = (t1[None, :] ^ t0[:, None]).reshape(-1)  # index = byte3 << 8 | byte2
    return lo, hi


def _simple(u8: np.ndarray, state: int) -> int:
    table = _byte_table().tolist()
    for b in u8.tobytes():
        state = table[(state ^ b) & 0xFF] ^ (state >> 8)
    return state


# A GF(2)-linear map of 32-bit states is stored as its 32 column images (image of bit i).
def _apply(images: tuple[int, ...], x: int) -> int:
    out = 0
    i = 0
    while x:
        if x & 1:
            out ^= images[i]
        x >>= 1
        i += 1
    return out


@lru_cache(maxsize=64)
def _zeros_op(log2_nbytes: int) -> tuple[int, ...]:
    """The map that advances a CRC state over 2**log2_nbytes zero bytes."""
    if log2_nbytes == 0:
        table = _byte_table()
        return tuple(int(table[(1 << i) & 0xFF]) ^ ((1 << i) >> 8) for i in range(32))
    half = _zeros_op(log2_nbytes - 1)
    return tuple(_apply(half, img) for img in half)


def _shift(state: int, nbytes: int) -> int:
    """Advance `state` over `nbytes` zero bytes."""
    k = 0
    while nbytes and state:
        if nbytes & 1:
            state = _apply(_zeros_op(k), state)
        nbytes >>= 1
        k += 1
    return state


@lru_cache(maxsize=64)
def _op_tables(log2_nbytes: int) -> np.ndarray:
    """Four 256-entry tables applying `_zeros_op(log2_nbytes)` to arrays, a byte at a time."""
    images = _zeros_op(log2_nbytes)
    tables = np.zeros((4, 256), dtype=np.uint32)
    for k in range(4):
        for bit in range(8):
            n = 1 << bit
            tables[k, n : 2 * n] = tables[k, :n] ^ np.uint32(images[8 * k + bit])
    return tables


def _lanes_state(u8: np.ndarray) -> int:
    """State after running `u8` from state 0, lanes in parallel (`len(u8)` > _SMALL)."""
    n = len(u8)
    lane = 64
    while lane < _MAX_LANE and lane * _CHUNK_LANES < n:
        lane *= 2
    nlanes = -(-n // lane)
    # Leading zeros leave a zero state unchanged, so pad in front to whole lanes.
    if n == nlanes * lane:
        padded = u8
    else:
        padded = np.zeros(nlanes * lane, dtype=np.uint8)
        padded[nlanes * lane - n :] = u8
    words = np.ascontiguousarray(padded.view("<u4").reshape(nlanes, lane // 4).T).astype(np.uint32, copy=False)
    lo, hi = _word_tables()
    state = np.zeros(nlanes, dtype=np.uint32)
    low = np.empty(nlanes, dtype=np.uint32)
    a = np.empty(nlanes, dtype=np.uint32)
    b = np.empty(nlanes, dtype=np.uint32)
    for row in words:
        np.bitwise_xor(state, row, out=state)
        np.bitwise_and(state, 0xFFFF, out=low)
        np.right_shift(state, 16, out=state)
        np.take(lo, low, out=a, mode="clip")  # "clip": no bounds-check buffering
        np.take(hi, state, out=b, mode="clip")
        np.bitwise_xor(a, b, out=state)
    log2 = lane.bit_length() - 1
    while len(state) > 1:
        if len(state) % 2:  # a zero lane in front stands for leading zeros
            state = np.concatenate([np.zeros(1, dtype=np.uint32), state])
        first, second = state[0::2], state[1::2]
        t = _op_tables(log2)
        shifted = (
            t[0][first & 0xFF]
            ^ t[1][(first >> 8) & 0xFF]
            ^ t[2][(first >> 16) & 0xFF]
            ^ t[3][first >> 24]
        )
        state = shifted ^ second
        log2 += 1
    return int(state[0])


def numpy_value(data: Buffer, crc: int = 0) -> int:
    """CRC32C computed with numpy only (the fallback when google_crc32c is missing)."""
    u8 = _as_u8(data)
    state = (crc ^ _U32) & _U32
    n = len(u8)
    if n <= _SMALL:
        return _simple(u8, state) ^ _U32
    chunk = _CHUNK_LANES * _MAX_LANE
    for start in range(0, n, chunk):
        piece = u8[start : start + chunk]
        state = _shift(state, len(piece)) ^ _lanes_state(piece)
    return state ^ _U32

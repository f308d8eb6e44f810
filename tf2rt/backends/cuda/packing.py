"""Weight packing for the persistent recurrent kernel (host side, numpy only).

The kernel gives each CTA `upc` consecutive hidden units of one layer-direction and keeps,
in shared memory, the rows of every gate for those units. Packing lays those rows out so
that each CTA's block is one contiguous, 16-byte aligned run it can copy with wide loads:

    packed[cta, gate * upc + u, :K] = M[gate * H + cta * upc + u, :]

rows past the last unit and columns past K (up to `kp`, a multiple of 8) are zeros.
Gate order is the ONNX one (LSTM i,o,f,c; GRU z,r,h), the order the engine file stores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import ShapeError
from ...layouts import ONNX_GRU, ONNX_LSTM, ONNX_RNN, GateOrder

#: The order the kernel indexes gates in: the ONNX one, as the engine file stores them.
KERNEL_ORDER: dict[str, GateOrder] = {"lstm": ONNX_LSTM, "gru": ONNX_GRU, "rnn": ONNX_RNN}
GATES_PER_CELL = {cell: len(order.gates) for cell, order in KERNEL_ORDER.items()}


def round_up(n: int, multiple: int) -> int:
    """Smallest multiple of `multiple` that is >= n."""
    return -(-n // multiple) * multiple


def cta_count(hidden: int, upc: int) -> int:
    """CTAs needed to cover `hidden` units with `upc` units each."""
    return -(-hidden // upc)


def pack_rows(matrix: np.ndarray, gates: int, hidden: int, upc: int, dtype: str, kp: int | None = None) -> np.ndarray:
    """Pack a gate-major [gates*hidden, K] matrix into [ctas, gates*upc, kp] blocks
    (kp defaults to K rounded up to a multiple of 8)."""
    if matrix.ndim != 2 or matrix.shape[0] != gates * hidden:
        raise ShapeError(
            f"packing: expected a [{gates}*{hidden}, K] weight matrix, got shape {tuple(matrix.shape)}"
        )
    k = matrix.shape[1]
    kp = round_up(k, 8) if kp is None else kp
    if kp < k or kp % 8:
        raise ShapeError(f"packing: row length {kp} must be a multiple of 8 and >= {k}")
    ctas = cta_count(hidden, upc)
    # [gates, hidden, K] -> pad units to ctas*upc and K to kp -> [gates, ctas, upc, kp]
    m = matrix.reshape(gates, hidden, k)
    padded = np.zeros((gates, ctas * upc, kp), dtype=np.float32)
    padded[:, :hidden, :k] = m
    blocks = padded.reshape(gates, ctas, upc, kp).transpose(1, 0, 2, 3)
    return np.ascontiguousarray(blocks.reshape(ctas, gates * upc, kp)).astype(_np_dtype(dtype))


def unpack_rows(packed: np.ndarray, gates: int, hidden: int, k: int) -> np.ndarray:
    """Inverse of pack_rows (for tests and debugging): back to [gates*hidden, K] fp32."""
    ctas, rows, kp = packed.shape
    upc = rows // gates
    blocks = packed.astype(np.float32).reshape(ctas, gates, upc, kp).transpose(1, 0, 2, 3)
    return blocks.reshape(gates, ctas * upc, kp)[:, :hidden, :k].reshape(gates * hidden, k)


def _np_dtype(dtype: str) -> np.dtype:
    if dtype == "float32":
        return np.dtype(np.float32)
    if dtype == "float16":
        return np.dtype(np.float16)
    if dtype == "bfloat16":
        # numpy has no bfloat16: keep the top 16 bits (round to nearest even) as uint16.
        raise ValueError("pack bfloat16 with pack_rows_bf16")
    raise ShapeError(f"packing: unsupported weight dtype {dtype!r} (float32, float16, bfloat16)")


def to_bf16_bits(a: np.ndarray) -> np.ndarray:
    """fp32 -> bfloat16 bit patterns (uint16), round to nearest even."""
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    rounding = ((bits >> 16) & 1) + 0x7FFF
    return ((bits + rounding) >> 16).astype(np.uint16)


def split_bf16_bits(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """fp32 values as two bfloat16 bit patterns, hi (rounded) + lo (the rest, rounded): the
    BF16X3 kernel's weight planes. hi + lo is within about 2^-17 of each value."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    hi = to_bf16_bits(a)
    rest = a - (hi.astype(np.uint32) << 16).view(np.float32)
    return hi, to_bf16_bits(rest)


@dataclass(frozen=True)
class DirectionWeights:
    """One layer-direction of an ONNX recurrent node, fp32, ONNX gate order.

    W [G*H, in], R [G*H, H], Wb/Rb [G*H], P [3H] or None (LSTM peepholes i,o,f).
    """

    cell: str
    W: np.ndarray
    R: np.ndarray
    Wb: np.ndarray
    Rb: np.ndarray
    P: np.ndarray | None = None

    @property
    def hidden(self) -> int:
        return self.R.shape[1]

    @property
    def input_size(self) -> int:
        return self.W.shape[1]


def round_tf32_pair(a: np.ndarray) -> np.ndarray:
    """fp32 values moved to the nearest "TF32 pair" the TF32X3 kernel splits exactly: hi (the
    value truncated to TF32, a 10-bit mantissa) plus lo (the remainder rounded to TF32, to
    nearest, ties away from zero). Moves each value by at most 2^-22 of its magnitude."""
    x = np.ascontiguousarray(a, np.float32)
    hi = (x.view(np.uint32) & np.uint32(0xFFFFE000)).view(np.float32)
    lo = (x - hi).view(np.uint32)  # exact: x and hi share sign and exponent
    lo_r = ((lo + np.uint32(0x1000)) & np.uint32(0xFFFFE000)).view(np.float32)
    return hi + lo_r  # at most 22 significant bits: exact in fp32


def split_onnx_weights(
    cell: str, W: np.ndarray, R: np.ndarray, B: np.ndarray | None, P: np.ndarray | None
) -> list[DirectionWeights]:
    """Split the ONNX W [D,G*H,in], R [D,G*H,H], B [D,2*G*H], P [D,3H] inputs per direction."""
    gates = GATES_PER_CELL[cell]
    if W.ndim != 3 or R.ndim != 3 or W.shape[0] != R.shape[0]:
        raise ShapeError(f"{cell.upper()}: W/R must be [directions, gates*hidden, ...], got {W.shape} and {R.shape}")
    dirs, gh, hidden = R.shape
    if gh != gates * hidden or W.shape[1] != gh:
        raise ShapeError(f"{cell.upper()}: R is {R.shape}, expected [{dirs}, {gates}*{hidden}, {hidden}]")
    out = []
    for d in range(dirs):
        if B is None:
            wb = np.zeros(gh, np.float32)
            rb = np.zeros(gh, np.float32)
        else:
            if B.shape != (dirs, 2 * gh):
                raise ShapeError(f"{cell.upper()}: B is {B.shape}, expected ({dirs}, {2 * gh})")
            wb, rb = B[d, :gh], B[d, gh:]
        p = None
        if P is not None:
            if cell != "lstm" or P.shape != (dirs, 3 * hidden):
                raise ShapeError(f"{cell.upper()}: peepholes P is {P.shape}, expected ({dirs}, {3 * hidden})")
            p = np.ascontiguousarray(P[d], np.float32)
        out.append(
            DirectionWeights(
                cell,
                np.ascontiguousarray(W[d], np.float32),
                np.ascontiguousarray(R[d], np.float32),
                np.ascontiguousarray(wb, np.float32),
                np.ascontiguousarray(rb, np.float32),
                p,
            )
        )
    return out


def to_mma_fragments(packed: np.ndarray, kstep: int = 16) -> np.ndarray:
    """Re-order packed [ctas, rows, kp] blocks into tensor-core A-fragment order.

    kstep 16: m16n8k16 (fp16/bf16); kstep 8: m16n8k8 (TF32, fp32 weights). Rows are padded
    to a multiple of 16 (kp must be a multiple of kstep already). Per CTA the result is
    [row tile, k step, lane, 16 bytes] so each lane loads its four A registers with one
    16-byte read: lane (g, t) = (lane // 4, lane % 4) holds rows g and g+8 of the tile and
    columns c and c + kstep/2 with c = t * kstep/8 (two consecutive halves each for
    kstep 16), in the order of the PTX fragment layout (row g, row g+8, then the same for
    the second column block).
    """
    ctas, rows, kp = packed.shape
    if kstep not in (8, 16):
        raise ValueError(f"kstep must be 8 or 16, got {kstep}")
    if kp % kstep:
        raise ShapeError(f"packing: tensor-core rows need a length that is a multiple of {kstep}, got {kp}")
    mt, ks, e = -(-rows // 16), kp // kstep, kstep // 8
    tiles = np.zeros((ctas, mt * 16, kp), dtype=packed.dtype)
    tiles[:, :rows] = packed
    # [ctas, mt, rh, g, ks, ch, t, e] -> [ctas, mt, ks, g, t, ch, rh, e]
    t = tiles.reshape(ctas, mt, 2, 8, ks, 2, 4, e).transpose(0, 1, 4, 3, 6, 5, 2, 7)
    return np.ascontiguousarray(t).reshape(ctas, mt * 16 * kp)


def from_mma_fragments(frags: np.ndarray, rows: int, kp: int, kstep: int = 16) -> np.ndarray:
    """Inverse of to_mma_fragments (tests): back to [ctas, rows, kp]."""
    ctas = frags.shape[0]
    mt, ks, e = -(-rows // 16), kp // kstep, kstep // 8
    t = frags.reshape(ctas, mt, ks, 8, 4, 2, 2, e).transpose(0, 1, 6, 3, 2, 5, 4, 7)
    return np.ascontiguousarray(t).reshape(ctas, mt * 16, kp)[:, :rows]

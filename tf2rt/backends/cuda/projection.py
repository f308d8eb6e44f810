"""Input projections of a recurrent layer for every step at once: one GEMM per layer.

fp32 stacks with large projections run it on tensor cores by splitting both operands
into a high and a low part and multiplying hi*hi + hi*lo + lo*hi (lo*lo is dropped), all
in ONE GEMM over a tripled K: [x_hi | x_hi | x_lo] @ [W_hi; W_lo; W_hi], fp32 accumulate.
"bf16x3" splits into bfloat16 parts (the default), "tf32x3" into TF32 parts through
cuBLAS's TF32 mode, "plain" is an fp32 GEMM on CUDA cores (cuBLAS SGEMM).

Measured on an H200 (2-layer stacks, T=100, benchmarks/results/cuda_xproj_h200.md): LSTM
H=1024 batch 64 plain 6474 us, tf32x3 5232 us, bf16x3 4865 us; batch 8 1262 / 1096 / 1059
us. Largest output difference from cuDNN over the 12 fp32 shapes: plain 8e-7, bf16x3 8e-6,
tf32x3 1.4e-5 (fp32 tolerance 1e-4).
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Iterator

import numpy as np

from .options import XPROJ_ENV, CudaOptions, resolve

#: The fp32 projection's forms (options.xproj, XPROJ_ENV, forces one).
XPROJ_MODES = ("plain", "tf32x3", "bf16x3")
#: An fp16/bf16 stack's first-layer projection as one TF32 GEMM straight from fp32 x, with fp32
#: output (XPROJ_ENV=tf32; persistent stacks, which read it with PTYPE=0): no cast of x ahead
#: of the GEMM. TF32 keeps x's and W's 10-bit mantissas, as fp16 does, over fp32's range, and
#: the projections are not rounded to fp16.
HALF_TF32 = "tf32"
#: fp32 projections of at least XPROJ_MIN_ROWS rows use the split GEMM where they have at
#: least XPROJ_MIN_FLOP (2 M K N) or a weight of at least XPROJ_MIN_KN values; below that
#: the extra elementwise passes cost more than they save. H200, 2-layer stacks, plain ->
#: bf16x3 (benchmarks/results/cuda_xproj_all_h200.md): LSTM H=1024 batch 64 T=1 107 -> 96 us,
#: batch 1 T=100 643 -> 587 us, H=512 batch 8 T=100 452 -> 424 us; LSTM H=256 batch 8 T=100
#: (0.4 GFLOP, a 256 x 1024 weight) 305 -> 307 us; a single row (batch 1, T=1) H=1024 36 ->
#: 60 us (cuBLAS's bf16 GEMM with fp32 output is slow for one row).
XPROJ_MIN_FLOP = 1e9
XPROJ_MIN_KN = 1 << 19
XPROJ_MIN_ROWS = 8
#: The split form for large fp32 projections unless XPROJ_ENV says otherwise.
XPROJ_DEFAULT = "bf16x3"


def projection_mode(dtype: str, rows: int, k: int, n: int, bf16_ok: bool = True,
                    options: CudaOptions | None = None, half_tf32: bool = False) -> str:
    """How the projection of `rows` x `k` inputs onto `n` outputs runs for `dtype`;
    `bf16_ok`: whether the weights are small enough for bf16 parts (plan.BF16X3_MAX_ROW_NORM;
    else three TF32 passes); `half_tf32`: whether the caller reads fp32 projections of an
    fp16/bf16 stack (HALF_TF32, where XPROJ_ENV asks for it)."""
    env = resolve(options).xproj
    if env and env not in XPROJ_MODES + (HALF_TF32,):
        raise ValueError(f"{XPROJ_ENV}={env!r}: expected one of {', '.join(XPROJ_MODES)} (fp32 stacks) "
                         f"or {HALF_TF32} (fp16/bf16 persistent stacks)")
    if dtype != "float32":
        return HALF_TF32 if env == HALF_TF32 and half_tf32 else "plain"
    if env and env != HALF_TF32:  # HALF_TF32 is another type's form: fp32 stacks keep their own
        return env
    big = 2.0 * rows * k * n >= XPROJ_MIN_FLOP or k * n >= XPROJ_MIN_KN
    if rows < XPROJ_MIN_ROWS or not big:
        return "plain"
    return XPROJ_DEFAULT if bf16_ok or XPROJ_DEFAULT != "bf16x3" else "tf32x3"


def split_tf32(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """fp32 array as hi (mantissa cut to TF32's 10 bits) + lo (the exact rest)."""
    m = np.ascontiguousarray(m, dtype=np.float32)
    hi = (m.view(np.uint32) & np.uint32(0xFFFFE000)).view(np.float32)
    return hi, (m - hi).astype(np.float32)


def _split_bf16(t: Any) -> tuple[Any, Any]:
    """fp32 tensor as bf16 hi (rounded) + bf16 lo (the rest, rounded)."""
    import torch

    hi = t.to(torch.bfloat16)
    return hi, (t - hi.float()).to(torch.bfloat16)


@contextlib.contextmanager
def _tf32_matmul() -> Iterator[None]:
    """cuBLAS fp32 GEMMs on TF32 tensor cores for the duration (PyTorch's global switch,
    restored afterwards; read when a GEMM is issued, so graph capture keeps it)."""
    import torch

    m = torch.backends.cuda.matmul
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prev = m.allow_tf32
        m.allow_tf32 = True
    try:
        yield
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m.allow_tf32 = prev


class Projection:
    """out[M, N] = inp[M, K] @ W.T + b for one layer (all directions), M <= max_rows.

    W [N, K] and b [N] are fp32 host arrays; `io` the torch dtype of inp/out."""

    def __init__(self, W: np.ndarray, b: np.ndarray, io: Any, max_rows: int, device: Any, mode: str) -> None:
        import torch

        if mode not in XPROJ_MODES + (HALF_TF32,):
            raise ValueError(f"unknown projection mode {mode!r}")
        self.mode = mode
        n, k = W.shape
        self.k = k
        #: the type of the projections it writes
        self.out_dtype = torch.float32 if mode == HALF_TF32 else io
        self.b = torch.from_numpy(np.ascontiguousarray(b, dtype=np.float32)).to(device=device, dtype=self.out_dtype)
        if mode == HALF_TF32:
            if io == torch.float32:
                raise ValueError(f"projection mode {mode!r} is for fp16/bf16 stacks")
            self.wt = torch.from_numpy(np.ascontiguousarray(W.T, dtype=np.float32)).to(device)
            return
        if mode == "plain":
            self.wt = torch.from_numpy(np.ascontiguousarray(W.T)).to(device=device, dtype=io)
            return
        if io != torch.float32:
            raise ValueError(f"projection mode {mode!r} is for fp32 stacks")
        wt = np.ascontiguousarray(W.T, dtype=np.float32)
        if mode == "tf32x3":
            hi, lo = split_tf32(wt)
            self.w3 = torch.from_numpy(np.concatenate([hi, lo, hi], 0)).to(device)
            self.x3 = torch.empty(max_rows, 3 * k, device=device, dtype=torch.float32)
        else:
            # The bias rides along as two more K columns (x: 1, 1; W: b_hi, b_lo), padded to 8
            # so rows stay 16-byte aligned: the GEMM writes the finished projection.
            hi, lo = _split_bf16(torch.from_numpy(wt).to(device))
            bias = torch.zeros(8, n, device=device, dtype=torch.bfloat16)
            bias[0], bias[1] = _split_bf16(self.b.float())
            self.w3 = torch.cat([hi, lo, hi, bias], 0)
            self.x3 = torch.zeros(max_rows, 3 * k + 8, device=device, dtype=torch.bfloat16)
            self.x3[:, 3 * k:3 * k + 2] = 1.0

    def stage(self, inp: Any) -> Any:
        """The GEMM's left operand for `inp` (split modes): [x_hi | x_hi | x_lo (| 1 1 0..)].
        inp: [M, K], or [T, B, K] with any strides (e.g. a batch-major input seen
        time-major): the split writes the operand's rows in (t, b) order, so a transposed
        input costs no copy of its own."""
        import torch

        k = self.k
        lead = tuple(inp.shape[:-1])
        m = int(np.prod(lead))
        x3 = self.x3[:m]

        def rows(t: Any) -> Any:  # an [M, n] slice of the operand seen with inp's leading dims
            return t.view(lead + (t.shape[-1],))

        hi = rows(x3[:, :k])
        if self.mode == "tf32x3":
            torch.bitwise_and(inp.view(torch.int32), -8192, out=rows(x3.view(torch.int32)[:, :k]))  # clear 13 bits
            x3[:, k:2 * k].copy_(x3[:, :k])
            torch.sub(inp, hi, out=rows(x3[:, 2 * k:]))  # lo: the exact rest
        else:
            hi.copy_(inp)  # hi: rounded to bf16
            x3[:, k:2 * k].copy_(x3[:, :k])
            torch.sub(inp, hi, out=rows(x3[:, 2 * k:3 * k]))  # lo: the rest (fp32), rounded to bf16
        return x3

    def takes_any_layout(self, x: Any) -> bool:
        """Whether __call__ can take x [T, B, K] as it is (no contiguous copy first)."""
        import torch

        return self.mode in ("tf32x3", "bf16x3") and x.dtype == torch.float32

    def __call__(self, inp: Any, out: Any) -> None:
        import torch

        if self.mode == "plain":
            torch.addmm(self.b, inp.reshape(-1, inp.shape[-1]), self.wt, out=out)
            return
        if self.mode == HALF_TF32:  # fp32 x as it comes (other types converted), fp32 out
            with _tf32_matmul():
                torch.addmm(self.b, inp.reshape(-1, inp.shape[-1]).float(), self.wt, out=out)
            return
        x3 = self.stage(inp)
        if self.mode == "tf32x3":
            with _tf32_matmul():
                torch.addmm(self.b, x3, self.w3, out=out)
        else:  # bf16 products, fp32 accumulation and output (the bias is in the operands)
            torch.mm(x3, self.w3, out_dtype=torch.float32, out=out)

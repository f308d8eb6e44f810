"""The row kernel (kernels/row_rnn.cu): one CTA per (direction, group of batch rows) runs a
whole layer's sequence with every recurrent weight on its SM, so no step waits for
another CTA. Plans its build (RowConfig), packs the weights and launches it, one launch a
layer after that layer's input projection (one GEMM for every step).

It suits the small hidden sizes of classifiers and taggers (H up to about 128-200): there
the persistent kernel spreads a layer over many CTAs that exchange h every step, and that
exchange is most of a step. The runner takes it where asked (prefer="row") and, unless
options.row is off (TF2RT_CUDA_ROW=0), where its first-run measurement finds it fastest.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ...errors import ShapeError
from .device_limits import DeviceLimits
from .kernel_config import STATIC_SMEM_RESERVE
from .launch import launch, pointer
from .options import CudaOptions, resolve
from .packing import DirectionWeights, round_up, to_bf16_bits
from .problem import DTYPE_CODE, RnnProblem
from .projection import Projection, projection_mode
from .views import adopt_targets

#: Register file of an SM (32-bit registers) and the most one thread may use.
SM_REGISTERS = 65536
MAX_THREAD_REGISTERS = 255
#: Registers a thread needs besides its weight columns (fitted to ptxas's sm_90 builds of the
#: planned shapes, tests/backends/test_cuda_row.py): addresses, loop state and per batch row
#: of the CTA the products' operands and the state, biases and inputs it updates.
BASE_REGISTERS = 44
REGISTERS_PER_BATCH_ROW = 14


@dataclass(frozen=True)
class RowConfig:
    """One build of the row kernel."""

    cell_code: int
    hidden: int
    gates: int
    iotype: int
    threads: int
    rpt: int  # gate rows a thread
    bpc: int  # batch rows a CTA
    kreg: int  # columns of each row in registers (a multiple of 4)
    lbr: bool
    peepholes: bool
    cluster: int = 1  # CTAs sharing a layer (a thread-block cluster), each with upc units

    @property
    def upc(self) -> int:
        return -(-self.hidden // self.cluster)

    @property
    def kp(self) -> int:
        return round_up(self.hidden, 4)

    @property
    def rp(self) -> int:
        return self.threads * self.rpt

    @property
    def pair_bytes(self) -> int:
        return 8 if self.iotype == 0 else 4

    @property
    def smem_bytes(self) -> int:
        weights = (self.kp - self.kreg) // 2 * self.rp * self.pair_bytes
        rh = self.bpc * self.kp * 4 if self.cell_code == 1 and not self.lbr else 0
        return weights + (2 * self.bpc * self.kp + self.bpc * self.rp) * 4 + rh

    def ctas(self, batch: int, directions: int) -> int:
        return directions * -(-batch // self.bpc) * self.cluster

    def defines(self, otype: int | None = None, ytype: int | None = None) -> dict[str, int]:
        """-D values of a build writing hn/cn as otype and y as ytype (type codes; default
        the stack's own type, and ytype defaults to otype)."""
        from .persistent import gate_defines

        otype = self.iotype if otype is None else otype
        return {**gate_defines(), "CELL": self.cell_code, "IOTYPE": self.iotype, "OTYPE": otype,
                "YTYPE": otype if ytype is None else ytype, "FAST_GATES": int(self.iotype != 0),
                "HID": self.hidden, "NGATE": self.gates, "THREADS": self.threads, "RPT": self.rpt, "BPC": self.bpc,
                "KREG": self.kreg, "LBR": int(self.lbr), "PEEP": int(self.peepholes), "CLUSTER": self.cluster}


def thread_registers(threads: int) -> int:
    """Registers a thread may use when `threads` threads share an SM: the register file split
    over the warps, counted in whole groups of four (one a scheduler), in steps of 8."""
    warps = round_up(-(-threads // 32), 4)
    return min(MAX_THREAD_REGISTERS, SM_REGISTERS // (warps * 32) // 8 * 8)


#: Thread-block cluster sizes the row kernel uses (portable sizes: no opt-in needed).
CLUSTER_SIZES = (1, 2, 4, 8)


def row_config(problem: RnnProblem, device: DeviceLimits | None = None) -> tuple[RowConfig | None, str]:
    """The row kernel's build for `problem` (one CTA a layer where it fits one SM, else the
    smallest thread-block cluster it fits), or None and why it cannot run it."""
    from .packing import GATES_PER_CELL

    device = device or DeviceLimits()
    p = problem
    if p.cell not in GATES_PER_CELL or not p.default_activations:
        return None, "the row kernel runs LSTM, GRU and tanh/relu RNN cells with their default activations"
    if p.cell == "rnn" and p.rnn_activation not in ("tanh", "relu"):
        return None, f"the row kernel has no {p.rnn_activation} activation"
    sizes = CLUSTER_SIZES if device.compute_capability >= (9, 0) else (1,)
    why = ""
    for cluster in sizes:
        cfg, why = _build(p, device, cluster)
        if cfg is not None:
            return cfg, ""
    return None, why + ("" if len(sizes) > 1 else " (thread-block clusters need compute capability 9.0+)")


def _build(p: RnnProblem, device: DeviceLimits, cluster: int) -> tuple[RowConfig | None, str]:
    """The build of `p` on clusters of `cluster` CTAs, or None and why it does not fit."""
    rows = p.gates * -(-p.hidden // cluster)  # rows a CTA
    rpt = 1 if rows <= 1024 else 2 if rows <= 2048 else 0
    if not rpt:
        return None, f"{rows} gate rows a CTA: more than two a thread (the row kernel is for small layers)"
    threads = round_up(-(-rows // rpt), 32)
    ctas = lambda bpc: p.directions * -(-p.batch // bpc) * cluster  # noqa: E731
    # fewer batch rows a CTA while the CTAs fit on the SMs in one wave
    bpc = next((b for b in (1, 2, 4) if ctas(b) <= device.sm_count), 4)
    spare = thread_registers(threads) - BASE_REGISTERS - REGISTERS_PER_BATCH_ROW * bpc
    # A register column costs two registers in every type: the compiler widens fp16/bf16
    # weights to fp32 once, outside the step loop.
    kp = round_up(p.hidden, 4)
    kreg = min(kp, max(0, spare // rpt) // 4 * 4)
    cfg = RowConfig(cell_code=p.cell_code, hidden=p.hidden, gates=p.gates, iotype=DTYPE_CODE[p.dtype],
                    threads=threads, rpt=rpt, bpc=bpc, kreg=kreg, lbr=p.linear_before_reset, peepholes=p.peepholes,
                    cluster=cluster)
    limit = device.smem_per_block - STATIC_SMEM_RESERVE
    if cfg.smem_bytes > limit:
        where = "one SM" if cluster == 1 else f"a cluster of {cluster} SMs"
        return None, (f"a layer's recurrent weights do not fit {where} ({cfg.smem_bytes} B of shared memory a CTA "
                      f"besides {kreg} columns a row in registers > {limit})")
    return cfg, ""


def pack_pairs(R: np.ndarray, cfg: RowConfig) -> np.ndarray:
    """One direction's R [G*H, H] as the kernel's [CLUSTER, KP/2, RP] pairs of consecutive
    columns: for each cluster rank r its rows g*H + r*upc + u (gate-major over its units u),
    padded with zero rows to RP and zero columns to KP. float32 [.., 2] for fp32 stacks, else
    the 16-bit patterns (fp16, or bf16 as uint16)."""
    rows, k = R.shape
    H, upc = cfg.hidden, cfg.upc
    m = np.zeros((cfg.cluster, cfg.rp, cfg.kp), np.float32)
    for r in range(cfg.cluster):
        for g in range(cfg.gates):
            units = range(r * upc, min((r + 1) * upc, H))
            m[r, g * upc:g * upc + len(units), :k] = R[g * H + units.start:g * H + units.stop]
    pairs = np.ascontiguousarray(m.reshape(cfg.cluster, cfg.rp, cfg.kp // 2, 2).transpose(0, 2, 1, 3))
    if cfg.iotype == 0:
        return pairs
    if cfg.iotype == 1:
        return pairs.astype(np.float16).view(np.uint16)
    return to_bf16_bits(pairs)


@functools.lru_cache(maxsize=32)
def _compile(defines: tuple[tuple[str, int], ...], smem_bytes: int) -> Any:
    import cupy

    from .persistent import kernel_source

    options = ("--std=c++17",) + tuple(f"-D{k}={v}" for k, v in defines)
    kernel = cupy.RawModule(code=kernel_source("row_rnn.cu"), options=options).get_function("row_rnn")
    kernel.max_dynamic_shared_size_bytes = smem_bytes
    return kernel


class RowStack:
    """A stack of recurrent layers run by the row kernel, one launch a layer (same call as
    PersistentStack: x [T, B, in] (T <= seq_len), h0/c0 [L*D, B, H], seq_lens [B] ->
    (y [T, D, B, H] of the last layer, h_n [L*D, B, H], c_n or None), views of internal
    buffers valid until the next call)."""

    def __init__(self, problem: RnnProblem, cfg: RowConfig, layers: Sequence[Sequence[DirectionWeights]],
                 device: Any = None, options: CudaOptions | None = None) -> None:
        import torch

        from .fallback import _torch_dtype  # not at the top: fallback imports the planner, which imports this

        p = self.problem = problem
        H, B, T, L, D, G = p.hidden, p.batch, p.seq_len, p.layers, p.directions, p.gates
        if len(layers) != L or any(len(dirs) != D for dirs in layers):
            raise ShapeError(f"row stack: expected {L} layers x {D} directions of weights")
        self.cfg = cfg
        self.dev = torch.device("cuda", torch.cuda.current_device()) if device is None else torch.device(device)
        self.dt = _torch_dtype(p.dtype)
        options = resolve(options)
        f32 = dict(device=self.dev, dtype=torch.float32)
        io = dict(device=self.dev, dtype=self.dt)

        def packed(dirs: Sequence[DirectionWeights]) -> Any:
            t = torch.from_numpy(np.ascontiguousarray(np.stack([pack_pairs(w.R, cfg) for w in dirs])))
            return t.to(self.dev)

        self.R = [packed(dirs) for dirs in layers]
        self.rb = [torch.from_numpy(np.concatenate([w.Rb for w in dirs]).astype(np.float32)).to(**f32)
                   for dirs in layers]
        self.P = [torch.from_numpy(np.concatenate([w.P for w in dirs]).astype(np.float32)).to(**f32)
                  if dirs[0].P is not None else None for dirs in layers]
        self.proj = []
        for dirs in layers:
            W = np.concatenate([w.W for w in dirs], 0)
            mode = projection_mode(p.dtype, T * B, W.shape[1], W.shape[0], p.bf16_ok, options)
            self.proj.append(Projection(W, np.concatenate([w.Wb for w in dirs], 0), self.dt, T * B, self.dev, mode))
        self.xp = torch.empty(T * B, D * G * H, **io)
        # Lower layers write y as [T, B, D, H]: the next layer's projection reads it as is.
        self.mid = [torch.empty(T, B, D, H, **io) for _ in range(L - 1)]
        self.y = torch.empty(T, D, B, H, **io)
        self.hn = torch.empty(L * D, B, H, **io)
        self.cn = torch.empty(L * D, B, H, **io) if p.cell == "lstm" else None
        self.out_dtype = self.dt

    @property
    def products(self) -> str:
        c = self.cfg
        return (f"{self.problem.dtype} on CUDA cores, {c.kreg} of {c.kp} columns a row in registers, "
                f"{c.bpc} batch row(s) a CTA")

    def kernel(self, otype: Any, ytype: Any) -> Any:
        """The build writing hn/cn as otype and y as ytype (torch dtypes)."""
        from .single_step import _TYPE_CODES

        defines = self.cfg.defines(_TYPE_CODES[str(otype)], _TYPE_CODES[str(ytype)])
        return _compile(tuple(sorted(defines.items())), self.cfg.smem_bytes)

    def set_output_targets(self, targets: dict) -> dict:
        """Write the last layer's y and hn/cn straight into the layout and type the engine's
        next ops want. targets: "y" / "hn" / "cn" -> (dtype, numel, strides in elements,
        offset), as GraphExecutor learns them. Returns the targets taken (hn and cn only
        together with the same strides; one output type for all)."""
        return adopt_targets(self, targets)

    def _project(self, layer: int, inp: Any, T: int, B: int) -> tuple[int, int]:
        """Layer `layer`'s input projection of inp [T, B, K] into self.xp; returns the row
        strides (per step, per batch row, in elements) the kernel reads it with. A
        batch-major input is projected in its own row order: no copy first."""
        import torch

        n = self.xp.shape[1]
        out = self.xp[: T * B]
        proj = self.proj[layer]
        if inp.dtype != self.dt or not (proj.takes_any_layout(inp) or inp.is_contiguous()
                                        or inp.transpose(0, 1).is_contiguous()):
            inp = inp.to(self.dt, memory_format=torch.contiguous_format).contiguous()
        if proj.takes_any_layout(inp) or inp.is_contiguous():
            proj(inp, out)
            return B * n, n
        proj(inp.transpose(0, 1).reshape(B * T, -1), out)  # rows in (b, t) order
        return n, T * n

    def __call__(self, x: Any, h0: Any = None, c0: Any = None, seq_lens: Any = None) -> tuple[Any, Any, Any]:
        import torch

        p, cfg = self.problem, self.cfg
        H, L, D = p.hidden, p.layers, p.directions
        if x.dim() != 3 or not 1 <= x.shape[0] <= p.seq_len or x.shape[1] != p.batch or x.shape[2] != p.input_size:
            raise ShapeError(f"row stack planned for x [T<={p.seq_len}, {p.batch}, {p.input_size}]; "
                             f"got {tuple(x.shape)}")
        T, B = int(x.shape[0]), int(x.shape[1])
        state = (L * D, B, H)
        h0 = None if h0 is None else h0.reshape(state).to(self.dt).contiguous()
        c0 = None if c0 is None or self.cn is None else c0.reshape(state).to(self.dt).contiguous()
        seq = None if seq_lens is None else seq_lens.reshape(B).to(torch.int32).contiguous()
        el = self.xp.element_size()  # h0/c0 are in the stack's type
        slab = D * B * H
        inp = x
        for layer in range(L):
            xs_t, xs_b = self._project(layer, inp, T, B)
            last = layer == L - 1
            y = self.y if last else self.mid[layer]
            # y as (t, d, b): the last layer's own layout or target; lower layers [T, B, D, H]
            ys_t, ys_d, ys_b = (y.stride(0), y.stride(1), y.stride(2)) if last else (B * D * H, H, D * H)
            hn, cn = self.hn[layer * D], None if self.cn is None else self.cn[layer * D]
            st = lambda t: np.uint64(0 if t is None else t.data_ptr() + layer * slab * el)  # noqa: E731
            args = (pointer(self.R[layer]), pointer(self.rb[layer]), pointer(self.P[layer]), pointer(self.xp),
                    np.int64(xs_t), np.int64(xs_b), st(h0), st(c0), pointer(y), np.int64(ys_t), np.int64(ys_d),
                    np.int64(ys_b), pointer(hn), pointer(cn), np.int64(self.hn.stride(0)),
                    np.int64(self.hn.stride(1)), pointer(seq), np.int32(T), np.int32(B), np.int32(int(p.reverse)),
                    np.float32(p.clip or 0.0))
            # a lower layer's y feeds the next layer (stack's type); every hn/cn is an output
            kernel = self.kernel(self.out_dtype, self.out_dtype if last else self.dt)
            launch(kernel, (cfg.ctas(B, D),), (cfg.threads,), args, self.dev, cfg.smem_bytes)
            if not last:
                inp = self.mid[layer][:T].view(T, B, D * H)
        return self.y[:T], self.hn, self.cn


"""Decoding many tokens in ONE launch (kernels/decode_resident.cu).

The fused decode loop (decode.py) costs a launch per layer and one for the head per token,
inside a CUDA graph: on an H100 about 21 µs a token for a 2-layer LSTM of 512 units, of
which most is launch gaps, not arithmetic. Here one cooperative launch runs a whole chunk
of tokens: every layer's weight rows sit in shared memory across the grid, each CTA keeps
its units' state in registers, and the layers and the head hand each step on through
tagged words in global memory. A token costs a few hand-offs through L2.

The plan (`resident_plan`) takes the fewest units a CTA that fit the SMs and shared memory:
LAYERS * ceil(H / units) layer CTAs and one head CTA must all be resident at once (the
launch is cooperative: the driver refuses a grid that cannot be, instead of letting it
wait forever), and a CTA's rows of both weights must fit in its shared memory. Stacks or
heads that do not fit run in the fused loop.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ...errors import Tf2rtError
from .launch import launch, pointer
from .packing import DirectionWeights
from .persistent import gate_defines, kernel_source
from .problem import RnnProblem

RESIDENT_THREADS = 256
RESIDENT_MAX_BATCH = 8
#: Rows of one unit in a layer CTA: every gate block of the cell.
UNIT_ROWS = {"lstm": 4, "gru": 3, "rnn": 1}
_IO_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
_IO_CODE = {"float32": 0, "float16": 1, "bfloat16": 2}
#: Largest table of first-layer input products (rows x gate rows, fp32) made once instead of
#: the embedding row's products at every step.
XTAB_MAX_BYTES = 64 << 20
#: Steps of a launch whose hand-off times `trace` records.
TRACE_STEPS = 64
#: A hand-off word that does not arrive within this long ends the launch with an error.
TIMEOUT_NS = 2_000_000_000


class ResidentLaunchError(Tf2rtError):
    """The driver refused the cooperative launch (nothing ran): the caller may fall back."""


class ResidentTimeoutError(ResidentLaunchError):
    """A launch ended early because a hand-off did not arrive in time (its tokens are not to
    be used; the state buffers are set again by the next call): the caller may fall back."""


def _align16(n: int) -> int:
    return (n + 15) & ~15


@dataclass(frozen=True)
class ResidentPlan:
    """How a stack and its head spread over one grid (see the kernel's header)."""

    upc: int  # units a layer CTA
    ncta: int  # CTAs a layer
    grid: int  # layer CTAs and the head CTA
    xtab: bool  # the first layer's input products of every table row made once (XTAB_MAX_BYTES)
    smem: int  # dynamic shared memory a CTA (the larger of a layer CTA's and the head's)


def layer_smem(problem: RnnProblem, upc: int) -> int:
    """Bytes of shared memory of a layer CTA, as the kernel lays it out: weight rows (R rows
    aligned), h and x rows, the products, biases and peepholes, the tokens."""
    p, B, H = problem, problem.batch, problem.hidden
    rows = UNIT_ROWS[p.cell] * upc
    kin = max(p.input_size, H) if p.layers > 1 else p.input_size
    weights = _align16((rows * (kin + H) + 8) * _IO_BYTES[p.dtype])
    return weights + 4 * (-(-B * H // 4) * 4 + B * kin + 2 * rows * B + 2 * rows + 3 * upc + B)


def head_smem(problem: RnnProblem, vocab: int) -> int:
    """Bytes of shared memory of the head CTA (its weights included)."""
    nwarp = RESIDENT_THREADS // 32
    base = 4 * (problem.batch * problem.hidden + vocab + RESIDENT_THREADS + 2 * nwarp + 1)
    return _align16(base) + 4 * vocab * problem.hidden


def resident_applies(problem: RnnProblem) -> str | None:
    """Why the resident decoder cannot run `problem` (None: it can)."""
    p = problem
    if p.directions != 1 or p.reverse:
        return "forward unidirectional stacks only"
    if p.cell == "gru" and not p.linear_before_reset:
        return "GRU with linear_before_reset=0"
    if not p.default_activations:
        return "non-default activations"
    if p.batch > RESIDENT_MAX_BATCH:
        return f"batch above {RESIDENT_MAX_BATCH} (a CTA keeps a product per batch row in registers)"
    return None


def resident_plan(problem: RnnProblem, vocab: int, sm_count: int, smem_per_block: int,
                  table_rows: int | None = None) -> ResidentPlan | None:
    """The plan with the fewest units a CTA that fits, or None. table_rows: the embedding's
    rows (default: vocab), for the size of the first layer's product table."""
    if resident_applies(problem):
        return None
    H, L, B = problem.hidden, problem.layers, problem.batch
    for upc in range(1, H + 1):
        ncta = -(-H // upc)
        if upc * B > RESIDENT_THREADS or L * ncta + 1 > sm_count:
            continue
        lay, head = layer_smem(problem, upc), head_smem(problem, vocab)
        if lay > smem_per_block or head > smem_per_block:
            return None  # more units a CTA only need more; a head that does not fit runs elsewhere
        rows = vocab if table_rows is None else table_rows
        xtab = rows * ncta * UNIT_ROWS[problem.cell] * upc * 4 <= XTAB_MAX_BYTES
        return ResidentPlan(upc, ncta, L * ncta + 1, xtab, max(lay, head))
    return None


def pack_weights(problem: RnnProblem, layers: Sequence[Sequence[DirectionWeights]], plan: ResidentPlan
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(weights fp32, biases fp32) in the order the kernel's CTAs copy them: per layer, per
    CTA, W rows [G * upc][input] then R rows [G * upc][H] (row g * upc + u: gate g of unit
    c * upc + u; zero past H); biases per CTA: W bias, R bias [G * upc], peepholes i, o, f
    [upc] each."""
    H, G, U = problem.hidden, UNIT_ROWS[problem.cell], plan.upc
    wparts, bparts = [], []
    for dirs in layers:
        w = dirs[0]
        for c in range(plan.ncta):
            units = np.arange(c * U, (c + 1) * U)
            ok = units < H
            rows = (np.arange(G)[:, None] * H + np.minimum(units, H - 1)[None, :]).reshape(-1)
            keep = np.tile(ok, G).astype(np.float32)
            wparts += [(w.W[rows] * keep[:, None]).reshape(-1), (w.R[rows] * keep[:, None]).reshape(-1)]
            peep = np.zeros((3, U), np.float32)
            if w.P is not None:
                p3 = np.asarray(w.P, np.float32).reshape(3, H)
                peep[:, ok] = p3[:, units[ok]]
            bparts += [w.Wb[rows] * keep, w.Rb[rows] * keep, peep.reshape(-1)]
    return np.concatenate(wparts).astype(np.float32), np.concatenate(bparts).astype(np.float32)


def resident_defines(problem: RnnProblem, plan: ResidentPlan) -> dict[str, int]:
    p = problem
    return dict(CELL=p.cell_code, IOTYPE=_IO_CODE[p.dtype], HID=p.hidden, LAYERS=p.layers, IN0=p.input_size,
                BATCH=p.batch, UPC=plan.upc, NCTA=plan.ncta, GW=UNIT_ROWS[p.cell], PEEP=int(p.peepholes),
                NTHR=RESIDENT_THREADS, XTAB=int(plan.xtab), **gate_defines())


@functools.lru_cache(maxsize=16)
def _compile(defines: tuple[tuple[str, int], ...], smem: int) -> Any:
    import cupy

    options = ("--std=c++17",) + tuple(f"-D{k}={v}" for k, v in defines)
    module = cupy.RawModule(code=kernel_source("decode_resident.cu"), options=options,
                            enable_cooperative_groups=True)
    kernel = module.get_function("resident_decode")
    kernel.max_dynamic_shared_size_bytes = smem
    return kernel


class ResidentDecoder:
    """The kernel's buffers and launches for one stack and head (DecodeLoop's resident form).

    run(tok, h, c, steps, picked, ...) advances the state buffers h, c [L, B, H] (the stack's
    type) and the token buffer tok [B] by `steps` tokens in one launch and writes the picks
    to picked [steps, B] (on the device); `logits` holds the last step's."""

    def __init__(self, problem: RnnProblem, layers: Sequence[Sequence[DirectionWeights]], table: Any, head_kv: Any,
                 head_b: Any, plan: ResidentPlan, device: Any) -> None:
        import torch

        self.torch, self.problem, self.plan, self.dev = torch, problem, plan, device
        self.clip = float(problem.clip or 0.0)
        w, b = pack_weights(problem, layers, plan)
        dt = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[problem.dtype]
        self.wpack = torch.from_numpy(w).to(device).to(dt)
        self.bpack = torch.from_numpy(b).to(device)
        self.xtab = None
        if plan.xtab:  # table @ (the first layer's W rows in pack order, as the kernel holds them).T
            rpc = UNIT_ROWS[problem.cell] * plan.upc
            e, h = problem.input_size, problem.hidden
            w0 = self.wpack[:plan.ncta * rpc * (e + h)].reshape(plan.ncta, rpc * (e + h))[:, :rpc * e]
            self.xtab = _exact_mm(table.float(), w0.reshape(-1, e).float().t())  # a CTA's W rows, then its R rows
        self.table, self.head_kv, self.head_b = table, head_kv, head_b  # head_kv: the head weight [H, V]
        L, B, H = problem.layers, problem.batch, problem.hidden
        self.vocab = head_kv.shape[1]
        # tagged words (tag << 32 | value bits); tag 0 (zeros) is no step's
        self.hx = torch.zeros(L, 2, B, H, device=device, dtype=torch.int64)
        self.tokx = torch.zeros(2, B, device=device, dtype=torch.int64)
        self.epoch = 0  # steps (and one more a launch) of the launches so far: this launch's tags are above
        self.sync = torch.zeros(L + 1, device=device, dtype=torch.int32)  # per-layer counters, error word
        self.logits = torch.zeros(B, self.vocab, device=device, dtype=torch.float32)
        self.trace: Any = None  # int64 [grid, TRACE_STEPS, 3] to record hand-off times (see the kernel)
        defines = resident_defines(problem, plan)
        if device.type == "cuda":
            self.kernel = _compile(tuple(sorted(defines.items())), plan.smem)
        else:  # the tests' host build of the same source
            self.kernel = _host_kernel(tuple(sorted(defines.items())))

    def run(self, tok: Any, h: Any, c: Any, steps: int, picked: Any, forced: Any = None, uniform: Any = None,
            inv_temp: float = 1.0, top_k: int = 0, timeout_ns: int = TIMEOUT_NS) -> None:
        """`steps` tokens: picks into picked [>= steps, B] (int64), forced [>= steps, B] (-1:
        free) overrides the token fed to the next step, uniform [>= steps, B, V] samples."""
        if self.epoch + steps + 2 >= 1 << 32:  # tags would wrap: start over from empty slots
            self.hx.zero_()
            self.tokx.zero_()
            self.epoch = 0
        self.sync.zero_()
        args = (pointer(self.wpack), pointer(self.bpack), pointer(self.table), pointer(self.xtab), pointer(self.head_kv),
                pointer(self.head_b), np.int32(self.vocab), np.int32(steps), pointer(uniform), np.float32(inv_temp),
                np.int32(top_k), pointer(forced), pointer(tok), pointer(picked), pointer(self.logits), pointer(h),
                pointer(c), pointer(self.hx), pointer(self.tokx), pointer(self.sync), np.uint32(self.epoch),
                np.float32(self.clip), np.int64(timeout_ns), pointer(self.trace))
        launch(self.kernel, (self.plan.grid,), (RESIDENT_THREADS,), args, self.dev, shared_mem=self.plan.smem)
        self.epoch += steps + 1

    def handoffs(self, layers: int) -> dict[str, float]:
        """Median µs of each hand-off of a step over the traced steps 8.. of the last launch
        (after `trace` was set to int64 zeros [grid, TRACE_STEPS, 3] and a launch of at least
        16 steps ran): token -> layer 0's input there, each layer's products and cell, layer
        -> next layer's input there, last layer -> head has h, head's logits and choice, and
        the whole step."""
        raw = self.trace.cpu().numpy()
        t = (raw - raw[raw > 0].min()).astype(np.float64)  # ns since the first stamp (exact in float64)
        n = self.plan.ncta
        lay = [t[l * n:(l + 1) * n] for l in range(layers)]
        head = t[layers * n]
        steps = [s for s in range(8, TRACE_STEPS) if head[s, 2] > 0]
        out: dict[str, list[float]] = {}

        def add(name: str, v: float) -> None:
            out.setdefault(name, []).append(v / 1e3)

        for s in steps:
            add("token -> layer 0 has it", lay[0][:, s, 1].max() - head[s - 1, 2])
            for l in range(layers):
                add(f"layer {l}: products and cell", lay[l][:, s, 2].max() - lay[l][:, s, 1].max())
                if l + 1 < layers:
                    add(f"layer {l} -> layer {l + 1} has it", lay[l + 1][:, s, 1].max() - lay[l][:, s, 2].max())
            add("last layer -> head has it", head[s, 1] - lay[-1][:, s, 2].max())
            add("head: logits and choice", head[s, 2] - head[s, 1])
            add("step", head[s, 2] - head[s - 1, 2])
        return {k: float(np.median(v)) for k, v in out.items()}

    def check(self) -> None:
        """Raise if the last launch timed out (read after the launch finished)."""
        if int(self.sync[self.problem.layers].item()):
            raise ResidentTimeoutError("a step did not complete in time (the grid's CTAs were not all resident, "
                                       "or another kernel held the GPU); TF2RT_CUDA_RESIDENT=0 decodes with a "
                                       "launch a layer from the start")


def _exact_mm(a: Any, b: Any) -> Any:
    """a @ b in fp32 without TF32 (PyTorch's switch for CUDA matmuls, restored after)."""
    import torch

    m = torch.backends.cuda.matmul
    before = m.allow_tf32
    m.allow_tf32 = False
    try:
        return torch.mm(a, b).contiguous()
    finally:
        m.allow_tf32 = before


def _host_kernel(defines: tuple[tuple[str, int], ...]) -> Any:
    """Set by the tests (the host emulation of the kernels); no CPU form otherwise."""
    raise Tf2rtError("the resident decoder needs a GPU")

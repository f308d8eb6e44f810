"""Single-step recurrent stacks (T = 1): one GEMM and one elementwise kernel per layer.

A call of one time step has no state to keep on chip between steps, so the persistent
kernel's prologue (every CTA loading its weight slice) and its separate input-projection
GEMM are pure overhead there. Here each layer's gates come from ONE GEMM over the
concatenated [x | h0] and a weight that stacks the input and recurrent matrices:

    LSTM, RNN:  columns = gates,                 rows = [W ; R],       bias Wb + Rb
    GRU:        columns = z, r, h~ (input part), h~ (recurrent part),  since r scales only
                the recurrent part of h~ (linear_before_reset=1)

Bidirectional layers put both directions' columns side by side, each direction's R in
the rows of its own h0. fp32 stacks multiply on bf16 tensor cores in two parts each
(kernels/single_step.cu, SPLIT): fp32 accuracy from one GEMM that reads 4 bytes a weight.
Launches: one staging kernel, then per layer the GEMM and the gate kernel. A call without
an initial state (h0 zeros) leaves the recurrent rows out of every product: it reads the
input's weights only.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, NamedTuple, Sequence

import numpy as np

from ...errors import ShapeError, UnsupportedError
from .packing import DirectionWeights, round_up
from .launch import L2Window, l2_set_aside, launch, max_active_blocks, pointer
from .options import CudaOptions, resolve
from .persistent import gate_defines, kernel_source
from .views import adopt_targets
from .plan import RnnProblem, step_applies

#: Gate blocks per direction in the GEMM output.
GATE_BLOCKS = {"lstm": 4, "gru": 4, "rnn": 1}
#: fp32 stacks of at least this batch split their operands into bf16 parts where their
#: weights allow (plan.BF16X3_MAX_ROW_NORM); smaller ones, and those with larger weights,
#: run an fp32 GEMM (cuBLAS's bf16 GEMM is slow for a row or two).
SPLIT_MIN_BATCH = 8
THREADS = 256
#: Up to this batch a layer is one launch (kernels/single_step.cu, step_gemv): a warp per
#: gate row reads the transposed stacked weight with 16-byte loads and the same block
#: applies the cell; no GEMM, no staging kernel. options.gemv=False (TF2RT_CUDA_GEMV=0) keeps the GEMM form.
GEMV_MAX_BATCH = 4
GEMV_SMEM = 48 * 1024  # the operand [batch, K] (fp32) a block stages
#: Weight loads per lane issued before a one-launch layer waits for its inputs, at most
#: (fp32 16-byte loads, fp16/bf16 8-byte loads; about 60 registers a thread at the most).
GEMV_PREFETCH = {"float32": 6, "float16": 12, "bfloat16": 12}
#: The same for every layer in one launch (its loop keeps more registers live): the most
#: that compile for sm_90 without spills at batch 1 (fp32 GRU: 8 bytes).
GEMV_LAYERS_PREFETCH = {"float32": 6, "float16": 8, "bfloat16": 8}
#: A stack marks its weights persisting in L2 only with options.l2_persist; with it unset,
#: the runner's first-run measurement times the stack both ways where its weights take more
#: than L2_PERSIST_MIN_SHARE of L2 (smaller ones stay there between calls anyway) and keeps
#: the faster: on an H100 the fp32 H=1024 two-layer stacks were 12-13% faster with it, on an
#: H200 no faster (benchmarks/results/cuda_step_bandwidth_probe_h100.md,
#: cuda_step_l2_1_h200.md). See persisting_windows.
L2_PERSIST_MIN_SHARE = 0.5
#: L2 prefetches of the one-launch layers where the options leave them to the planner
#: (kernels/single_step.cu GV_L2PF; options.gemv_l2pf).
GEMV_L2PF_DEFAULT = 0


def gemv_l2pf(options: CudaOptions) -> int:
    """The one-launch layers' L2 prefetch mask (kernels/single_step.cu, GV_L2PF)."""
    text = options.gemv_l2pf.strip()
    if not text:
        return GEMV_L2PF_DEFAULT
    if not (text.isdigit() and 0 <= int(text) <= 15):
        raise UnsupportedError(f"TF2RT_CUDA_GEMV_L2PF={text!r}: expected a mask 0-15 (1 the next layer's rows, "
                               "2 the rest of the own row, 4 streaming own loads, 8 with 1: the last layer the "
                               "first layer's rows, for the next call)")
    return int(text)


def l2_persist_may_pay(weight_bytes: int, l2_size: int) -> bool:
    """Whether weights of this size are worth keeping in persisting L2: more than
    L2_PERSIST_MIN_SHARE of it (L2 keeps smaller ones between calls on its own)."""
    return weight_bytes > L2_PERSIST_MIN_SHARE * l2_size


def persisting_windows(sizes: Sequence[int], set_aside: int, max_window: int,
                       front: bool = False) -> list[tuple[int, float]]:
    """Per weight buffer of `sizes` bytes, (bytes its window covers, hit ratio): the same
    share of every buffer's lines, so that together they fill the `set_aside` bytes of
    persisting L2 and no more (persisting lines beyond it would evict each other on every
    call); a window covers at most `max_window` bytes, so a larger buffer's ratio is raised
    to keep its share. front: instead every line of the first buffers, in order, up to the
    set-aside (hit ratio 1: which lines stay is fixed, not drawn at each access), the rest
    none."""
    total = sum(sizes)
    if total <= 0 or set_aside <= 0 or max_window <= 0:
        return [(0, 0.0)] * len(sizes)
    if front:
        out, left = [], set_aside
        for n in sizes:
            covered = max(0, min(n, max_window, left))
            out.append((covered, 1.0 if covered else 0.0))
            left -= covered
        return out
    share = min(1.0, set_aside / total)
    out = []
    for n in sizes:
        covered = min(n, max_window)
        out.append((covered, min(1.0, share * n / covered)))
    return out


def step_weights(cell: str, hidden: int, dirs: Sequence[DirectionWeights], k: int, ncol: int) -> tuple[np.ndarray, np.ndarray]:
    """One layer's GEMM weight [k, ncol] (the transpose of the stacked matrix, zero padded)
    and bias [ncol], fp32: pre-activations = [x | h0_dir0 | h0_dir1] @ weight + bias."""
    H = hidden
    n_in = dirs[0].input_size
    G = GATE_BLOCKS[cell]
    wt = np.zeros((k, ncol), np.float32)
    bias = np.zeros(ncol, np.float32)
    for d, w in enumerate(dirs):
        col = d * G * H
        hrows = slice(n_in + d * H, n_in + (d + 1) * H)
        if cell == "gru":  # z, r: input + recurrent; h~: input part, then recurrent part
            wt[:n_in, col:col + 3 * H] = w.W.T
            wt[hrows, col:col + 2 * H] = w.R[:2 * H].T
            wt[hrows, col + 3 * H:col + 4 * H] = w.R[2 * H:].T
            bias[col:col + 3 * H] = w.Wb
            bias[col:col + 2 * H] += w.Rb[:2 * H]
            bias[col + 3 * H:col + 4 * H] = w.Rb[2 * H:]
        else:
            wt[:n_in, col:col + G * H] = w.W.T
            wt[hrows, col:col + G * H] = w.R.T
            bias[col:col + G * H] = w.Wb + w.Rb
    return wt, bias


@dataclass(frozen=True)
class StepLayout:
    """Operand and output shapes of a single-step stack's GEMMs."""

    split: bool  # fp32 operands as bf16 hi/lo parts
    gemv: bool  # one launch a layer (small batches), no GEMM
    ncol: int  # output columns of one part (all directions)
    k0: int  # the first layer's A row length (input + D*H, padded to 8)
    k1: int  # deeper layers' A row length
    rows: int  # A rows (batch, twice that when split)


def step_layout(problem: RnnProblem, options: CudaOptions | None = None) -> StepLayout:
    p = problem
    D, H = p.directions, p.hidden
    split = p.dtype == "float32" and p.batch >= SPLIT_MIN_BATCH and p.bf16_ok
    k0, k1 = round_up(p.input_size + D * H, 8), round_up(2 * D * H, 8)
    gemv = (not split and p.batch <= GEMV_MAX_BATCH and p.batch * max(k0, k1) * 4 <= GEMV_SMEM
            and resolve(options).gemv)
    return StepLayout(split=split, gemv=gemv, ncol=round_up(D * GATE_BLOCKS[p.cell] * H, 8), k0=k0, k1=k1,
                      rows=2 * p.batch if split else p.batch)


def gemv_alt_applies(problem: RnnProblem, options: CudaOptions | None = None) -> bool:
    """Whether the one-launch layers take their held loads from the rows' tails every other
    call (options.gemv_alt; kernels/single_step.cu GV_ALT): where a row is longer than the
    loads a lane holds (else the held loads are the whole row either way)."""
    p, options = problem, resolve(options)
    lay = step_layout(p, options)
    if not (lay.gemv and options.gemv_alt):
        return False
    if gemv_l2pf(options) & 2:
        raise UnsupportedError("TF2RT_CUDA_GEMV_ALT=1 moves the loads a lane holds, so it does not combine with "
                               "TF2RT_CUDA_GEMV_L2PF bit 2 (the rest of the own row); drop one of them")
    return _row_loads(lay) > _held_loads(p, lay, options)


def _row_loads(lay: StepLayout) -> int:
    """Weight loads a lane makes for the longest row of a one-launch layer (a warp takes 128
    columns a load)."""
    return -(-max(lay.k0, lay.k1) // 128)


def _held_loads(p: RnnProblem, lay: StepLayout, options: CudaOptions) -> int:
    """Weight loads a lane of a one-launch layer holds before its wait (GV_PF)."""
    return options.gemv_prefetch or min(GEMV_PREFETCH[p.dtype], _row_loads(lay))


def step_defines(problem: RnnProblem, options: CudaOptions | None = None) -> dict[str, int]:
    """The -D switches of kernels/single_step.cu for `problem`."""
    p, options = problem, resolve(options)
    lay = step_layout(p, options)
    return dict(CELL=p.cell_code, IOTYPE={"float32": 0, "float16": 1, "bfloat16": 2}[p.dtype], BATCH=p.batch,
                HID=p.hidden, DIRS=p.directions, LAYERS=p.layers, IN0=p.input_size, K0=lay.k0, K1=lay.k1,
                GW=GATE_BLOCKS[p.cell], NCOL=lay.ncol, SPLIT=int(lay.split), PEEP=int(p.peepholes),
                GEMV=int(lay.gemv), GV_PF=_held_loads(p, lay, options),
                GVL_PF=options.gemv_prefetch or min(GEMV_LAYERS_PREFETCH[p.dtype], _row_loads(lay)),
                GV_L2PF=gemv_l2pf(options) if lay.gemv else 0,
                **({"GV_ALT": 1} if gemv_alt_applies(p, options) else {}),
                **gate_defines())


_TYPE_CODES = {"torch.float32": 0, "torch.float16": 1, "torch.bfloat16": 2}


class StepKernels(NamedTuple):
    """The kernels of one single_step.cu build (the one-launch ones None without GEMV)."""

    stage: Any  # stage_operands
    gates: Any  # step_gates
    gemv: Any  # step_gemv: a layer a launch
    layers: Any  # step_gemv_layers: every layer in one launch


@functools.lru_cache(maxsize=32)
def _compile(defines: tuple[tuple[str, int], ...]) -> StepKernels:
    import cupy

    options = ("--std=c++17",) + tuple(f"-D{k}={v}" for k, v in defines)
    module = cupy.RawModule(code=kernel_source("single_step.cu"), options=options)
    gemv = dict(defines).get("GEMV")
    return StepKernels(module.get_function("stage_operands"), module.get_function("step_gates"),
                       module.get_function("step_gemv") if gemv else None,
                       module.get_function("step_gemv_layers") if gemv else None)


def gemv_blocks(problem: RnnProblem) -> tuple[int, int]:
    """(blocks, threads a block) of a one-launch layer (kernels/single_step.cu GV_UNITS)."""
    p = problem
    units = 8 if GATE_BLOCKS[p.cell] == 1 else 2
    return -(-p.directions * p.hidden // units), units * GATE_BLOCKS[p.cell] * 32


class SingleStepStack:
    """A stack of recurrent layers run for exactly one time step (same call as
    PersistentStack: x [1, B, in], h0/c0 [L*D, B, H], seq_lens [B] -> (y [1, D, B, H],
    h_n, c_n or None), views of internal buffers valid until the next call)."""

    def __init__(self, problem: RnnProblem, layers: Sequence[Sequence[DirectionWeights]], device: Any = None,
                 options: CudaOptions | None = None, weights_of: SingleStepStack | None = None) -> None:
        """weights_of: a stack of the same layers, problem, device and weight layout whose
        packed weights this one shares instead of packing its own (the runner's first-run
        candidates that differ only in how they launch: packing fp32 H=1024 weights takes a
        good part of a second a stack)."""
        import torch

        why = step_applies(problem)
        if why:
            raise UnsupportedError(f"single-step stack: {why}")
        p = self.problem = problem
        H, B, L, D = p.hidden, p.batch, p.layers, p.directions
        if len(layers) != L or any(len(dirs) != D for dirs in layers):
            raise ShapeError(f"single-step stack: expected {L} layers x {D} directions of weights")
        self.dev = torch.device("cuda", torch.cuda.current_device()) if device is None else torch.device(device)
        self.dt = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[p.dtype]
        self.options = resolve(options)
        lay = step_layout(p, self.options)
        self.split, self.ncol, self.gemv = lay.split, lay.ncol, lay.gemv
        self.l2pf = gemv_l2pf(self.options) if self.gemv else 0  # L2 prefetch mask (GV_L2PF)
        # Programmatic dependent launches of the one-launch layers (launch.py), Hopper and
        # later, unless the options say no: faster in 14 of 16 one-step rows of two H100 runs
        # and 8 of 8 of an H200 run (benchmarks/results/cuda_step_h100.md, cuda_step_pf1_h100.md,
        # cuda_step_l2_0_h200.md), and 8-9% more characters a second in the decoder, the same
        # tokens (cuda_charrnn_h100.md).
        self.pdl = (self.gemv and self.options.pdl is not False and self.dev.type == "cuda"
                    and torch.cuda.get_device_capability(self.dev) >= (9, 0))
        op = torch.bfloat16 if self.split else self.dt
        k0, k1, rows = lay.k0, lay.k1, lay.rows
        if weights_of is not None and (weights_of.problem != p or weights_of.dev != self.dev
                                       or step_layout(p, weights_of.options) != lay):
            weights_of = None  # packed another way: pack our own
        if weights_of is not None:
            self.w, self.bias, self.wT, self.peep = weights_of.w, weights_of.bias, weights_of.wT, weights_of.peep
        else:
            self.w, self.bias, self.wT, self.peep = self._pack(layers, lay, op)
        # Padding columns of A stay zero: only real columns are ever written.
        if self.gemv:  # each layer's output for the next layer's operand (fp32, ping-pong)
            self.hbuf = torch.empty(2, B, D * H, device=self.dev, dtype=torch.float32)
        else:
            self.a0 = torch.zeros(rows, k0, device=self.dev, dtype=op)
            self.a1 = torch.zeros(max(L - 1, 1), rows, k1, device=self.dev, dtype=op)
            self.out = torch.empty(rows, self.w[0].shape[1], device=self.dev, dtype=torch.float32)
        self.y = torch.empty(1, D, B, H, device=self.dev, dtype=self.dt)
        self.hn = torch.empty(L * D, B, H, device=self.dev, dtype=self.dt)
        self.cn = torch.empty(L * D, B, H, device=self.dev, dtype=self.dt) if p.cell == "lstm" else None
        self.out_dtype = self.dt
        self._kernels: dict[tuple, StepKernels] = {}
        # Every layer in one launch (options.gemv_fuse) where every block fits at once; its
        # blocks stage the longest layer's operand.
        self.layers_smem = B * max(k0, k1) * 4
        self.fused = self.gemv and L > 1 and self.options.gemv_fuse is True and self._fits_at_once()
        if self.fused:  # per layer (wT, bias, peep, krow, kin); the grid-wide count
            entries = [[w.data_ptr(), b.data_ptr(), 0 if pp is None else pp.data_ptr(), w.shape[1], self._kin(i)]
                       for i, (w, b, pp) in enumerate(zip(self.wT, self.bias, self.peep))]
            self.table = torch.tensor(entries, dtype=torch.int64, device=self.dev)
            self.count = torch.zeros(1, dtype=torch.int64, device=self.dev)
        self.windows = self._l2_windows()
        # options.gemv_alt: the calls the last one-launch layer has counted (a block adds one each)
        self.calls = torch.zeros(1, dtype=torch.int32, device=self.dev) \
            if not self.fused and gemv_alt_applies(p, self.options) else None

    def _pack(self, layers: Sequence[Sequence[DirectionWeights]], lay: StepLayout, op: Any) -> tuple[list, list, list, list]:
        """(GEMM weights, biases, transposed one-launch weights, peepholes) per layer, on the
        stack's device."""
        import torch

        p = self.problem
        w, biases, wT = [], [], []
        for layer, dirs in enumerate(layers):
            wt, bias = step_weights(p.cell, p.hidden, dirs, lay.k0 if layer == 0 else lay.k1, self.ncol)
            t = torch.from_numpy(wt).to(self.dev)
            if self.split:  # [W_hi | W_lo]
                hi = t.to(torch.bfloat16)
                t = torch.cat([hi, (t - hi.float()).to(torch.bfloat16)], 1)
            if self.gemv:  # rows = the GEMM's columns, each a contiguous run of K values
                wT.append(t.T.to(op).contiguous())
            else:
                w.append(t.to(op).contiguous())
            biases.append(torch.from_numpy(bias).to(self.dev))
        peeps = [[d.P for d in dirs] for dirs in layers]
        peep = [torch.from_numpy(np.concatenate(ps).astype(np.float32)).to(self.dev) if ps[0] is not None else None
                for ps in peeps]
        return w, biases, wT, peep

    def _kin(self, layer: int) -> int:
        """The input length of `layer` (the stack's input, else the layer below's output)."""
        p = self.problem
        return p.input_size if layer == 0 else p.directions * p.hidden

    def _fits_at_once(self) -> bool:
        """Whether every block of the one-launch-for-all-layers kernel can be resident at
        once (its blocks wait for each other at each layer boundary). The host emulation
        runs them all at once anyway."""
        if self.dev.type != "cuda":
            return True
        import torch

        blocks, threads = gemv_blocks(self.problem)
        kernel = self.kernels(self.dt).layers
        per_sm = max_active_blocks(kernel, threads, self.layers_smem)
        return per_sm is not None and per_sm * torch.cuda.get_device_properties(self.dev).multi_processor_count >= blocks

    def _l2_windows(self) -> list[Any]:
        """An L2 access-policy window per one-launch layer (launch.py) where its weights are
        to persist in L2 between calls (options.l2_persist), else None."""
        none = [None] * len(self.wT)
        if not self.gemv or self.fused or self.dev.type != "cuda" or not self.options.l2_persist:
            return none
        sizes = [w.numel() * w.element_size() for w in self.wT]
        set_aside, max_window = l2_set_aside(self.dev.index or 0, sum(sizes))
        return [L2Window(w.data_ptr(), covered, ratio) if covered else None
                for w, (covered, ratio) in zip(self.wT, persisting_windows(sizes, set_aside, max_window,
                                                                           self.options.l2_windows == "front"))]

    def _next_rows(self, layer: int) -> tuple[np.uint64, np.int32]:
        """(weights, row length) a one-launch layer prefetches into L2 once its own loads are
        issued (GV_L2PF bit 1): the next layer's, and with bit 8 the last layer the first
        layer's, which the next call reads first (a stream of one-step calls, e.g. a decoder,
        keeps device memory busy between calls); else none."""
        mask = self.l2pf
        nxt = layer + 1 if layer + 1 < len(self.wT) else (0 if mask & 8 else None)
        if not mask & 1 or nxt is None:
            return np.uint64(0), np.int32(0)
        return pointer(self.wT[nxt]), np.int32(self.wT[nxt].shape[1])

    def kernels(self, x_dtype: Any) -> StepKernels:
        """The kernels for x of type x_dtype and this stack's output type."""
        key = (str(x_dtype), str(self.out_dtype))
        if key not in self._kernels:
            defs = dict(step_defines(self.problem, self.options), GEMV=int(self.gemv), XTYPE=_TYPE_CODES[key[0]],
                        OTYPE=_TYPE_CODES[key[1]])
            self._kernels[key] = _compile(tuple(sorted(defs.items())))
        return self._kernels[key]

    def set_output_targets(self, targets: dict) -> dict:
        """Write outputs straight into the layout and type the engine's next ops want.
        targets: "y" / "hn" / "cn" -> (dtype, numel, strides of the [.., B, H] buffer in
        elements, offset), as GraphExecutor learns them. Returns the targets taken (hn and cn
        only together, with the same strides; one output type for all)."""
        return adopt_targets(self, targets)

    @property
    def products(self) -> str:
        return ("bf16 hi/lo parts" if self.split else self.problem.dtype) + (
            ", all layers in one launch" if self.fused else ", one launch a layer" if self.gemv else "")

    @property
    def weight_bytes(self) -> int:
        """Bytes of every layer's stacked matrix: what a call with an initial state reads (one
        from a zero state reads the input's columns only)."""
        return sum(w.numel() * w.element_size() for w in self.wT)

    @property
    def l2_persisting(self) -> bool:
        """Whether the stack's launches mark weights persisting in L2."""
        return any(w is not None for w in self.windows)

    def __call__(self, x: Any, h0: Any = None, c0: Any = None, seq_lens: Any = None, *, x_rows: Any = None,
                 into: tuple[Any, Any] | None = None) -> tuple[Any, Any, Any]:
        """x_rows (int64 [B], one launch a layer only): x is a table [rows, input] and the
        first layer reads its rows x_rows[b] (an embedding lookup without a launch of its
        own; the caller keeps the indices in range). into: (hn, cn) buffers shaped like
        this stack's to write the states into instead of its own (ping-pong state for a
        caller that feeds them back as the next call's h0, c0)."""
        import torch

        p = self.problem
        H, B, L, D = p.hidden, p.batch, p.layers, p.directions
        if x_rows is not None:
            if not self.gemv:
                raise UnsupportedError("single-step stack: a table lookup runs in the one-launch form only")
            if x.dim() != 2 or x.shape[1] != p.input_size or tuple(x_rows.shape) != (B,) \
                    or x_rows.dtype != torch.int64:
                raise ShapeError(f"single-step stack: x_rows needs a table [rows, {p.input_size}] and int64 [{B}] "
                                 f"indices; got {tuple(x.shape)} and {tuple(x_rows.shape)} {x_rows.dtype}")
        elif x.dim() != 3 or x.shape[0] != 1 or x.shape[1] != B or x.shape[2] != p.input_size:
            raise ShapeError(f"single-step stack planned for x [1, {B}, {p.input_size}]; got {tuple(x.shape)}")
        if str(x.dtype) not in _TYPE_CODES:
            x = x.to(self.dt)
        x = x.contiguous()  # the staging kernel reads x in its own type and rounds it
        hn, cn = (self.hn, self.cn) if into is None else into
        kernels = self.kernels(x.dtype)
        state = (L * D, B, H)
        h0 = None if h0 is None else h0.reshape(state).to(self.dt).contiguous()
        c0 = None if c0 is None or self.cn is None else c0.reshape(state).to(self.dt).contiguous()
        seq = None if seq_lens is None else seq_lens.reshape(B).to(torch.int32).contiguous()
        el = torch.tensor([], dtype=self.dt).element_size()
        slab = D * B * H  # one layer's slice of h0/c0
        y_ds, y_bs = (self.y.stride(1), self.y.stride(2))
        s_gs, s_bs = (hn.stride(0), hn.stride(1))
        if self.fused:
            blocks, threads = gemv_blocks(p)
            args = (pointer(self.table), np.int32(L), pointer(x), pointer(x_rows), pointer(self.hbuf),
                    np.int64(self.hbuf[0].numel()), pointer(h0), pointer(c0), np.int64(slab), pointer(seq),
                    pointer(self.y), pointer(hn), pointer(cn), np.float32(p.clip or 0.0),
                    np.int64(y_ds), np.int64(y_bs), np.int64(s_gs), np.int64(s_bs), pointer(self.count))
            launch(kernels.layers, (blocks,), (threads,), args, self.dev, self.layers_smem, dependent=self.pdl)
            return self.y, hn, cn
        if self.gemv:
            blocks, threads = gemv_blocks(p)
            for layer in range(L):
                last, off = layer == L - 1, layer * slab * el
                kin = self._kin(layer)
                krow = self.wT[layer].shape[1]
                at = lambda t: np.uint64(0 if t is None else t.data_ptr() + off)  # noqa: E731
                out_at = lambda t: np.uint64(0 if t is None else t[layer * D].data_ptr())  # noqa: E731
                args = (pointer(self.wT[layer]), np.int32(krow), np.int32(kin), pointer(self.bias[layer]),
                        pointer(self.peep[layer]), pointer(x) if layer == 0 else np.uint64(0),
                        pointer(x_rows) if layer == 0 else np.uint64(0),
                        np.uint64(0) if layer == 0 else pointer(self.hbuf[(layer - 1) % 2]), at(h0), at(c0),
                        pointer(seq),
                        pointer(self.y) if last else np.uint64(0), out_at(hn), out_at(cn),
                        np.uint64(0) if last else pointer(self.hbuf[layer % 2]), np.float32(p.clip or 0.0),
                        np.int64(y_ds), np.int64(y_bs), np.int64(s_gs), np.int64(s_bs),
                        *self._next_rows(layer))
                if self.calls is not None:  # GV_ALT: the call's parity, counted by the last layer
                    args += (pointer(self.calls), np.int32(last))
                launch(kernels.gemv, (blocks,), (threads,), args, self.dev, B * krow * 4, dependent=self.pdl,
                       window=self.windows[layer])
            return self.y, hn, cn
        total = B * p.input_size + L * slab
        launch(kernels.stage, (min(-(-total // THREADS), 1024),), (THREADS,),
               (pointer(x), pointer(h0), pointer(self.a0), pointer(self.a1)), self.dev)
        for layer in range(L):
            a = self.a0 if layer == 0 else self.a1[layer - 1]
            w = self.w[layer]
            if h0 is None:  # a zero state: the recurrent rows add nothing, so the product leaves them out
                kt = min(round_up(self._kin(layer), 8), a.shape[1])
                a, w = a[:, :kt], w[:kt]
            if self.dev.type != "cuda":  # host emulation: low-precision products are exact in float32
                torch.mm(a.float(), w.float(), out=self.out)
            elif self.split or self.dt != torch.float32:  # low-precision operands, fp32 accumulation and output
                torch.mm(a, w, out_dtype=torch.float32, out=self.out)
            else:
                torch.mm(a, w, out=self.out)
            last = layer == L - 1
            off = layer * slab * el

            def at(t: Any) -> np.uint64:
                return np.uint64(0 if t is None else t.data_ptr() + off)

            def out_at(t: Any) -> np.uint64:  # this layer's first group of hn / cn
                return np.uint64(0 if t is None else t[layer * D].data_ptr())

            launch(kernels.gates, (-(-slab // THREADS),), (THREADS,),
                   (pointer(self.out), pointer(self.bias[layer]), pointer(self.peep[layer]), at(h0), at(c0),
                    pointer(seq), pointer(self.y) if last else np.uint64(0), out_at(hn), out_at(cn),
                    np.uint64(0) if last else pointer(self.a1[layer]), np.float32(p.clip or 0.0),
                    np.int64(y_ds), np.int64(y_bs), np.int64(s_gs), np.int64(s_bs)), self.dev)
        return self.y, hn, cn

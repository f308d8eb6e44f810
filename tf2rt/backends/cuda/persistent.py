"""Compile and launch the persistent recurrent kernel (kernels/persistent_rnn.cu).

Compilation is NVRTC through CuPy at run time (one build per KernelConfig, cached per
process); tensors are PyTorch's, launches go on PyTorch's current stream so they are
captured by torch.cuda.graph like any other kernel.

`PersistentStack` owns every buffer the kernel reads or writes (projections, outputs,
exchange slots, initial states), so its launch descriptors are built once and a captured
CUDA graph replays them unchanged.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import replace
from importlib import resources
from typing import Any, Sequence

import numpy as np

from ...errors import ShapeError, Tf2rtError, UnsupportedError
from .packing import (KERNEL_ORDER, DirectionWeights, pack_rows, round_tf32_pair, split_bf16_bits, to_bf16_bits,
                      to_mma_fragments)
from .plan import DeviceLimits, KernelConfig, Plan, RnnProblem
from .options import CudaOptions, resolve
from .projection import HALF_TF32, Projection, projection_mode
from .views import target_buffers

NDESC = 24
(D_R, D_W, D_RB, D_WB, D_P, D_XP, D_XP_STRIDE, D_H0, D_C0, D_Y, D_Y_TSTRIDE, D_HN, D_CN, D_EX,
 D_IN_EX, D_EX2, D_CTA_BEGIN, D_NCTA, D_REVERSE, D_SEQLEN, D_FEED, D_TIMEOUT_NS, D_SLOTS, D_OSTRIDE) = range(24)

_GATE_MACROS = {
    "lstm": {"input": "GI", "output": "GO", "forget": "GF", "cell": "GC"},
    "gru": {"update": "GZ", "reset": "GR", "hidden": "GH"},
}


def kernel_source(name: str = "persistent_rnn.cu") -> str:
    """The CUDA source of a kernel file (package data), with its `#include "x.cuh"` lines
    replaced by those headers' text (NVRTC then needs no include path)."""
    kernels = resources.files(__package__).joinpath("kernels")
    seen: set[str] = set()

    def expand(file: str) -> str:
        out = []
        for line in kernels.joinpath(file).read_text().splitlines(keepends=True):
            if line.startswith('#include "') and line.rstrip().endswith('.cuh"'):
                header = line.split('"')[1]
                if header not in seen:  # each header once (headers include each other)
                    seen.add(header)
                    out.append(expand(header))
            else:
                out.append(line)
        return "".join(out)

    return expand(name)


def gate_defines() -> dict[str, int]:
    """Gate block indices for the kernel, derived from the gate-order data."""
    out = {}
    for cell, names in _GATE_MACROS.items():
        for gate, macro in names.items():
            out[macro] = KERNEL_ORDER[cell].gates.index(gate)
    return out


@functools.lru_cache(maxsize=64)
def compile_kernel(cfg: KernelConfig, probe: tuple[str, ...] = (), io_types: tuple[int, ...] | None = None,
                   source: str | None = None) -> Any:
    """NVRTC-compile the kernel for `cfg`; returns a cupy RawKernel.

    `probe` names extra -D switches ("NAME" or "NAME=value") of other builds, for
    benchmarks/bench_cuda_rnn.py only. `io_types`: (XTYPE, OTYPE, YTYPE[, PTYPE]), the types x
    is read in, hn/cn written in, y written in and the input projections read in (0 f32, 1 f16,
    2 bf16); None: the stack's own type. `source`: the CUDA text to compile instead of
    kernel_source() (a benchmark's patched copy)."""
    import cupy

    switches = dict(name.split("=", 1) if "=" in name else (name, 1) for name in probe)
    if io_types is not None:
        switches.update(XTYPE=io_types[0], OTYPE=io_types[1], YTYPE=io_types[2])
        if len(io_types) > 3:
            switches["PTYPE"] = io_types[3]
    defines = {**cfg.defines(), **gate_defines(), "NDESC": NDESC, **switches}
    options = ("--std=c++17", "-lineinfo") + tuple(f"-D{k}={v}" for k, v in defines.items())
    # Cooperative launch: the driver refuses a grid that cannot be co-resident instead of
    # letting spinning CTAs wait for CTAs that never start.
    # ("NONCOOP" in probe: a plain launch, for timing the cooperative launch's cost only.)
    code = kernel_source() if source is None else source
    module = cupy.RawModule(code=code, options=options, enable_cooperative_groups="NONCOOP" not in probe)
    kernel = module.get_function("persistent_rnn")
    kernel.max_dynamic_shared_size_bytes = cfg.smem_bytes
    return kernel


def device_limits(device: Any = None) -> DeviceLimits:
    """Read the planner's device facts from the current CUDA device."""
    import cupy
    import torch

    idx = torch.cuda.current_device() if device is None else device
    props = torch.cuda.get_device_properties(idx)
    attrs = cupy.cuda.Device(idx).attributes
    default = DeviceLimits()
    # Double data rate: two transfers per memory clock (kHz) over the bus (bits).
    mem_khz, bus_bits = attrs.get("MemoryClockRate", 0), attrs.get("GlobalMemoryBusWidth", 0)
    return DeviceLimits(
        name=props.name,
        sm_count=props.multi_processor_count,
        smem_per_block=int(attrs.get("MaxSharedMemoryPerBlockOptin", 227 * 1024)),
        compute_capability=(props.major, props.minor),
        clock_ghz=float(attrs.get("ClockRate", 1755000)) / 1e6,
        hbm_bytes_per_s=2.0 * mem_khz * 1e3 * bus_bits / 8 if mem_khz and bus_bits else default.hbm_bytes_per_s,
        l2_size=int(attrs.get("L2CacheSize", 0)) or default.l2_size,
    )


def _clusters_fit(kernel: Any, cfg: KernelConfig) -> bool:
    """Whether every cluster of a clustered build's grid can be resident at once."""
    from .launch import max_active_clusters

    most = max_active_clusters(kernel, cfg.grid, cfg.threads, cfg.smem_bytes)
    return most is not None and most * cfg.bulk >= cfg.grid


class _TypeCodes(dict):
    """torch dtype -> the kernels' type code (0 f32, 1 f16, 2 bf16)."""

    def __init__(self) -> None:
        import torch

        super().__init__({torch.float32: 0, torch.float16: 1, torch.bfloat16: 2})


class _LazyCodes:
    _codes: dict | None = None

    def __contains__(self, k: Any) -> bool:
        return k in self._get()

    def __getitem__(self, k: Any) -> int:
        return self._get()[k]

    def _get(self) -> dict:
        if _LazyCodes._codes is None:
            _LazyCodes._codes = _TypeCodes()
        return _LazyCodes._codes


_TYPE_CODES = _LazyCodes()


def _torch_dtype(name: str) -> Any:
    import torch

    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


class PersistentStack:
    """A stack of recurrent layers (each 1 or 2 directions) run by the persistent kernel.

    layers[l][d] are the fp32 weights of layer l, direction d (ONNX gate order).
    Call with x [T, B, in] (T <= seq_len) and optional h0/c0 [L*D, B, H], seq_lens [B];
    returns (y [T, D, B, H] of the last layer, h_n [L*D, B, H], c_n [L*D, B, H] or None)
    as views of internal buffers, valid until the next call.
    """

    def __init__(self, problem: RnnProblem, plan: Plan, layers: Sequence[Sequence[DirectionWeights]],
                 device: Any = None, probe: tuple[str, ...] = (), source: str | None = None,
                 options: CudaOptions | None = None) -> None:
        import torch

        if plan.engine != "persistent" or plan.kernel is None:
            raise UnsupportedError(f"plan chose {plan.engine!r}, not the persistent kernel")
        self.problem, self.plan = problem, plan
        p, cfg = problem, plan.kernel
        self.dev = torch.device("cuda", torch.cuda.current_device()) if device is None else torch.device(device)
        self.dt = _torch_dtype(p.dtype)
        H, B, T, L, D = p.hidden, p.batch, p.seq_len, p.layers, p.directions
        if len(layers) != L or any(len(dirs) != D for dirs in layers):
            raise ShapeError(f"persistent stack: expected {L} layers x {D} directions of weights")
        self.probe, self.source = tuple(probe), source
        self.kernel = compile_kernel(cfg, self.probe, source=source)
        if cfg.bulk > 1 and self.dev.type == "cuda" and not _clusters_fit(self.kernel, cfg):
            # every CTA must be resident at once (they wait on each other): where the GPU
            # cannot place that many clusters, the same build without clusters
            cfg = replace(cfg, bulk=0)
            self.plan = plan = replace(plan, kernel=cfg)
            self.kernel = compile_kernel(cfg, self.probe, source=source)
        self.cfg = cfg
        # options.pdl True: a launch that follows its input-projection GEMM is a programmatic
        # dependent of it (launch.py; the copies of its weights start while the GEMM finishes).
        # Hopper and later; the first launch the driver refuses turns it off for the stack.
        self.pdl = (resolve(options).pdl is True and self.dev.type == "cuda"
                    and torch.cuda.get_device_capability(self.dev) >= (9, 0))
        self._kernels: dict[tuple[Any, Any], Any] = {}
        self.wavefront = plan.mode == "wavefront"
        self.out_dtype = _torch_dtype(p.dtype)
        f32 = dict(device=self.dev, dtype=torch.float32)
        io = dict(device=self.dev, dtype=self.dt)

        def upload_packed(m: np.ndarray, kp: int) -> Any:
            if cfg.bf16x3:  # per CTA a bf16 hi fragment plane, then the lo plane (BF16X3)
                packed = pack_rows(m, p.gates, H, cfg.upc, "float32", kp)
                hi, lo = split_bf16_bits(packed)
                planes = [to_mma_fragments(x).reshape(packed.shape[0], -1) for x in (hi, lo)]
                bits = np.ascontiguousarray(np.concatenate(planes, axis=1))
                return torch.from_numpy(bits.view(np.int16)).to(self.dev).view(torch.bfloat16)
            if p.dtype == "bfloat16":
                bits = to_mma_fragments(to_bf16_bits(pack_rows(m, p.gates, H, cfg.upc, "float32", kp)))
                return torch.from_numpy(bits.view(np.int16)).to(self.dev).view(torch.bfloat16)
            if cfg.tf32:  # the kernel splits weights into two TF32 parts with a mask (TF32X3)
                m = round_tf32_pair(m)
            packed = pack_rows(m, p.gates, H, cfg.upc, p.dtype, kp)
            if cfg.mma:
                packed = to_mma_fragments(packed, cfg.kstep)
            return torch.from_numpy(packed).to(self.dev)

        self._keep: list[Any] = []  # tensors whose pointers live in descriptors
        self.R = [[upload_packed(w.R, cfg.kp) for w in dirs] for dirs in layers]
        self.rb = [[torch.from_numpy(w.Rb).to(**f32) for w in dirs] for dirs in layers]
        self.P = [[None if w.P is None else torch.from_numpy(w.P).to(**f32) for w in dirs] for dirs in layers]
        # Input projections as one GEMM per layer (all steps, all directions) where the kernel
        # does not project inside: the first layer unless it does, every layer one at a time.
        self.proj: list[Projection | None] = []
        for layer, dirs in enumerate(layers):
            gemm = (layer == 0 and not cfg.fuse_input) or (layer > 0 and not self.wavefront)
            W = np.concatenate([w.W for w in dirs], 0)
            # fp16/bf16: the first layer's GEMM may read fp32 x itself (HALF_TF32: PTYPE=0 below)
            mode = projection_mode(p.dtype, T * B, W.shape[1], W.shape[0], p.bf16_ok, options, half_tf32=layer == 0)
            self.proj.append(Projection(W, np.concatenate([w.Wb for w in dirs], 0), self.dt, T * B, self.dev, mode)
                             if gemm else None)
        # In-kernel input weights: first layer (short sequences), deeper wavefront layers.
        self.Wk = [[None] * D for _ in range(L)]
        self.wbk = [[None] * D for _ in range(L)]
        for layer, dirs in enumerate(layers):
            if (layer == 0 and cfg.fuse_input) or (layer > 0 and self.wavefront):
                self.Wk[layer] = [upload_packed(w.W, cfg.kx_eff) for w in dirs]
                self.wbk[layer] = [torch.from_numpy(w.Wb).to(**f32) for w in dirs]
        if self.wavefront:
            for lw in layers[1:]:
                if lw[0].input_size != H:
                    raise ShapeError("wavefront layers need input size == hidden size")
        G = p.gates
        self.xp = [torch.empty(T * B, D * G * H, device=self.dev, dtype=self.dt if pj is None else pj.out_dtype)
                   for pj in self.proj[:1 if self.wavefront else L]]
        self.y = [torch.empty(T, D, B, H, **io) for _ in range(1 if self.wavefront else L)]
        self.hn = torch.empty(L * D, B, H, **io)
        self.cn = torch.empty(L * D, B, H, **io) if p.cell == "lstm" else None
        self.h0 = torch.zeros(L * D, B, H, **io)
        self.c0 = torch.zeros(L * D, B, H, **io)
        self.seq = torch.full((B,), T, device=self.dev, dtype=torch.int32)
        ngroups = L * D
        self.ex = torch.zeros(ngroups, T, B, H, device=self.dev, dtype=torch.int64)
        lbr0 = p.cell == "gru" and not p.linear_before_reset
        self.ex2 = torch.zeros(ngroups, T, B, H, device=self.dev, dtype=torch.int64) if lbr0 else None
        # Per launch: [epoch, CTAs finished, idle-timeout flag (streaming sessions)]. Each launch
        # has its own epoch, moved on by one per launch, so an exchange buffer's tags alternate
        # parity from one use to the next (packed fp32 words carry only the parity).
        n_launch = 1 if self.wavefront else L
        self.syncs = torch.tensor([[1, 0, 0]] * n_launch, device=self.dev, dtype=torch.int32)
        self.sync = self.syncs[0]
        # Descriptor tables: one per launch, per (has h0, has c0, has seq_lens).
        self._desc: dict[tuple[bool, bool, bool], list[Any]] = {}
        for key in [(a, b, c) for a in (False, True) for b in (False, True) for c in (False, True)]:
            self._desc[key] = self._build_descriptors(*key)

    # -- descriptors ------------------------------------------------------------------
    def _build_descriptors(self, has_h0: bool, has_c0: bool, has_seq: bool) -> list[Any]:
        import torch

        p, cfg = self.problem, self.cfg
        H, B, L, D, G = p.hidden, p.batch, p.layers, p.directions, p.gates
        ptr = lambda t: 0 if t is None else t.data_ptr()  # noqa: E731
        launches = [list(range(L))] if self.wavefront else [[layer] for layer in range(L)]
        tables = []
        for layer_ids in launches:
            rows = []
            for gi, (layer, d) in enumerate([(lay, d) for lay in layer_ids for d in range(D)]):
                g = layer * D + d
                desc = [0] * NDESC
                desc[D_R] = ptr(self.R[layer][d])
                desc[D_RB] = ptr(self.rb[layer][d])
                desc[D_P] = ptr(self.P[layer][d])
                if self.Wk[layer][d] is not None:
                    desc[D_W] = ptr(self.Wk[layer][d])
                    desc[D_WB] = ptr(self.wbk[layer][d])
                    desc[D_IN_EX] = ptr(self.ex[g - 1]) if layer > 0 else 0
                else:
                    xp = self.xp[0 if self.wavefront else layer]
                    desc[D_XP] = xp.data_ptr() + d * G * H * xp.element_size()
                    desc[D_XP_STRIDE] = D * G * H
                last = layer == L - 1
                if (not self.wavefront) or last:
                    y = self.y[0 if self.wavefront else layer]
                    desc[D_Y] = y.data_ptr() + d * y.stride(1) * y.element_size()
                    desc[D_Y_TSTRIDE] = y.stride(0)
                    if last:  # batch strides of the outputs (0: the plain [.., B, H] layout)
                        desc[D_OSTRIDE] = y.stride(2) if B > 1 else 0
                if B > 1:
                    desc[D_OSTRIDE] |= self.hn.stride(1) << 32
                desc[D_H0] = ptr(self.h0[g]) if has_h0 else 0
                desc[D_C0] = ptr(self.c0[g]) if has_c0 else 0
                desc[D_HN] = ptr(self.hn[g])
                desc[D_CN] = ptr(self.cn[g]) if self.cn is not None else 0
                desc[D_EX] = ptr(self.ex[g])
                desc[D_EX2] = ptr(self.ex2[g]) if self.ex2 is not None else 0
                desc[D_CTA_BEGIN] = gi * cfg.ctas_per_group
                desc[D_NCTA] = cfg.ctas_per_group
                desc[D_REVERSE] = int(d == 1 or p.reverse)
                desc[D_SEQLEN] = ptr(self.seq) if has_seq else 0
                desc[D_SLOTS] = p.seq_len
                rows.append(desc)
            tables.append(torch.tensor(rows, dtype=torch.int64).to(self.dev))
        return tables

    def set_output_targets(self, targets: dict) -> dict:
        """Write the last layer's y and hn/cn straight into the layout the engine's next ops
        want (e.g. batch-major), same type as the stack. targets: "y" / "hn" / "cn" ->
        (dtype, numel, strides of the buffer in elements, offset), as GraphExecutor learns
        them. Returns the targets taken (hn and cn only together, with one batch stride)."""
        import torch

        # Another output type: one launch a layer still writes the lower layers' y in the
        # stack's type (the next layer's projection reads it), YTYPE in kernel_for.
        types = (torch.float32, torch.float16, torch.bfloat16)
        ok = {k: t for k, t in targets.items() if t[0] in types and t[2][-1] == 1
              and 0 <= max(t[2]) < 2 ** 31 and (k == "y" or getattr(self, k) is not None)}
        if len({t[0] for t in ok.values()}) > 1:
            ok = {k: t for k, t in ok.items() if t[0] == ok.get("y", next(iter(ok.values())))[0]}
        if "hn" in ok or "cn" in ok:
            same = ("hn" in ok and (self.cn is None or ("cn" in ok and ok["hn"][2][1] == ok["cn"][2][1])))
            if not same:
                ok.pop("hn", None)
                ok.pop("cn", None)
        if not ok:
            return {}
        self.out_dtype = next(iter(ok.values()))[0]
        current = {"y": self.y[-1], "hn": self.hn, "cn": self.cn}
        for key, buf in target_buffers(ok, current, self.out_dtype, self.dev).items():
            if key == "y":
                self.y[-1] = buf
            else:
                setattr(self, key, buf)
        for key in list(self._desc):
            self._desc[key] = self._build_descriptors(*key)
        return ok

    # -- run ------------------------------------------------------------------------------
    def __call__(self, x: Any, h0: Any = None, c0: Any = None, seq_lens: Any = None) -> tuple[Any, Any, Any]:
        import torch

        p, cfg = self.problem, self.cfg
        T, B = x.shape[0], x.shape[1]
        if T > p.seq_len or T < 1 or B != p.batch:
            raise ShapeError(f"persistent stack planned for T<={p.seq_len}, batch {p.batch}; got x {tuple(x.shape)}")
        if h0 is not None:
            self.h0.copy_(h0.reshape(self.h0.shape))
        if c0 is not None:
            self.c0.copy_(c0.reshape(self.c0.shape))
        if seq_lens is not None:
            self.seq.copy_(seq_lens.reshape(B))
        tables = self._desc[(h0 is not None, c0 is not None, seq_lens is not None)]
        stream = self._stream()
        proj0 = None if cfg.fuse_input else self.proj[0]
        if proj0 is not None and proj0.takes_any_layout(x):  # the split projection's staging reads x in any layout
            inp = x
        else:
            # in-kernel input products read any float x, and a HALF_TF32 projection fp32 x
            if not (cfg.fuse_input and x.dtype in _TYPE_CODES) and not (proj0 is not None and proj0.mode == HALF_TF32):
                x = x.to(self.dt, memory_format=torch.contiguous_format)  # one copy: type and layout
            x = x.contiguous()
            inp = x.reshape(T * B, -1)
        x_dt = x.dtype if cfg.fuse_input else self.dt
        for li, table in enumerate(tables):
            if li > 0:  # next layer's input: previous y [T, D, B, H] -> [T*B, D*H]
                prev = self.y[li - 1][:T]
                inp = prev.permute(0, 2, 1, 3).reshape(T * B, -1)
            xin = 0
            if li == 0 and cfg.fuse_input:
                xin = x.data_ptr()  # projected inside the kernel
            else:
                self.proj[li](inp, self.xp[li][: T * B])
            last = li == len(tables) - 1
            kernel = self.kernel_for(x_dt if li == 0 else self.dt, self.out_dtype if last else self.dt,
                                     self.xp[0 if self.wavefront else li].dtype)
            self.launch(table, T, xin, stream, self.syncs[li], kernel, dependent=self.pdl and not xin)
        y = self.y[-1][:T]
        return y, self.hn, self.cn

    def kernel_for(self, x_dtype: Any, y_dtype: Any = None, xp_dtype: Any = None) -> Any:
        """The kernel that reads x in `x_dtype`, writes hn/cn in self.out_dtype and y in
        `y_dtype` (default self.out_dtype), and reads its input projections in `xp_dtype`
        (default the stack's type; fp32 after a HALF_TF32 projection)."""
        y_dtype = self.out_dtype if y_dtype is None else y_dtype
        xp_dtype = self.dt if xp_dtype is None else xp_dtype
        if x_dtype == self.dt and self.out_dtype == self.dt and y_dtype == self.dt and xp_dtype == self.dt:
            return self.kernel
        key = (x_dtype, self.out_dtype, y_dtype, xp_dtype)
        if key not in self._kernels:
            self._kernels[key] = compile_kernel(self.cfg, self.probe, tuple(_TYPE_CODES[t] for t in key), self.source)
        return self._kernels[key]

    def _stream(self) -> Any:
        """The cupy stream of torch's current stream (None on a CPU device: the tests' host
        build of the kernel is called directly)."""
        if self.dev.type != "cuda":
            return None
        import cupy
        import torch

        return cupy.cuda.ExternalStream(torch.cuda.current_stream(self.dev).cuda_stream)

    def launch(self, table: Any, steps: int, xin: int, stream: Any, sync: Any = None, kernel: Any = None,
               dependent: bool = False) -> None:
        """One kernel launch over the groups of descriptor `table` (on a cupy stream; None
        on a CPU device); `sync`: this launch's epoch row (default: the first launch's);
        `kernel`: default the stack's own build; `dependent`: as a programmatic dependent of
        the projection GEMM just ahead (the caller's promise that one is)."""
        cfg = self.cfg
        sync = self.sync if sync is None else sync
        ngroups = table.shape[0]
        kernel = kernel or self.kernel
        grid, block = (ngroups * cfg.ctas_per_group,), (cfg.threads,)
        args = (np.uint64(table.data_ptr()), np.int32(ngroups), np.int32(steps), np.uint64(sync.data_ptr()),
                np.float32(self.problem.clip or 0.0), np.uint64(xin), np.int32(self.problem.input_size))
        if dependent and stream is not None:
            import torch

            from .launch import launch_dependent

            try:
                launch_dependent(kernel, grid, block, args, stream=stream.ptr, shared_mem=cfg.smem_bytes,
                                 cooperative="NONCOOP" not in self.probe)
                return
            except Tf2rtError:
                if torch.cuda.is_current_stream_capturing():
                    raise
                self.pdl = False  # the driver refused this launch form: the ordinary one from now on
        with stream if stream is not None else contextlib.nullcontext():
            kernel(grid, block, args, shared_mem=cfg.smem_bytes)

"""The cuda backend: tf2rt engines on an NVIDIA GPU, recurrent layers in persistent kernels.

Recurrent stacks run in the persistent kernel (recurrent weights kept on chip for the whole
sequence, one tagged h exchange per step) or, where that does not fit or does not pay, in
cuDNN through torch.nn; one-step calls in the single-step stack (one GEMM and one gate
kernel a layer) where that is faster; other ops run as PyTorch calls. After the first call for a set of
input shapes the whole call is captured in a CUDA graph and replayed.

Options: graph (capture a CUDA graph; default True), prefer ("persistent" | "cudnn" |
"torch" | "step" | "row": force one engine for every recurrent stack; "step", the
single-step stack, applies to one-step calls only, "row", the row kernel, to layers whose
recurrent weights fit one SM or a thread-block cluster of up to 8), autotune (time the
persistent kernel against cuDNN, at one step the single-step stack, and the row kernel
where it applies (TF2RT_CUDA_ROW=0: not), on the first call and keep the fastest; default
True), timeout_s (run()
raises instead of waiting longer than this for the GPU; default 60, None: wait forever),
rnn_precision ("fp32" | "fp16" | "bf16": the type the recurrent stacks run in; default:
the type the engine's graph gives them, float32 in fp16 engines too).
Needs PyTorch with CUDA and CuPy (the kernel is compiled at run time with NVRTC).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Mapping

import numpy as np

from ...errors import Tf2rtError, UnsupportedError
from .. import Runner
from .cudagraph import CapturedCall
from .options import CudaOptions


def available() -> bool:
    return not why_unavailable()


def why_unavailable() -> str:
    """Empty when usable, else what is missing."""
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed (pip install torch with CUDA)"
    if not torch.cuda.is_available():
        return "no CUDA GPU is visible to PyTorch"
    try:
        import cupy  # noqa: F401
    except ImportError:
        return "CuPy is not installed (pip install cupy-cuda12x or cupy-cuda13x)"
    return ""


def wait_for(done: Callable[[], bool], timeout_s: float | None, clock: Callable[[], float] = time.perf_counter) -> None:
    """Poll `done` (e.g. a CUDA event's query) until it is true; raise if that takes longer
    than `timeout_s` seconds (None: no limit). A persistent kernel whose step exchange never
    completes would otherwise block the caller forever."""
    if done():
        return
    deadline = None if timeout_s is None else clock() + timeout_s
    while not done():
        if deadline is not None and clock() > deadline:
            raise Tf2rtError(
                f"the GPU did not finish this call within {timeout_s:g} s (runner option timeout_s). "
                "A persistent kernel that never finishes is a bug: please report the engine and input shapes. "
                "The GPU stays busy with it; restart the process to use the GPU again")


class CudaRunner(Runner):
    """An engine loaded on the GPU; run() takes and returns numpy arrays."""

    backend = "cuda"

    def __init__(self, engine: Any, graph: bool = True, prefer: str | None = None, autotune: bool = True,
                 timeout_s: float | None = 60.0, rnn_precision: str | None = None,
                 build_options: CudaOptions | None = None) -> None:
        super().__init__(engine)
        import torch

        from .graph import GraphExecutor
        from .persistent import device_limits

        if prefer not in (None, "persistent", "cudnn", "torch", "step", "row"):
            raise Tf2rtError(f"prefer must be 'persistent', 'cudnn', 'torch', 'step' or 'row', got {prefer!r}")
        if timeout_s is not None and not (isinstance(timeout_s, (int, float)) and timeout_s > 0):
            raise Tf2rtError(f"timeout_s must be a positive number of seconds or None, got {timeout_s!r}")
        if rnn_precision not in (None, "fp32", "fp16", "bf16"):
            raise Tf2rtError(f"rnn_precision must be 'fp32', 'fp16', 'bf16' or None (follow the engine), "
                             f"got {rnn_precision!r}")
        # By default a recurrent stack runs in the type its graph gives it: float32 in fp16
        # engines too (their recurrent ops compute in float32 between Casts). "fp16" runs
        # them on fp16 tensor cores instead: faster, but a recurrence that amplifies rounding
        # drifts further from the engine's reference (measured: 3-layer bidirectional stacks
        # with large weights 0.04-0.05 off where float32 stays within 2e-2).
        self.rnn_precision = rnn_precision
        self.timeout_s = timeout_s
        # Kernel-form switches: the TF2RT_CUDA_* variables as they are now, read once.
        self.build_options = CudaOptions.from_env() if build_options is None else build_options
        self.torch = torch
        self.limits = device_limits()
        rnn_dtype = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}.get(rnn_precision or "")
        self.executor = GraphExecutor(engine.onnx, self.limits, prefer=prefer, rnn_dtype=rnn_dtype,
                                      options=self.build_options)
        self.use_graph, self.autotune, self.prefer = graph, autotune and prefer is None, prefer
        self._state: dict[tuple, dict] = {}  # input shapes -> static buffers and graph
        self._l2_kept = False  # a stack kept the single-step form with weights persisting in L2
        self._l2_held = False  # and this runner holds the context's raised set-aside (_l2_hold)
        self.providers = ["cuda"]

    def check_feeds(self, feeds: Mapping[str, Any]) -> Mapping[str, np.ndarray]:
        """As Runner.check_feeds, and fed Gather indices lie inside their tables (checked
        here, on the host: on the GPU a bad index would be a device fault, not an error)."""
        checked = super().check_feeds(feeds)
        self.executor.check_indices(checked)
        return checked

    # -- execution -----------------------------------------------------------------------
    def _prepare(self, feeds: Mapping[str, np.ndarray]) -> dict:
        torch = self.torch
        key = tuple((n, feeds[n].shape, feeds[n].dtype.str) for n in self.input_names)
        st = self._state.get(key)
        if st is not None:
            return st
        static = {n: torch.from_numpy(np.ascontiguousarray(feeds[n])).cuda() for n in self.input_names}
        with torch.no_grad():
            self.executor(static)  # builds the recurrent stacks for these shapes
            if self.autotune:
                self._tune(static)
            # again, outside any capture: stacks take the output layouts and types the first
            # call learned (the engine's layout ops become views, graph.py)
            self.executor(static)
            torch.cuda.synchronize()
            st = {"inputs": static, "graph": None}
            if self.use_graph:
                # the graph keeps its function: one that holds the executor, not the runner,
                # leaves no cycle, so a dropped runner frees its GPU memory at once
                executor = self.executor
                st["graph"] = CapturedCall(lambda: executor(static))
        self._state[key] = st
        self.providers = ["cuda"] + [
            f"{'+'.join(c['nodes'])}: {' '.join(filter(None, (c.get('engine'), c.get('mode'))))} "
            f"(floor {c.get('floor_us', 0):.1f} us, "
            f"full floor {c.get('full_floor_us', 0):.1f} us)"
            for c in self.executor.describe()]
        return st

    def _tune(self, static: Mapping[str, Any]) -> None:
        """First-run measurement per stack: the candidates of tune_candidates (persistent
        kernel, with and without multicast row copies, cuDNN, for one step the single-step
        stack with and without its weights persisting in L2 and its layers prefetching the
        next layer's weights, the row kernel); keep the fastest. Where a persisting form was
        tried and is not kept (by this stack or an earlier one), L2 is given back as it was.
        Candidates are timed in turns (TUNE_ROUNDS rounds, each candidate's best round kept),
        so a GPU still raising its clocks, or a passing disturbance, does not favour whichever
        candidate happened to be timed last."""
        from .launch import l2_release, l2_set_aside_now
        from .single_step import l2_persist_may_pay

        for chain in self.executor.chains:
            plan = chain.plan
            if plan is None or plan.engine not in ("persistent", "cudnn", "step", "row"):
                continue
            T, B, dt = chain.stack_key
            dtype = {"torch.float16": "float16", "torch.bfloat16": "bfloat16"}.get(dt, "float32")
            options = {}  # candidate -> (captured call, stack, plan, targets taken)
            set_aside = None  # the persisting L2 set-aside before the L2 candidate asked for more
            for engine in tune_candidates(T, chain.has_seq_lens, self.build_options):
                if engine == PERSISTENT_CP:  # only where the persistent build multicasts its rows
                    persistent = options.get("persistent")
                    if persistent is None or not getattr(getattr(persistent[2], "kernel", None), "bulk", 0):
                        continue
                if engine in (STEP_L2, STEP_PF, STEP_L2_PF):  # only where L2 would not keep the weights anyway
                    step = options.get("step")
                    if step is None or not l2_persist_may_pay(step[1].weight_bytes, self.limits.l2_size):
                        continue
                    if engine == STEP_L2:
                        set_aside = l2_set_aside_now()
                    elif engine == STEP_L2_PF and STEP_L2 not in options:
                        continue
                # a step form launched another way shares the plain step stack's packed weights
                same = options["step"][1] if _CANDIDATE_FORMS.get(engine, ("",))[0] == "step" and "step" in options \
                    else None
                candidate = self._candidate(chain, engine, B, T, dtype, same)
                if candidate is not None:
                    options[engine] = candidate
            best = None
            if len(options) >= 2:
                times = _time_in_turns({e: v[0] for e, v in options.items()})
                best = min(times, key=times.get)
                _, chain.stack, chain.plan, chain.taken = options[best]
                chain.targets_of = chain.stack if chain.targets else None  # targets already given
                chain.plan.measured = times
                chain.plan.reason = f"first-run measurement: {best} faster"
            kept_l2 = best in (STEP_L2, STEP_L2_PF)
            if kept_l2 and not self._l2_held and set_aside is not None:
                _l2_hold(set_aside)  # given back when the last runner holding it closes
                self._l2_held = True
            self._l2_kept |= kept_l2
            if set_aside is not None and not self._l2_kept:
                l2_release(set_aside)

    def _candidate(self, chain: Any, engine: str, B: int, T: int, dtype: str, same: Any = None) -> tuple | None:
        """One first-run candidate for `chain`: (captured call, stack, plan, targets taken),
        or None where the form does not apply or cannot be captured. The call includes what
        the engine's outputs cost: a stack that writes them in the layout and type the engine
        wants (output targets, graph.py) against one whose outputs are then copied. same: a
        single-step stack whose packed weights a single-step candidate shares."""
        from .rnn import make_stack

        torch = self.torch
        kind, forced = _CANDIDATE_FORMS.get(engine, (engine, {}))
        build = dataclasses.replace(self.build_options, **forced)
        try:
            stack, p = make_stack(chain.specs, B, T, dtype, self.limits, prefer=kind, options=build, weights_of=same)
        except Tf2rtError:
            return None
        if p.engine != kind or (forced.get("l2_persist") and not stack.l2_persisting):
            return None
        if forced.get("gemv_l2pf") and (not getattr(stack, "gemv", False) or stack.problem.layers < 2):
            return None  # the prefetch is of a next one-launch layer
        if forced.get("gemv_fuse") and not getattr(stack, "fused", False):
            return None  # one layer, another form, or more blocks than fit at once
        if engine == PERSISTENT_CP and getattr(p.kernel, "bulk", 0):
            return None
        spec, dt = chain.specs[0], getattr(torch, dtype)
        x = torch.randn(T, B, spec.weights[0].input_size, device="cuda", dtype=dt)
        # the inputs the engine gives its stack: a one-step stack called from a zero state
        # reads half the weights of one given a state, so the candidates are timed as called
        state = [torch.randn(len(chain.specs) * spec.directions, B, spec.hidden, device="cuda", dtype=dt)
                 if given else None for given in chain.has_states]
        seq = torch.full((B,), T, dtype=torch.int32, device="cuda") if chain.has_seq_lens else None
        targets = dict(chain.targets)
        try:
            taken = stack.set_output_targets(targets) if targets and hasattr(stack, "set_output_targets") else {}

            def call(stack=stack, x=x, targets=targets, taken=taken):
                out = dict(zip(("y", "hn", "cn"), stack(x, *state, seq)))
                return [out[k].to(t[0], memory_format=torch.contiguous_format)
                        for k, t in targets.items() if k not in taken and out.get(k) is not None]

            captured = CapturedCall(call)
        except Exception:  # e.g. a form cuDNN refuses: keep the others
            return None
        return captured, stack, p, tuple(sorted(taken))

    def _execute(self, checked: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self._run_device(checked)
        done = self.torch.cuda.Event()
        done.record()
        wait_for(done.query, self.timeout_s)
        return {n: out[n].float().cpu().numpy().astype(self._out_dtype(n)) if out[n].dtype == self.torch.bfloat16
                else out[n].cpu().numpy() for n in self.output_names}

    def _out_dtype(self, name: str) -> Any:
        return next(s.np_dtype for s in self.outputs if s.name == name)

    def _run_device(self, feeds: Mapping[str, np.ndarray]) -> dict[str, Any]:
        torch = self.torch
        st = self._prepare(feeds)
        with torch.no_grad():
            for n in self.input_names:
                st["inputs"][n].copy_(torch.from_numpy(np.ascontiguousarray(feeds[n])), non_blocking=False)
            if st["graph"] is not None:
                return st["graph"]()
            return self.executor(st["inputs"])

    # -- introspection and timing ------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Which engine runs each recurrent stack and why (after the first run)."""
        return {"device": self.limits.name, "graph": self.use_graph, "recurrent": self.executor.describe()}

    def benchmark(self, feeds: Mapping[str, Any], iterations: int = 100, warmup: int = 10) -> list[float]:
        """Seconds per call, GPU time by CUDA events around the graph replay (inputs on device)."""
        torch = self.torch
        checked = self.check_feeds(feeds)
        st = self._prepare(checked)
        self._run_device(checked)

        def call() -> None:
            if st["graph"] is not None:
                st["graph"]()
            else:
                with torch.no_grad():
                    self.executor(st["inputs"])

        return [us * 1e-6 for us in _time_each(call, iterations, warmup)]

    def _stack_dtype(self) -> str:
        """The type the recurrent stacks run in (rnn_precision, else the engine's)."""
        return {"fp16": "float16", "bf16": "bfloat16"}.get(self.rnn_precision or self.engine.precision, "float32")

    def _chain_specs(self, stack: int, use: str) -> Any:
        chains = self.executor.chains
        if not chains:
            raise UnsupportedError(f"this engine has no recurrent layers to {use}")
        if not 0 <= stack < len(chains):
            raise Tf2rtError(f"stack must be in [0, {len(chains)}), got {stack}")
        return chains[stack].specs

    def stream_session(self, batch: int = 1, stack: int = 0, timeout_s: float = 5.0) -> Any:
        """A streaming session (resident.StreamSession) for recurrent stack number `stack`
        of this engine: `step(x_t)` takes that stack's input vectors [batch, input] and
        returns its last layer's h_t [batch, hidden], one kernel launch for the whole
        stream. The engine's other ops (e.g. an embedding or a dense head) are not part of
        the session. Unidirectional forward stacks that fit on chip, batch <= 8."""
        from .resident import StreamSession

        specs = self._chain_specs(stack, "stream")
        return StreamSession(specs, batch, self._stack_dtype(), self.limits, timeout_s, self.build_options)

    def decoder(self, table: Any, head_w: Any, head_b: Any, batch: int = 1, stack: int = 0,
                steps_per_launch: int = 32) -> Any:
        """A token decoder (decode.DecodeLoop) around recurrent stack number `stack`: the
        embedding `table` [rows, input] feeds it, the dense head (`head_w` [hidden, V],
        `head_b` [V]) reads its last layer, and `generate(prompt, length, ...)` feeds a
        prompt and chooses `length` tokens with everything on the GPU, `steps_per_launch`
        tokens per CUDA-graph launch."""
        from .decode import DecodeLoop

        specs = self._chain_specs(stack, "decode with")
        return DecodeLoop(specs, table, head_w, head_b, batch, self._stack_dtype(), self.limits, self.build_options,
                          steps_per_launch)

    def floor_us(self) -> float:
        """Sum of the hardware-floor estimates of the persistent stacks (docs/cuda.md)."""
        return sum(c.plan.floor_us for c in self.executor.chains if c.plan is not None and c.plan.engine == "persistent")

    def full_floor_us(self) -> float:
        """Sum of the full hardware floors (launch, operand traffic and math included) of
        the recurrent stacks, whichever engine runs them."""
        return sum(c.plan.full_floor_us for c in self.executor.chains if c.plan is not None)

    def close(self) -> None:
        """Free the runner's graphs and stacks; where it kept weights persisting in L2 and is
        the last open runner doing so, give the context's L2 back as it was before."""
        self._state.clear()
        self.executor = None  # type: ignore[assignment]
        if self._l2_held:
            self._l2_held = False
            _l2_drop()


#: Runners holding a raised persisting-L2 set-aside, and the set-aside before the first.
_L2_HOLD: dict[str, Any] = {"runners": 0, "before": None}


def _l2_hold(before: int) -> None:
    if _L2_HOLD["runners"] == 0:
        _L2_HOLD["before"] = before
    _L2_HOLD["runners"] += 1


def _l2_drop() -> None:
    from .launch import l2_release

    _L2_HOLD["runners"] = max(0, _L2_HOLD["runners"] - 1)
    if _L2_HOLD["runners"] == 0 and _L2_HOLD["before"] is not None:
        l2_release(_L2_HOLD["before"])
        _L2_HOLD["before"] = None


def _time_each(fn: Any, iterations: int, warmup: int) -> list[float]:
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(iterations):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        out.append(a.elapsed_time(b) * 1e3)
    return out


#: Rounds of the first-run measurement, and replays a candidate gets in each.
TUNE_ROUNDS, TUNE_REPS = 3, 5
#: The first-run candidate "single-step stack with its weights persisting in L2".
STEP_L2 = "step+l2"
#: The first-run candidate "persistent kernel whose large-batch step copies its rows with
#: 16-byte cp.async" (against the planned multicast bulk copies, BULK).
PERSISTENT_CP = "persistent+cp.async"
#: The first-run candidates "single-step stack whose one-launch layers prefetch the next
#: layer's weights into L2" (kernels/single_step.cu GV_L2PF, mask STEP_PF_MASK), without and
#: with weights persisting in L2: where the weights do not stay in L2 between calls. Mask 5
#: (the next layer's rows, own loads streaming) was the fastest on an H100 for fp32 H=1024
#: two-layer stacks: LSTM 30.5 µs against 34.8 plain and 31.1 persisting, GRU 24.6 against
#: 28.8 / 25.6; fp16 kept the persisting form with it or without (19.3-19.8 µs)
#: (benchmarks/results/cuda_step_l2pf_h100.md).
STEP_PF, STEP_L2_PF = "step+pf", "step+l2+pf"
STEP_PF_MASK = "5"
#: The first-run candidate "single-step stack with all its one-launch layers in one launch"
#: (kernels/single_step.cu step_gemv_layers; options.gemv_fuse): stacks of two or more layers.
STEP_FUSE = "step+fuse"
#: Whether the first call times STEP_FUSE where options.gemv_fuse is unset. Off: on an H100 the
#: form passed its GPU tests but was no faster than the L2 forms the first call already times
#: (benchmarks/results/cuda_step_fuse_h100.md; gpu_check.sh fuse times it again), so timing it
#: would only lengthen first calls. TF2RT_CUDA_GEMV_FUSE=1 uses it wherever it fits.
FUSE_CANDIDATE = False
#: Candidates that are another engine's stack with build options forced: (engine, options).
#: STEP_L2's lines stay in L2 while the plain form is timed in turn: a small bias its way,
#: since 64 MB streamed in one order keeps little.
_CANDIDATE_FORMS = {STEP_L2: ("step", {"l2_persist": True}), PERSISTENT_CP: ("persistent", {"bulk": "0"}),
                    STEP_PF: ("step", {"gemv_l2pf": STEP_PF_MASK}),
                    STEP_L2_PF: ("step", {"l2_persist": True, "gemv_l2pf": STEP_PF_MASK}),
                    STEP_FUSE: ("step", {"gemv_fuse": True, "l2_persist": False})}


def tune_candidates(T: int, has_seq_lens: bool, options: CudaOptions) -> list[str]:
    """What the first-run measurement times for a stack of T steps: the persistent kernel,
    for longer sequences (options.bulk unset) also with its rows copied the plain way where
    its build multicasts them (the runner drops it elsewhere); cuDNN (not with per-sequence
    lengths, which cuDNN in a graph cannot take); for one step the single-step stack, and
    (options.l2_persist unset) that stack with its weights persisting in L2, and
    (options.gemv_l2pf unset) with its layers prefetching the next layer's weights into L2,
    alone and with the persisting form, which the runner drops where L2 would keep the
    weights anyway or the stack has no next one-launch layer, and (options.gemv_fuse unset,
    FUSE_CANDIDATE on) with all its one-launch layers in one launch (dropped for one layer); for longer
    sequences the row kernel (options.row)."""
    out = ["persistent"] + ([PERSISTENT_CP] if T > 1 and not options.bulk else [])
    out += [] if has_seq_lens else ["cudnn"]
    if T == 1:
        out += ["step"] + ([STEP_L2] if options.l2_persist is None else [])
        if not options.gemv_l2pf:  # the user's mask is the only one timed
            out += [STEP_PF] + ([STEP_L2_PF] if options.l2_persist is None else [])
        if options.gemv_fuse is None and FUSE_CANDIDATE:
            out.append(STEP_FUSE)
    elif options.row:
        out.append("row")
    return out


def _time_in_turns(calls: Mapping[str, Any], rounds: int = TUNE_ROUNDS, reps: int = TUNE_REPS) -> dict[str, float]:
    """Microseconds of each captured call: the median of `reps` replays, taken in turns
    over `rounds` rounds (one warm-up each), the best round kept."""
    best: dict[str, float] = {}
    for _ in range(rounds):
        for name, fn in calls.items():
            us = float(np.median(_time_each(fn, reps, 1)))
            best[name] = min(best.get(name, us), us)
    return best


def load(engine: Any, **options: Any) -> CudaRunner:
    allowed = {"graph", "prefer", "autotune", "timeout_s", "rnn_precision"}
    bad = set(options) - allowed
    if bad:
        raise Tf2rtError(f"unknown cuda backend option(s) {', '.join(sorted(bad))}; use {', '.join(sorted(allowed))}")
    if not available():
        raise UnsupportedError(f"the cuda backend is not available here: {why_unavailable()}")
    return CudaRunner(engine, **options)

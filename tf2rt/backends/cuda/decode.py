"""Token-by-token decoding with the whole model on the device.

A decoder of the char-RNN kind is: embedding row of the current token -> recurrent stack,
one step with its state -> dense head -> next token (greedy, or sampled with a temperature
and top-k) -> embedding row of that token, and so on. Run from the host, every token costs
at least one launch and a round trip for the choice. `DecodeLoop` keeps the token on the
device: one step is

    the first layer reading its x straight from the embedding table at the token's row
    (single-step stack, one launch a layer; kernels/single_step.cu `xrow`), the deeper
    layers, then one `head_pick` launch (kernels/decode.cu) that computes the logits and
    writes the next token where the first layer reads it,

and `steps_per_launch` such steps are captured in ONE CUDA graph (the recurrent state
alternates between two buffers, so no copies), so a launch carries many tokens. A prompt
is fed through the same steps: a forced token overrides the pick for the next step.
Sampling draws v with probability softmax(logits / temperature) (top-k: among the k
largest) by the Gumbel-max identity, from uniform noise the host generator fills before
each launch (torch.Generator seeded by `seed`).

Stacks the one-launch form cannot run (larger batches, other recurrent forms), or a CPU
torch device, use the same loop with a table lookup, the planner's stack, state copies and
the head in torch ops (no graph on a CPU) — the form the tests run without a GPU.
"""

from __future__ import annotations

import functools
import warnings
import weakref
from dataclasses import replace
from typing import Any, Sequence

import numpy as np

from ...errors import ShapeError, Tf2rtError, UnsupportedError
from .persistent import device_limits, kernel_source
from .plan import DeviceLimits
from .fallback import _torch_dtype
from .launch import launch, pointer
from .options import resolve
from .rnn import RnnNodeSpec, copy_state, make_stack, problem_for
from .resident_decode import ResidentDecoder, ResidentLaunchError, resident_plan
from .single_step import _TYPE_CODES, SingleStepStack

DECODE_THREADS = 256
#: head_pick computes a row's logits in ONE block (right for character and small-token
#: vocabularies); larger vocabularies take the torch head (a GEMM over all SMs, then argmax).
HEAD_KERNEL_MAX_V = 4096
#: Tokens a resident launch runs at most, and the sampling noise a launch may hold (values).
RESIDENT_CHUNK = 4096
RESIDENT_NOISE_VALUES = 1 << 22


@functools.lru_cache(maxsize=8)
def _head_kernel(ytype: int) -> Any:
    import cupy

    options = ("--std=c++17", f"-DYTYPE={ytype}", f"-DDECODE_THREADS={DECODE_THREADS}")
    return cupy.RawModule(code=kernel_source("decode.cu"), options=options).get_function("head_pick")


class DecodeLoop:
    """Greedy or sampled decoding of `batch` sequences at once on one device.

    specs: the recurrent layers (one forward stack); table [rows, input]: the embedding;
    head_w [hidden, V], head_b [V]: logits = h_t @ head_w + head_b. The chosen token indexes
    the table, so V <= rows. Steps run in whole launches; `logits` holds the logits [batch, V]
    of the last step run.

    >>> loop = runner.decoder(table, head_w, head_b)          # doctest: +SKIP
    >>> loop.generate(prompt_ids, 200, greedy=True)            # [batch, 200] token ids
    """

    def __init__(self, specs: Sequence[RnnNodeSpec], table: np.ndarray, head_w: np.ndarray, head_b: np.ndarray,
                 batch: int = 1, dtype: str = "float32", limits: DeviceLimits | None = None, options: Any = None,
                 steps_per_launch: int = 32, device: Any = None, fused: bool = True,
                 resident: bool | None = None) -> None:
        import torch

        self.torch = torch
        problem = problem_for(specs, batch, 1, dtype)
        if problem.directions != 1 or problem.reverse:
            raise UnsupportedError("decoding runs forward, unidirectional recurrent stacks only (a reverse "
                                   "direction needs the whole sequence)")
        table = np.asarray(table, np.float32)
        head_w, head_b = np.asarray(head_w, np.float32), np.asarray(head_b, np.float32).reshape(-1)
        H, E = problem.hidden, problem.input_size
        if table.ndim != 2 or table.shape[1] != E:
            raise ShapeError(f"the embedding table must be [rows, {E}] (the stack's input size); got {table.shape}")
        if head_w.ndim != 2 or head_w.shape[0] != H or head_b.shape != (head_w.shape[1],):
            raise ShapeError(f"the head must be a weight [{H}, V] and a bias [V]; got {head_w.shape} and {head_b.shape}")
        self.rows, self.vocab = table.shape[0], head_w.shape[1]
        if self.vocab > self.rows:
            raise ShapeError(f"the head chooses among {self.vocab} tokens but the embedding table has {self.rows} rows")
        if batch < 1:
            raise Tf2rtError(f"batch must be >= 1, got {batch}")
        if steps_per_launch < 2 or steps_per_launch % 2:
            raise Tf2rtError(f"steps_per_launch must be an even number >= 2, got {steps_per_launch}")
        self.batch, self.K, self.problem = batch, int(steps_per_launch), problem
        self.dev = torch.device("cuda", torch.cuda.current_device()) if device is None else torch.device(device)
        self.on_gpu = self.dev.type == "cuda"
        if limits is None:
            limits = device_limits(self.dev.index) if self.on_gpu else DeviceLimits()
        # Dependent launches unless the options say otherwise: on an H100 they made generation
        # 8-9% faster (benchmarks/results/cuda_charrnn_h100.md) with the same tokens.
        self.options = resolve(options)
        if self.options.pdl is None:
            self.options = replace(self.options, pdl=True)
        self.stack, self.plan = make_stack(specs, batch, 1, dtype, limits, prefer="step", torch_device=self.dev,
                                           options=self.options)
        # fused=False keeps the torch-op form on a GPU too (a reference for the kernels).
        self.fused = fused and self.on_gpu and isinstance(self.stack, SingleStepStack) and self.stack.gemv
        self.head_kernel = fused and self.on_gpu and head_w.shape[1] <= HEAD_KERNEL_MAX_V
        dev, B, L = self.dev, batch, problem.layers
        self.table = torch.from_numpy(table).to(dev)
        self.wT = torch.from_numpy(np.ascontiguousarray(head_w.T)).to(dev)  # [V, H]; the torch head uses wT.t()
        self.b = torch.from_numpy(head_b).to(dev)
        # Many tokens a launch (resident_decode.py) where the stack and head fit the GPU at once.
        self.resident = None
        want = self.options.resident if resident is None else resident
        if want is None:  # the default on a GPU: 3.9x cuDNN at 2 x LSTM 512 (docs/cuda.md)
            want = self.on_gpu
        if want and fused and (self.on_gpu or resident):
            plan = resident_plan(problem, self.vocab, limits.sm_count, limits.smem_per_block, self.rows)
            if plan is not None:
                head_kv = torch.from_numpy(np.ascontiguousarray(head_w)).to(dev)  # [H, V]: the kernel's order
                self.resident = ResidentDecoder(problem, [s.weights for s in specs], self.table, head_kv, self.b,
                                                plan, dev)
        sdt = _torch_dtype(dtype)  # the stack's own type
        shape = (L, B, H)
        self.h = [torch.zeros(shape, device=dev, dtype=sdt) for _ in range(2)]
        self.c = [torch.zeros(shape, device=dev, dtype=sdt) for _ in range(2)] if problem.cell == "lstm" else None
        self.x = torch.zeros(1, B, E, device=dev, dtype=torch.float32)  # table rows (unfused lookup)
        self.tok = torch.zeros(B, device=dev, dtype=torch.int64)
        self.forced = torch.full((self.K, B), -1, device=dev, dtype=torch.int64)
        self.picked = torch.zeros(self.K, B, device=dev, dtype=torch.int64)
        self.uniform: Any = None  # [K, B, V] noise, allocated by the first sampled call
        self.logits = torch.zeros(B, self.vocab, device=dev, dtype=torch.float32)
        self._graphs: dict[tuple, Any] = {}

    def describe(self) -> dict[str, Any]:
        if self.resident is not None:
            rp = self.resident.plan
            return {"stack": "resident", "ctas": f"{self.problem.layers} x {rp.ncta} layer CTAs of {rp.upc} units "
                    f"and a head CTA", "steps_per_launch": RESIDENT_CHUNK, "device": str(self.dev)}
        return {"stack": self.plan.engine, "fused_lookup": self.fused, "steps_per_launch": self.K,
                "head": "head_pick kernel" if self.head_kernel else "torch ops", "device": str(self.dev)}

    # -- one step ----------------------------------------------------------------------
    def _step(self, j: int, mode: tuple) -> None:
        torch = self.torch
        cur, nxt = j % 2, (j + 1) % 2
        c0 = None if self.c is None else self.c[cur]
        if self.fused:
            y, _, _ = self.stack(self.table, self.h[cur], c0, x_rows=self.tok,
                                 into=(self.h[nxt], None if self.c is None else self.c[nxt]))
        else:
            torch.index_select(self.table, 0, self.tok, out=self.x[0])
            y, hn, cn = self.stack(self.x, self.h[cur], c0)
            self.h[nxt].copy_(hn.reshape(self.h[nxt].shape))
            if self.c is not None:
                self.c[nxt].copy_(cn.reshape(self.c[nxt].shape))
        y = y.reshape(-1, self.batch, self.problem.hidden)[-1]  # last step, [B, H]
        if self.head_kernel:
            self._pick_kernel(y, j, mode)
        else:
            self._pick_torch(y, j, mode)

    def _pick_kernel(self, y: Any, j: int, mode: tuple) -> None:
        greedy, inv_temp, top_k = mode
        if y.stride(1) != 1:
            y = y.contiguous()
        kernel = _head_kernel(_TYPE_CODES[str(y.dtype)])
        launch(kernel, (self.batch,), (DECODE_THREADS,),
               (pointer(y), np.int64(y.stride(0)), np.int32(self.problem.hidden), pointer(self.wT), pointer(self.b),
                np.int32(self.vocab), np.uint64(0) if greedy else pointer(self.uniform[j]), np.float32(inv_temp),
                np.int32(top_k), pointer(self.forced[j]), pointer(self.tok), pointer(self.picked[j]), pointer(self.logits)),
               self.dev, shared_mem=self.problem.hidden * 4)

    def _pick_torch(self, y: Any, j: int, mode: tuple) -> None:
        torch = self.torch
        greedy, inv_temp, top_k = mode
        z = torch.addmm(self.b, y.float(), self.wT.t())
        self.logits.copy_(z)
        if 0 < top_k < self.vocab:
            cut = torch.topk(z, top_k, dim=1).values[:, -1:]
            z = torch.where(z >= cut, z, torch.full_like(z, -float("inf")))
        if not greedy:
            z = z * inv_temp - torch.log(-torch.log(self.uniform[j]))
        pick = torch.argmax(z, dim=1)  # the first of equal maxima, as numpy
        self.picked[j].copy_(pick)
        f = self.forced[j]
        self.tok.copy_(torch.where(f >= 0, f, pick))

    def _launch_fn(self, mode: tuple) -> Any:
        """The K steps of one launch: a CUDA graph on a GPU, a plain call on a CPU."""
        if mode not in self._graphs:
            me = weakref.ref(self)  # the graph keeps its function: no cycle back to the decoder

            def steps() -> None:
                dec = me()
                for j in range(dec.K):
                    dec._step(j, mode)

            if self.on_gpu:
                from .cudagraph import CapturedCall

                with self.torch.no_grad():
                    steps = CapturedCall(steps)
            self._graphs[mode] = steps
        return self._graphs[mode]

    # -- generation ------------------------------------------------------------------------
    def generate(self, prompt: Any, length: int, *, greedy: bool = False, temperature: float = 1.0,
                 top_k: int | None = None, seed: int | None = None, h0: Any = None, c0: Any = None) -> np.ndarray:
        """Feed `prompt` (token ids [batch, P] or [P] at batch 1, P >= 1) from state (h0, c0)
        (zeros when None; [layers, batch, hidden]) and return the next `length` tokens of
        each row, [batch, length] (int64)."""
        torch = self.torch
        prompt = np.asarray(prompt)
        if prompt.ndim == 1 and self.batch == 1:
            prompt = prompt[None]
        if prompt.ndim != 2 or prompt.shape[0] != self.batch or prompt.shape[1] < 1:
            raise ShapeError(f"the prompt must be token ids [{self.batch}, P] with P >= 1; got shape {prompt.shape}")
        if not np.issubdtype(prompt.dtype, np.integer):
            raise Tf2rtError(f"the prompt must hold integer token ids, got {prompt.dtype}")
        if prompt.min() < 0 or prompt.max() >= self.rows:
            bad = int(prompt.min() if prompt.min() < 0 else prompt.max())
            raise Tf2rtError(f"token id {bad} is outside the embedding table's {self.rows} rows")
        if length < 0:
            raise Tf2rtError(f"length must be >= 0, got {length}")
        if not greedy and not temperature > 0:
            raise Tf2rtError(f"temperature must be > 0, got {temperature}")
        if top_k is not None and top_k < 0:
            raise Tf2rtError(f"top_k must be >= 0, got {top_k}")
        B, P, K = self.batch, prompt.shape[1], self.K
        if length == 0:
            return np.zeros((B, 0), np.int64)
        mode = (bool(greedy), 1.0 if greedy else 1.0 / float(temperature), int(top_k or 0))
        if self.resident is not None:
            try:
                return self._generate_resident(prompt, length, mode, seed, h0, c0)
            except ResidentLaunchError as e:  # refused, or a step timed out: this call and later ones a launch a layer
                warnings.warn(f"resident decoding unavailable ({e}); decoding with a launch a layer", stacklevel=2)
                self.resident = None
        if not greedy and self.uniform is None:
            self.uniform = torch.zeros(K, B, self.vocab, device=self.dev, dtype=torch.float32)
        run = self._launch_fn(mode)  # captured before the buffers below are set
        steps = P - 1 + length  # the last token is chosen, never fed
        launches = -(-steps // K)
        forced = _forced_tokens(prompt, launches * K)
        gen = None if greedy else self._generator(seed)
        with torch.no_grad():
            self._set_state(h0, c0)
            self.tok.copy_(torch.from_numpy(prompt[:, 0].astype(np.int64)))
            picks = torch.empty(launches, K, B, dtype=torch.int64, pin_memory=self.on_gpu)
            forced_dev = torch.from_numpy(forced).to(self.dev).reshape(launches, K, B)
            for r in range(launches):
                self.forced.copy_(forced_dev[r])
                if gen is not None:
                    self.uniform.uniform_(generator=gen)
                run()
                picks[r].copy_(self.picked, non_blocking=self.on_gpu)
            if self.on_gpu:
                torch.cuda.current_stream(self.dev).synchronize()
        return picks.reshape(launches * K, B)[P - 1:P - 1 + length].T.numpy().copy()

    def _generate_resident(self, prompt: np.ndarray, length: int, mode: tuple, seed: int | None, h0: Any,
                           c0: Any) -> np.ndarray:
        """generate() in launches of up to RESIDENT_CHUNK tokens each (resident_decode.py)."""
        torch = self.torch
        greedy, inv_temp, top_k = mode
        B, P, V = self.batch, prompt.shape[1], self.vocab
        steps = P - 1 + length
        forced = _forced_tokens(prompt, steps)
        gen = uniform = None
        chunk = RESIDENT_CHUNK
        if not greedy:  # a launch's noise is bounded too
            chunk = min(RESIDENT_CHUNK, max(64, RESIDENT_NOISE_VALUES // (B * V)))
            gen = self._generator(seed)
            uniform = torch.empty(chunk, B, V, device=self.dev, dtype=torch.float32)
        with torch.no_grad():
            self._set_state(h0, c0)
            self.tok.copy_(torch.from_numpy(prompt[:, 0].astype(np.int64)))
            forced_dev = torch.from_numpy(forced).to(self.dev)
            picked = torch.empty(steps, B, device=self.dev, dtype=torch.int64)
            c = None if self.c is None else self.c[0]
            for s0 in range(0, steps, chunk):
                n = min(chunk, steps - s0)
                if uniform is not None:
                    uniform.uniform_(generator=gen)
                try:
                    self.resident.run(self.tok, self.h[0], c, n, picked[s0:], forced_dev[s0:], uniform, inv_temp,
                                      top_k)
                except Exception as e:  # noqa: BLE001 - a launch the driver refused (nothing ran)
                    if s0:
                        raise
                    raise ResidentLaunchError(f"{type(e).__name__}: {e}") from e
            if self.on_gpu:
                torch.cuda.current_stream(self.dev).synchronize()
            self.resident.check()
            self.logits.copy_(self.resident.logits)
        return picked[P - 1:].T.cpu().numpy().copy()

    def _generator(self, seed: int | None) -> Any:
        """The sampling noise's generator on the decoder's device, seeded (or from entropy)."""
        gen = self.torch.Generator(device=self.dev)
        gen.manual_seed(int(seed) if seed is not None else int(np.random.SeedSequence().entropy % (1 << 63)))
        return gen

    def _set_state(self, h0: Any, c0: Any) -> None:
        for name, v, dst in (("h0", h0, self.h[0]), ("c0", c0, None if self.c is None else self.c[0])):
            if dst is None:
                continue
            if v is None:
                dst.zero_()
            else:
                copy_state(name, v, dst, tuple(dst.shape))


def _forced_tokens(prompt: np.ndarray, steps: int) -> np.ndarray:
    """[steps, batch] tokens that override the pick fed to the next step: the prompt's after
    its first, then -1 (free)."""
    forced = np.full((steps, prompt.shape[0]), -1, np.int64)
    forced[:prompt.shape[1] - 1] = prompt[:, 1:].T
    return forced

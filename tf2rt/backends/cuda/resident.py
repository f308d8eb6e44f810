"""Streaming sessions: one resident launch of the persistent kernel serves step after step.

Token-by-token generation feeds one step at a time and needs its output before it can form
the next input. Launching even a CUDA graph per step costs about 8-9 us of host work on
the machines measured (benchmarks/results/cuda_rnn_launch_*.json), more than the step
itself. A `StreamSession` launches the kernel once (RESIDENT build) and then talks to it
through pinned host memory:

- the host writes x_t as 64-bit words {fp32 bits, tag} (tag = epoch + t); CTAs of the
  first layer each poll their share of those words and relay them into an on-device x
  exchange, so every host word crosses PCIe once;
- the last layer writes h_t back the same way, and `step()` returns when every word of it
  carries the step's tag.

Weights and state stay on chip for the whole session. While a session is open the kernel
occupies one CTA on most SMs: other GPU work only gets the SMs left over, and anything
that waits for the whole device (e.g. `torch.cuda.synchronize()`) waits for the session
to close. Sessions stop themselves after `timeout_s` without input.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Sequence

import numpy as np

from ...errors import ShapeError, Tf2rtError, UnsupportedError
from .options import CudaOptions, resolve
from .plan import STATIC_SMEM_RESERVE, DeviceLimits, make_plan
from .rnn import RnnNodeSpec, copy_state, problem_for

TAGMASK = 0x7FFFFFFF
STOPBIT = 0x80000000
#: Steps one session may run (the kernel's loop bound).
MAX_STEPS = 1 << 30


class StreamSession:
    """A unidirectional recurrent stack (one wavefront launch) run one step per call.

    >>> with StreamSession(specs, batch=1, dtype="float16") as s:   # doctest: +SKIP
    ...     for x in inputs:                                            # x: [batch, input]
    ...         y = s.step(x)                                           # y: [batch, hidden]

    `open(h0, c0)` starts a session (optional initial states [layers, batch, hidden]);
    `close()` stops it and returns the final (h, c) as numpy arrays (c is None for GRU/RNN).
    A closed session can be opened again.
    """

    def __init__(self, specs: Sequence[RnnNodeSpec], batch: int, dtype: str = "float32",
                 limits: DeviceLimits | None = None, timeout_s: float = 5.0,
                 options: CudaOptions | None = None) -> None:
        import torch

        from .persistent import PersistentStack, device_limits

        self.torch = torch
        limits = limits or device_limits()
        problem = problem_for(specs, batch, 2, dtype)  # two ring slots per exchange
        if problem.directions != 1 or problem.reverse:
            raise UnsupportedError("a streaming session runs forward, unidirectional stacks only "
                                   "(a reverse direction needs the whole sequence)")
        options = resolve(options)
        plan = make_plan(problem, limits, prefer="persistent", options=options)
        if plan.engine != "persistent" or plan.kernel is None:
            raise UnsupportedError(f"a streaming session needs the persistent kernel, which cannot run this "
                                   f"stack: {plan.reason}")
        k = plan.kernel
        if problem.layers > 1 and plan.mode != "wavefront":
            raise UnsupportedError("a streaming session needs all layers' weights on chip at once (one wavefront "
                                   "launch); this stack is too large for that")
        if not k.two_barrier or not k.fuse_input:
            raise UnsupportedError("a streaming session needs batch <= 8, GRU with linear_before_reset=1 and an "
                                   "input small enough to project on chip")
        cfg = replace(k, resident=True, split_x=False)
        if cfg.smem_bytes + STATIC_SMEM_RESERVE > limits.smem_per_block:
            raise UnsupportedError("the streaming build does not fit in shared memory for this stack")
        self.problem = problem
        self.stack = PersistentStack(problem, replace(plan, kernel=cfg), [s.weights for s in specs], options=options)
        self.timeout_s = float(timeout_s)
        B, n_in, H = batch, problem.input_size, problem.hidden
        dev = self.stack.dev
        self.xex = torch.zeros(2 * B * cfg.kx_eff, device=dev, dtype=torch.int64)
        # Host-mapped words: pinned memory is addressable from the GPU at the same pointer.
        self._in = torch.zeros(B * n_in, dtype=torch.int64).pin_memory()
        self._out = torch.zeros(B * H, dtype=torch.int64).pin_memory()
        # Little-endian words: [even] = value bits, [odd] = tag.
        in32 = self._in.numpy().view(np.uint32)
        self.in_val, self.in_tag = in32[0::2], in32[1::2]
        out32 = self._out.numpy().view(np.uint32)
        self.out_tag, self.out_val = out32[1::2], out32[0::2].view(np.float32)
        self.stream = torch.cuda.Stream(device=dev)
        self.is_open = False
        self.steps = 0
        self.epoch = 0

    # -- lifecycle -------------------------------------------------------------------
    def _table(self, has_h0: bool, has_c0: bool) -> Any:
        from .persistent import D_FEED, D_IN_EX, D_TIMEOUT_NS, D_Y

        table = self.stack._desc[(has_h0, has_c0, False)][0].clone()
        table[:, D_TIMEOUT_NS] = int(self.timeout_s * 1e9)
        table[:, D_Y] = 0
        table[0, D_FEED] = 1
        table[0, D_IN_EX] = self.xex.data_ptr()
        table[-1, D_Y] = self._out.data_ptr()
        return table

    def open(self, h0: Any = None, c0: Any = None) -> StreamSession:
        import cupy

        torch = self.torch
        if self.is_open:
            raise Tf2rtError("this streaming session is already open; close() it first")
        st, p = self.stack, self.problem
        shape = (p.layers, p.batch, p.hidden)
        for name, v, dst in (("h0", h0, st.h0), ("c0", c0, st.c0)):
            if v is not None:
                copy_state(name, v, dst, shape)
        self._table_dev = self._table(h0 is not None, c0 is not None and p.cell == "lstm")
        st.sync[2] = 0
        self.epoch = int(st.sync[0].item())  # also waits for the copies above
        self.steps = 0
        self.stream.wait_stream(torch.cuda.current_stream(st.dev))
        st.launch(self._table_dev, MAX_STEPS, self._in.data_ptr(), cupy.cuda.ExternalStream(self.stream.cuda_stream))
        self.is_open = True
        return self

    def step(self, x: Any) -> np.ndarray:
        """Feed x_t ([batch, input] or [input] at batch 1); returns h_t of the last layer
        ([batch, hidden], float32)."""
        if not self.is_open:
            raise Tf2rtError("the streaming session is not open; call open() or use it in a with-block")
        p = self.problem
        x = np.asarray(x, np.float32)
        if x.size != p.batch * p.input_size:
            raise ShapeError(f"x must hold batch x input = {p.batch} x {p.input_size} values, got shape {x.shape}")
        tag = (self.epoch + self.steps) & TAGMASK
        # Values first, then tags: x86 stores become visible in order, so a word the GPU
        # sees with the new tag already holds the new value.
        self.in_val[:] = x.reshape(-1).view(np.uint32)
        self.in_tag[:] = tag
        self._wait(tag)
        self.steps += 1
        return self.out_val.reshape(p.batch, p.hidden).copy()

    def _wait(self, tag: int) -> None:
        out_tag, deadline, spins = self.out_tag, None, 0
        last = len(out_tag) - 1
        while True:
            if out_tag[last] == tag and (out_tag == tag).all():  # cheap scalar test first
                return
            spins += 1
            if spins % 1024 == 0:
                if self.stream.query():  # the kernel is gone: it timed out waiting for input
                    self.is_open = False
                    raise Tf2rtError(f"the streaming session ended on its own after {self.timeout_s} s without "
                                     "input; open() a new one")
                now = time.monotonic()
                deadline = deadline or now + max(self.timeout_s, 1.0)
                if now > deadline:
                    raise Tf2rtError("no output from the streaming kernel in time; the GPU may be busy with "
                                     "other work that shares its SMs")

    def close(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Stop the kernel; returns the state after the last step (h, c)."""
        if self.is_open:
            tag = (self.epoch + self.steps) & TAGMASK
            self.in_tag[:] = tag | STOPBIT
            deadline = time.monotonic() + max(self.timeout_s, 1.0) + 5.0
            while not self.stream.query():
                if time.monotonic() > deadline:
                    raise Tf2rtError("the streaming kernel did not stop; the GPU may be busy with other work")
                time.sleep(1e-4)
            self.is_open = False
        st = self.stack
        h = st.hn.float().cpu().numpy()
        c = st.cn.float().cpu().numpy() if st.cn is not None else None
        return h, c

    def __enter__(self) -> StreamSession:
        return self if self.is_open else self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:  # never leave a resident kernel behind
        try:
            if getattr(self, "is_open", False):
                self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

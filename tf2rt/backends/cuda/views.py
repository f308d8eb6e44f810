"""Layout and type ops as views: what lets the ops around a recurrent stack cost nothing.

An engine's graph surrounds each recurrent stack with ops that only move or retype data:
Transpose to and from ONNX's time-major `[T, directions, B, H]`, Reshape/Squeeze of the
direction axis, Concat of the layers' final states, and in fp16 engines Casts around every
recurrent node. Run as PyTorch calls, each is a kernel launch inside the CUDA graph. Here
they are evaluated on `Lazy` values instead: a tensor plus the type the graph says it has.

- Transpose, Reshape, Squeeze, Unsqueeze, Flatten, Slice and Identity become views (a
  Reshape that no view can express is the only one that copies).
- Concat of parts that lie next to each other in one buffer (the per-layer slices of a
  stack's h_n) is a view of that buffer.
- Cast to a type that holds every value exactly (fp16 -> fp32, or fp32 values that came out
  of an fp16 stack -> fp16) only changes the type the graph sees; a rounding Cast (fp32 ->
  fp16) is deferred and done once, where a value is finally needed in memory.

A value is copied only where an op that is not a view needs it in memory ("materialized"):
one `Tensor.to` that changes type and layout together. The cuda backend records each such
copy (GraphExecutor.copies); where one copies a whole recurrent output into another layout
or type, the stack is asked to write that layout directly on the next call
(`output_target`), so the copy disappears (docs/cuda.md, "Ops around the stacks").
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

#: ONNX ops evaluated on Lazy values without a launch (unless a Reshape cannot be a view).
VIEW_OPS = frozenset({"Cast", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Transpose", "Concat",
                      "Slice", "Shape"})


def _holds(wide: Any, narrow: Any) -> bool:
    """Whether every value of float type `narrow` is exactly a value of type `wide`."""
    import torch

    if wide == narrow:
        return True
    rank = {torch.float16: 1, torch.bfloat16: 1, torch.float32: 2, torch.float64: 3}
    return wide in rank and narrow in rank and rank[wide] > rank[narrow]


@dataclass
class Lazy:
    """A device value: tensor `t` seen by the graph as type `dtype`.

    `exact`: a type that holds every value of `t` exactly (an fp16 stack's fp32 outputs:
    float16). `rnd`: a rounding to that type still owed (the graph cast the value to a
    narrower type; done when the value is materialized)."""

    t: Any
    dtype: Any
    exact: Any
    rnd: Any = None

    @staticmethod
    def of(t: Any, exact: Any = None) -> "Lazy":
        return Lazy(t, t.dtype, t.dtype if exact is None else exact)

    @property
    def shape(self) -> tuple:
        return tuple(self.t.shape)

    def like(self, t: Any) -> "Lazy":
        return Lazy(t, self.dtype, self.exact, self.rnd)

    @property
    def precision(self) -> Any:
        """The narrowest type the value is exact in, roundings owed included."""
        return self.rnd if self.rnd is not None else self.exact


def cast(v: Lazy, to: Any) -> Lazy | None:
    """The value cast to torch type `to`, without a launch; None where that takes a copy."""
    if not (v.t.is_floating_point() and to.is_floating_point):
        return v if to == v.dtype == v.t.dtype else None
    if _holds(to, v.precision):
        return Lazy(v.t, to, v.exact, v.rnd)
    if v.rnd is None:  # a rounding: owed until the value is materialized
        return Lazy(v.t, to, v.exact, to)
    return None


def materialize(v: Lazy, contiguous: bool = False) -> tuple[Any, int]:
    """(tensor of type v.dtype with v's values, number of copies it took)."""
    import torch

    t, copies = v.t, 0
    if v.rnd is not None and v.rnd != t.dtype and not _holds(v.rnd, v.exact):
        t, copies = t.to(v.rnd, memory_format=torch.contiguous_format), copies + 1
    # a copy either way: into the plain layout, which a stack can learn to write (`to` of
    # the same type returns the tensor itself, whatever memory_format says)
    if t.dtype != v.dtype:
        t, copies = t.to(v.dtype, memory_format=torch.contiguous_format), copies + 1
    elif contiguous and not t.is_contiguous():
        t, copies = t.contiguous(), copies + 1
    return t, copies


def adjacent_concat(parts: Sequence[Any], axis: int) -> Any:
    """A view of the concatenation of `parts` along `axis` where they lie back to back in
    one buffer with the same strides, else None."""
    p0 = parts[0]
    nd = p0.dim()
    if any(p.dim() != nd or p.dtype != p0.dtype or p.device != p0.device for p in parts):
        return None
    axis %= nd
    if any(p.untyped_storage().data_ptr() != p0.untyped_storage().data_ptr() for p in parts):
        return None
    for k in range(nd):
        if k != axis and any(p.shape[k] != p0.shape[k] for p in parts):
            return None
        if k != axis and p0.shape[k] > 1 and any(p.stride(k) != p0.stride(k) for p in parts):
            return None
    # the stride along the axis: from a part that spans it, else from the offsets
    step = next((p.stride(axis) for p in parts if p.shape[axis] > 1), None)
    if step is None:
        if len(parts) < 2:
            return p0
        step = parts[1].storage_offset() - p0.storage_offset()
    if step <= 0:
        return None
    for a, b in zip(parts, parts[1:]):
        if b.storage_offset() != a.storage_offset() + a.shape[axis] * step:
            return None
    shape = list(p0.shape)
    shape[axis] = sum(p.shape[axis] for p in parts)
    strides = list(p0.stride())
    strides[axis] = step
    return p0.as_strided(shape, strides, p0.storage_offset())


def output_target(buffer: Any, view: Any) -> tuple[tuple[int, ...], int] | None:
    """Where each element of `buffer` (a stack output, any strides) lands in a contiguous
    copy of `view` (a view of all of it): (strides, offset) in elements of that copy, such
    that `copy.as_strided(buffer.shape, strides, offset)` holds `buffer`'s elements; None
    where the mapping is no strided layout or the view does not cover the buffer exactly."""
    if (view.numel() != buffer.numel() or buffer.numel() == 0
            or view.untyped_storage().data_ptr() != buffer.untyped_storage().data_ptr()):
        return None
    import torch

    # verified on the buffers' GPU, except inside a CUDA-graph capture, where a launch would
    # be recorded instead of run: there on the host
    device = buffer.device
    if device.type == "cuda" and torch.cuda.is_current_stream_capturing():
        device = torch.device("cpu")
    return _strided_target(tuple(buffer.shape), tuple(buffer.stride()), buffer.storage_offset(),
                           tuple(view.shape), tuple(view.stride()), view.storage_offset(), str(device))


def _one_to_one(shape: tuple, strides: tuple) -> bool:
    """Whether a strided layout puts every element at its own address: ordered by stride,
    each dimension steps over everything the smaller ones span (sufficient, and what views
    of one buffer satisfy)."""
    span = 1
    for size, st in sorted(((n, s) for n, s in zip(shape, strides) if n > 1), key=lambda d: d[1]):
        if st < span:
            return False
        span = st * size
    return True


#: Elements checked at a time when a candidate layout is verified (bounds the memory).
_VERIFY_CHUNK = 1 << 22


@functools.lru_cache(maxsize=256)
def _strided_target(bshape: tuple, bstr: tuple, boff: int, vshape: tuple, vstr: tuple, voff: int,
                    device: str) -> tuple[tuple[int, ...], int] | None:
    """output_target on geometry alone: the buffer's element at index j sits at storage
    address boff + j.bstr; the view's copy position p holds the address of p's index in the
    view. Candidate strides come from the buffer's unit steps; they are then verified on
    every element, a chunk at a time (O(elements) time, bounded memory), and remembered
    per geometry, so a stack's later calls pay nothing."""
    if not (_one_to_one(bshape, bstr) and _one_to_one(vshape, vstr)):
        return None
    n = int(np.prod(bshape, dtype=np.int64))
    cstr = [int(np.prod(vshape[k + 1:], dtype=np.int64)) for k in range(len(vshape))]
    vdims = sorted((d for d in zip(vshape, vstr, cstr) if d[0] > 1), key=lambda d: -d[1])

    def where(addr: int) -> int | None:  # copy position of the view element at `addr`
        rel, pos = addr - voff, 0
        for size, st, c in vdims:
            d = rel // st if rel >= 0 else -1
            if not 0 <= d < size:
                return None
            rel, pos = rel - d * st, pos + d * c
        return pos if rel == 0 else None

    base = where(boff)
    if base is None:
        return None
    strides = []
    for size, st in zip(bshape, bstr):
        at = where(boff + st) if size > 1 else base
        if at is None:
            return None
        strides.append(at - base)
    lo = base + sum(min(0, (size - 1) * s) for size, s in zip(bshape, strides))
    hi = base + sum(max(0, (size - 1) * s) for size, s in zip(bshape, strides))
    if lo < 0 or hi >= n:
        return None
    # verify: the view's address at each candidate position is the buffer element's own
    # (with torch on `device`: a GPU checks a 100M-element output in milliseconds)
    import torch

    for start in range(0, n, _VERIFY_CHUNK):
        j = torch.arange(start, min(n, start + _VERIFY_CHUNK), dtype=torch.int64, device=device)
        addr_b = torch.full_like(j, boff)
        pos = torch.full_like(j, base)
        for size, st, s in reversed(list(zip(bshape, bstr, strides))):
            d = j % size
            j = j // size
            addr_b += d * st
            pos += d * s
        addr_v = torch.full_like(pos, voff)
        for size, st, c in zip(vshape, vstr, cstr):
            addr_v += (pos // c) % size * st
        if not torch.equal(addr_b, addr_v):
            return None
    return tuple(strides), base


def pick_targets(targets: dict, present: set[str]) -> dict:
    """The output targets a stack that writes any strided layout, in one output type, takes.
    targets: "y" / "hn" / "cn" -> (dtype, numel, strides in elements, offset), as
    GraphExecutor learns them; present: the outputs the stack has. hn and cn are taken only
    together with the same strides (one state layout); where the types differ, y alone."""
    import torch

    kinds = (torch.float32, torch.float16, torch.bfloat16)  # the types the kernels write (OTYPE)
    ok = {k: t for k, t in targets.items() if t[0] in kinds and t[2][-1] == 1 and k in present}
    if ("hn" in ok or "cn" in ok) and not ("cn" not in present
                                           or ("hn" in ok and "cn" in ok and ok["hn"][2] == ok["cn"][2])):
        ok.pop("hn", None)
        ok.pop("cn", None)
    if len({t[0] for t in ok.values()}) > 1:
        ok = {"y": ok["y"]} if "y" in ok else {}
    return ok


def target_buffers(taken: dict, current: dict, out_dtype: Any, device: Any) -> dict:
    """New output buffers of a stack whose outputs now have type `out_dtype`: each taken
    target's strided buffer, and for the other outputs of `current` (name -> tensor or None)
    a plain buffer of that type where theirs has another."""
    import torch

    out = {}
    for key, cur in current.items():
        if cur is None or (key not in taken and cur.dtype == out_dtype):
            continue
        if key in taken:
            dt, numel, strides, off = taken[key]
            out[key] = torch.empty(numel, device=device, dtype=dt).as_strided(cur.shape, strides, off)
        else:
            out[key] = torch.empty(cur.shape, device=device, dtype=out_dtype)
    return out


def adopt_targets(stack: Any, targets: dict) -> dict:
    """set_output_targets of a stack whose outputs are its attributes y, hn and cn (None
    where it has none) and whose kernels write any strided layout in one type: takes what
    pick_targets allows, sets stack.out_dtype and the new buffers; returns the targets
    taken."""
    names = ("y", "hn", "cn")
    ok = pick_targets(targets, {k for k in names if getattr(stack, k) is not None})
    if not ok:
        return {}
    stack.out_dtype = next(iter(ok.values()))[0]
    for key, buf in target_buffers(ok, {k: getattr(stack, k) for k in names}, stack.out_dtype, stack.dev).items():
        setattr(stack, key, buf)
    return ok

"""From ONNX recurrent nodes to a runnable stack (persistent kernel, cuDNN or step loop)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ...errors import ShapeError, UnsupportedError
from .packing import DirectionWeights, split_onnx_weights
from .options import CudaOptions, resolve
from .plan import DeviceLimits, Plan, RnnProblem, make_plan

OP_CELL = {"LSTM": "lstm", "GRU": "gru", "RNN": "rnn"}
_DEFAULT_ACTS = {"lstm": ["sigmoid", "tanh", "tanh"], "gru": ["sigmoid", "tanh"], "rnn": ["tanh"]}


@dataclass
class RnnNodeSpec:
    """What one ONNX LSTM/GRU/RNN node says, with its weights as numpy arrays."""

    cell: str
    hidden: int
    direction: str  # forward | reverse | bidirectional
    weights: list[DirectionWeights]
    activations: list[str]  # lower-case, len = slots * directions
    alphas: list[float]
    betas: list[float]
    clip: float | None
    linear_before_reset: bool
    input_forget: bool = False

    @property
    def directions(self) -> int:
        return 2 if self.direction == "bidirectional" else 1

    @property
    def slots(self) -> int:
        return len(_DEFAULT_ACTS[self.cell])

    def default_activations(self) -> bool:
        if self.alphas or self.betas:
            return False
        if self.cell == "rnn":
            return all(a in ("tanh", "relu") for a in self.activations) and len(set(self.activations)) == 1
        return self.activations == _DEFAULT_ACTS[self.cell] * self.directions


def node_spec(op: str, attrs: dict[str, Any], W: np.ndarray, R: np.ndarray, B: np.ndarray | None,
              P: np.ndarray | None) -> RnnNodeSpec:
    """Read an ONNX recurrent node's attributes and weights (layout 0 only)."""
    cell = OP_CELL[op]
    if int(attrs.get("layout", 0)) != 0:
        raise UnsupportedError(f"{op} with layout=1 is not supported by the cuda backend; rebuild the engine")
    if int(attrs.get("input_forget", 0)):
        raise UnsupportedError(f"{op} with input_forget=1 is not supported by the cuda backend")
    direction = attrs.get("direction", "forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    dirs = 2 if direction == "bidirectional" else 1
    acts = [a.decode() if isinstance(a, bytes) else a for a in attrs.get("activations", [])]
    acts = [a.lower() for a in acts] or _DEFAULT_ACTS[cell] * dirs
    weights = split_onnx_weights(cell, np.asarray(W, np.float32), np.asarray(R, np.float32),
                                 None if B is None else np.asarray(B, np.float32),
                                 None if P is None else np.asarray(P, np.float32))
    return RnnNodeSpec(
        cell=cell, hidden=int(attrs.get("hidden_size", R.shape[-1])), direction=direction, weights=weights,
        activations=acts, alphas=list(attrs.get("activation_alpha", [])), betas=list(attrs.get("activation_beta", [])),
        clip=float(attrs["clip"]) if attrs.get("clip") else None,
        linear_before_reset=bool(int(attrs.get("linear_before_reset", 0))) if cell == "gru" else True,
    )


def problem_for(specs: Sequence[RnnNodeSpec], batch: int, seq_len: int, dtype: str) -> RnnProblem:
    """The RnnProblem of a chain of compatible nodes (one layer each)."""
    s = specs[0]
    return RnnProblem(
        cell=s.cell, hidden=s.hidden, input_size=s.weights[0].input_size, batch=batch, seq_len=seq_len,
        layers=len(specs), directions=s.directions, dtype=dtype, linear_before_reset=s.linear_before_reset,
        rnn_activation=s.activations[0] if s.cell == "rnn" else "tanh",
        default_activations=all(x.default_activations() for x in specs),
        peepholes=any(w.P is not None for x in specs for w in x.weights),
        clip=s.clip, reverse=s.direction == "reverse",
        row_norm=max(float(np.linalg.norm(m, axis=1).max(initial=0.0))
                     for x in specs for w in x.weights for m in (w.W, w.R)),
    )


def copy_state(name: str, value: Any, dst: Any, shape: tuple) -> None:
    """Copy an initial state (numpy or torch, `shape` = [layers, batch, hidden]) into the
    device buffer `dst` (any shape of as many values); ShapeError naming `name` otherwise."""
    import torch

    v = value if torch.is_tensor(value) else torch.as_tensor(np.asarray(value, np.float32))
    if tuple(v.shape) != tuple(shape):
        raise ShapeError(f"{name} must have shape {tuple(shape)}, got {tuple(v.shape)}")
    dst.copy_(v.reshape(dst.shape))


def chainable(a: RnnNodeSpec, b: RnnNodeSpec) -> bool:
    """Whether node b (fed by a's output) can run in one stack with a."""
    return (a.cell == b.cell and a.hidden == b.hidden and a.direction == b.direction
            and a.activations == b.activations and a.clip == b.clip
            and a.linear_before_reset == b.linear_before_reset and not a.alphas and not b.alphas)


_TAKES_ALPHA = {"leakyrelu", "thresholdedrelu", "elu", "hardsigmoid", "scaledtanh", "affine"}
_TAKES_BETA = {"hardsigmoid", "scaledtanh", "affine"}


def _activation_callables(spec: RnnNodeSpec) -> list[list[Any]]:
    """Per direction, the cell's activation functions. activation_alpha/beta are consumed in
    activation order, one value per activation that takes the parameter (ONNX; onnxruntime)."""
    from .fallback import _act

    names = list(spec.activations)
    if len(names) == spec.slots and spec.directions == 2:
        names = names * 2
    alphas, betas = iter(spec.alphas), iter(spec.betas)
    fns = []
    for n in names:
        a = next(alphas, None) if n.lower() in _TAKES_ALPHA else None
        b = next(betas, None) if n.lower() in _TAKES_BETA else None
        fns.append(_act(n, a, b))
    return [fns[d * spec.slots:(d + 1) * spec.slots] for d in range(spec.directions)]


def make_stack(specs: Sequence[RnnNodeSpec], batch: int, seq_len: int, dtype: str, limits: DeviceLimits,
               prefer: str | None = None, has_seq_lens: bool = False, torch_device: Any = None,
               options: CudaOptions | None = None, weights_of: Any = None) -> tuple[Any, Plan]:
    """Plan and build the object that runs `specs` (a chain of layers).

    prefer: "persistent" | "cudnn" | "torch" (step loop) | "step" (single-step stack, T=1
    only) | "row" (the row kernel, small layers only; other shapes get the planner's choice
    for these two) | None (the planner's choice).
    On a CPU torch device only the cuDNN-module (torch.nn) and step-loop forms exist.
    options: the runner's build options (None: from the environment now).
    weights_of: a single-step stack of the same layers whose packed weights a single-step
    stack built here may share (SingleStepStack)."""
    from .fallback import CudnnStack, LoopStack
    from .persistent import PersistentStack
    from .single_step import SingleStepStack

    options = resolve(options)
    problem = problem_for(specs, batch, seq_len, dtype)
    if prefer == "torch":
        return LoopStack(problem, [s.weights for s in specs], _activation_callables(specs[0]),
                         device=torch_device), Plan("torch", "requested")
    on_cpu = torch_device is not None and str(torch_device).startswith("cpu")
    plan = make_plan(problem, limits, prefer="cudnn" if on_cpu else prefer, options=options)
    if on_cpu and plan.engine == "persistent":
        plan = Plan("torch", "the persistent kernel needs a GPU")
    layers = [s.weights for s in specs]
    if plan.engine == "cudnn" and has_seq_lens:
        # cuDNN in a CUDA graph cannot take per-sequence lengths: persistent kernel if it fits.
        kernel = None if on_cpu else make_plan(problem, limits, prefer="persistent", options=options)
        if kernel is None:
            plan = Plan("torch", "per-sequence lengths")
        elif kernel.engine == "persistent":
            plan = kernel
        else:  # the planner's reason says why the kernel cannot
            plan = Plan("torch", f"per-sequence lengths (cuDNN in a graph cannot take them); {kernel.reason}")
    if plan.engine == "step":
        return SingleStepStack(problem, layers, device=torch_device, options=options, weights_of=weights_of), plan
    if plan.engine == "row":
        from .row import RowStack

        return RowStack(problem, plan.row, layers, device=torch_device, options=options), plan
    if plan.engine == "persistent":
        stack = PersistentStack(problem, plan, layers, device=torch_device, options=options)
        return stack, stack.plan  # the build it runs (without clusters where they do not fit)
    if plan.engine == "cudnn":
        return CudnnStack(problem, layers, device=torch_device), plan
    if len({tuple(s.activations) for s in specs}) > 1:
        raise UnsupportedError("layers of one stack must share activations")
    return LoopStack(problem, layers, _activation_callables(specs[0]), device=torch_device), plan

"""TensorRT RNNv2 per-gate weights and the legacy IRNNLayer buffers <-> CellWeights stacks.

RNNv2 (`set_weights_for_gate(layer_index, gate, is_w, w)` / `set_bias_for_gate`) takes
row-major `[H, in]` matrices and `[H]` biases per gate. Layer index: unidirectional = stack
position; bidirectional = 2 * position + direction (l % 2 = direction, l // 2 = layer).
Gates are canonical names (TensorRT's RNNGateType lower-cased; see `TRT_GATE_TYPE`).
RNNv2 cells are plain: sigmoid gates, tanh candidate, reset-after GRU, no peepholes,
projection or clipping.

The legacy IRNNLayer took one buffer: per layer (and direction), all W matrices then all
R matrices in f, i, c, o (LSTM) / z, r, h (GRU) order; biases the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..errors import ShapeError, UnsupportedError
from .canonical import CellWeights, Stack, validate_stack
from .gates import TRT_LEGACY_GRU, TRT_LEGACY_LSTM, TRT_LEGACY_RNN, gates_for
from ._util import as_array

#: RNNv2 operations ("relu" | "tanh" | "lstm" | "gru") -> canonical kind.
OPS = {"relu": "rnn", "tanh": "rnn", "lstm": "lstm", "gru": "gru"}
GateKey = tuple[int, str, bool]  # (layer_index, gate, is_w)


@dataclass
class RNNv2Weights:
    """Everything an RNNv2 layer needs: its parameters and per-gate weight/bias dicts."""

    op: str
    layer_count: int
    hidden_size: int
    input_size: int
    direction: str  # "unidirection" | "bidirection"
    weights: dict[GateKey, np.ndarray] = field(default_factory=dict)
    biases: dict[GateKey, np.ndarray] = field(default_factory=dict)


def layer_index(layer: int, direction: int, bidirectional: bool) -> int:
    """RNNv2 layer index of stack position `layer`, direction 0 (forward) or 1 (backward)."""
    return 2 * layer + direction if bidirectional else layer


def rnnv2_op(cell: CellWeights) -> str:
    """The RNNv2 operation of a cell, or UnsupportedError explaining what does not fit."""
    issues = cell.unsupported_by_rnnv2()
    if issues:
        hint = ""
        if cell.kind == "gru" and not cell.linear_before_reset:
            hint = (
                " TensorRT RNNv2's GRU applies the reset gate after the recurrent matmul "
                "(h = tanh(W x + r*(R h + Rb) + Wb)); a TF GRUCell / Keras reset_after=False GRU applies it "
                "before ((r*h)·R), which no choice of weights reproduces. Use an ONNX GRU with "
                "linear_before_reset=0 (tf2rt.layouts.to_onnx; the engine builder does this) instead."
            )
        raise UnsupportedError(f"TensorRT RNNv2 cannot express {', '.join(issues)}.{hint}")
    return cell.activation if cell.kind == "rnn" else cell.kind


def to_rnnv2(stack: Stack) -> RNNv2Weights:
    """Per-gate RNNv2 dicts {(layer_index, gate, is_w): array} for a whole stack."""
    stack = validate_stack(stack)
    first = stack[0][0]
    ops = {rnnv2_op(c) for layer in stack for c in layer}
    if len(ops) != 1:
        raise UnsupportedError(f"one RNNv2 layer has one operation; this stack mixes {sorted(ops)}")
    bi = len(stack[0]) == 2
    out = RNNv2Weights(ops.pop(), len(stack), first.hidden_size, first.input_size,
                       "bidirection" if bi else "unidirection")
    for l, layer in enumerate(stack):
        for d, cell in enumerate(layer):
            li = layer_index(l, d, bi)
            for g in cell.gates:
                out.weights[(li, g, True)] = cell.W[g].copy()
                out.weights[(li, g, False)] = cell.R[g].copy()
                out.biases[(li, g, True)] = cell.Wb[g].copy()
                out.biases[(li, g, False)] = cell.Rb[g].copy()
    return out


def from_rnnv2(
    op: str, layer_count: int, weights: Mapping[GateKey, Any], biases: Mapping[GateKey, Any] | None = None,
    *, direction: str = "unidirection",
) -> Stack:
    """A stack from RNNv2 per-gate dicts (missing biases are zero, as in TensorRT)."""
    if op not in OPS:
        raise UnsupportedError(f"unknown RNNv2 operation {op!r}; use one of {', '.join(OPS)}")
    if direction not in ("unidirection", "bidirection"):
        raise UnsupportedError(f"RNNv2 direction must be unidirection or bidirection, got {direction!r}")
    kind = OPS[op]
    bi = direction == "bidirection"
    biases = biases or {}
    stack: Stack = []
    for l in range(layer_count):
        layer = []
        for d in range(2 if bi else 1):
            li = layer_index(l, d, bi)
            parts: dict[str, dict[str, np.ndarray]] = {"W": {}, "R": {}, "Wb": {}, "Rb": {}}
            for g in gates_for(kind):
                for is_w, key in ((True, "W"), (False, "R")):
                    if (li, g, is_w) not in weights:
                        raise ShapeError(f"RNNv2 weights for layer {li} gate {g} is_w={is_w} are missing")
                    parts[key][g] = as_array(weights[(li, g, is_w)], f"RNNv2 weights {(li, g, is_w)}")
                H = parts["W"][g].shape[0]
                for is_w, key in ((True, "Wb"), (False, "Rb")):
                    b = biases.get((li, g, is_w))
                    parts[key][g] = np.zeros(H, parts["W"][g].dtype) if b is None else as_array(b, f"RNNv2 bias {(li, g, is_w)}")
            g0 = gates_for(kind)[0]
            H, E = parts["W"][g0].shape
            layer.append(CellWeights(kind, E, H, activation=op if kind == "rnn" else "tanh",
                                     linear_before_reset=True, **parts))
        stack.append(tuple(layer))
    return validate_stack(stack)


_LEGACY = {"lstm": TRT_LEGACY_LSTM, "gru": TRT_LEGACY_GRU, "rnn": TRT_LEGACY_RNN}


def to_legacy_buffers(stack: Stack) -> tuple[np.ndarray, np.ndarray]:
    """(weights, biases) flat buffers of TensorRT's legacy IRNNLayer for a stack."""
    stack = validate_stack(stack)
    ws: list[np.ndarray] = []
    bs: list[np.ndarray] = []
    for layer in stack:
        for cell in layer:
            rnnv2_op(cell)
            order = _LEGACY[cell.kind]
            ws += [cell.W[g].ravel() for g in order.gates] + [cell.R[g].ravel() for g in order.gates]
            bs += [cell.Wb[g] for g in order.gates] + [cell.Rb[g] for g in order.gates]
    return np.concatenate(ws), np.concatenate(bs)


def from_legacy_buffers(
    op: str, weights: Any, biases: Any, *, layer_count: int, hidden_size: int, input_size: int,
    bidirectional: bool = False,
) -> Stack:
    """Inverse of `to_legacy_buffers` (sizes must be given: the buffers are flat)."""
    kind = OPS.get(op)
    if kind is None:
        raise UnsupportedError(f"unknown RNN operation {op!r}; use one of {', '.join(OPS)}")
    order = _LEGACY[kind]
    w = as_array(weights, "legacy RNN weights").ravel()
    b = as_array(biases, "legacy RNN biases").ravel()
    H, n, dirs = hidden_size, len(order.gates), 2 if bidirectional else 1
    sizes = [input_size] + [dirs * H] * (layer_count - 1)
    want_w = sum(dirs * n * H * (E + H) for E in sizes)
    want_b = layer_count * dirs * 2 * n * H
    if w.size != want_w or b.size != want_b:
        raise ShapeError(
            f"legacy RNN buffers hold {w.size} weights / {b.size} biases; {op} with {layer_count} layers, "
            f"H={H}, input {input_size}, {dirs} direction(s) needs {want_w} / {want_b}"
        )
    wi = bi = 0
    stack: Stack = []
    for E in sizes:
        layer = []
        for _ in range(dirs):
            W, R, Wb, Rb = {}, {}, {}, {}
            for g in order.gates:
                W[g] = w[wi:wi + H * E].reshape(H, E)
                wi += H * E
            for g in order.gates:
                R[g] = w[wi:wi + H * H].reshape(H, H)
                wi += H * H
            for target in (Wb, Rb):
                for g in order.gates:
                    target[g] = b[bi:bi + H]
                    bi += H
            layer.append(CellWeights(kind, E, H, W=W, R=R, Wb=Wb, Rb=Rb,
                                     activation=op if kind == "rnn" else "tanh"))
        stack.append(tuple(layer))
    return validate_stack(stack)

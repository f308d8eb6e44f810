"""cuDNN canonical per-gate matrices <-> CellWeights.

cuDNN addresses weights per pseudo-layer (layer * dirs + direction) and `linLayerID`:
LSTM 0-3 = W for i, f, c, o and 4-7 = R in the same order; GRU 0-2 = W for r, z, h and
3-5 = R; RNN 0 = W, 1 = R. Every matrix has its own bias (b_W for the first half, b_R for
the second). Matrices are row-major `[H, in]` (W·x form). GRU is reset-after.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..errors import ShapeError, UnsupportedError
from .canonical import CellWeights, Stack, validate_stack
from .gates import CUDNN_GRU, CUDNN_LSTM, CUDNN_RNN, GateOrder
from ._util import as_array

_ORDERS = {"lstm": CUDNN_LSTM, "gru": CUDNN_GRU, "rnn": CUDNN_RNN}


def _order(kind: str) -> GateOrder:
    if kind not in _ORDERS:
        raise UnsupportedError(f"unknown cuDNN RNN kind {kind!r}; use lstm, gru or rnn")
    return _ORDERS[kind]


def from_cudnn(
    kind: str, weights: Sequence[Any], biases: Sequence[Any], *, activation: str = "tanh", name: str = ""
) -> CellWeights:
    """CellWeights from one pseudo-layer's matrices and biases, in linLayerID order.

    Matrices may be given flat (as cuDNN's weight space holds them) or 2-D. `activation`
    is "tanh" or "relu" for plain RNNs (CUDNN_RNN_TANH / CUDNN_RNN_RELU).
    """
    order = _order(kind)
    n = len(order.gates)
    if len(weights) != 2 * n or len(biases) != 2 * n:
        raise ShapeError(f"cuDNN {kind} needs {2 * n} matrices and {2 * n} biases, got {len(weights)} and {len(biases)}")
    bs = [as_array(b, f"cuDNN {kind} bias {i}") for i, b in enumerate(biases)]
    H = bs[0].size
    ws = []
    for i, w in enumerate(weights):
        a = as_array(w, f"cuDNN {kind} matrix {i}")
        if a.size % H:
            raise ShapeError(f"cuDNN {kind} matrix {i} has {a.size} elements, not a multiple of H={H}")
        ws.append(np.ascontiguousarray(a.reshape(H, a.size // H)))
    for i, b in enumerate(bs):
        if b.shape != (H,):
            raise ShapeError(f"cuDNN {kind} bias {i} has shape {tuple(b.shape)}, expected ({H},)")
    gates = order.gates
    return CellWeights(
        kind, ws[0].shape[1], H,
        W=dict(zip(gates, ws[:n])), R=dict(zip(gates, ws[n:])),
        Wb=dict(zip(gates, bs[:n])), Rb=dict(zip(gates, bs[n:])),
        activation=activation, linear_before_reset=True, name=name,
    )


def to_cudnn(cell: CellWeights) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(matrices, biases) of one pseudo-layer in linLayerID order (matrices `[H, in]`)."""
    issues = cell.unsupported_by_rnnv2()
    if issues:
        raise UnsupportedError(f"cuDNN RNNs cannot express {', '.join(issues)}")
    order = _order(cell.kind)
    ws = [cell.W[g] for g in order.gates] + [cell.R[g] for g in order.gates]
    bs = [cell.Wb[g] for g in order.gates] + [cell.Rb[g] for g in order.gates]
    return [w.copy() for w in ws], [b.copy() for b in bs]


def to_cudnn_stack(stack: Stack) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """All pseudo-layers of a stack (layer-major, forward before backward), concatenated lists."""
    ws: list[np.ndarray] = []
    bs: list[np.ndarray] = []
    for layer in validate_stack(stack):
        for cell in layer:
            w, b = to_cudnn(cell)
            ws += w
            bs += b
    return ws, bs


def from_cudnn_stack(
    kind: str, weights: Sequence[Any], biases: Sequence[Any], *, num_layers: int,
    bidirectional: bool = False, activation: str = "tanh",
) -> Stack:
    """Inverse of `to_cudnn_stack`."""
    per = 2 * len(_order(kind).gates)
    dirs = 2 if bidirectional else 1
    if len(weights) != per * dirs * num_layers or len(biases) != len(weights):
        raise ShapeError(
            f"cuDNN {kind} stack of {num_layers} layers x {dirs} directions needs {per * dirs * num_layers} "
            f"matrices and biases, got {len(weights)} and {len(biases)}"
        )
    stack: Stack = []
    for l in range(num_layers):
        layer = []
        for d in range(dirs):
            i = (l * dirs + d) * per
            layer.append(from_cudnn(kind, weights[i:i + per], biases[i:i + per], activation=activation))
        stack.append(tuple(layer))
    return validate_stack(stack)

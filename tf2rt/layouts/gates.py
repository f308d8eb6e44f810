"""Gate orders as data.

Every framework stores the gates of an LSTM or GRU as blocks of one big matrix, each in
its own order. A `GateOrder` names those blocks with canonical gate names; conversions
derive their permutation from two orders (`permutation`) and split or stack blocks with
`split_gates` / `stack_gates`, so no conversion carries a hand-written index tuple.

Canonical gate names are TensorRT's RNNv2 gate types, lower-cased:
LSTM: input, forget, cell, output; GRU: update, reset, hidden; plain RNN: input.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple

import numpy as np

from ..errors import ShapeError, UnsupportedError

#: Canonical gate sets (their order here is the canonical iteration order).
LSTM_GATES: tuple[str, ...] = ("input", "forget", "cell", "output")
GRU_GATES: tuple[str, ...] = ("update", "reset", "hidden")
RNN_GATES: tuple[str, ...] = ("input",)
PEEPHOLE_GATES: tuple[str, ...] = ("input", "forget", "output")

KINDS: tuple[str, ...] = ("lstm", "gru", "rnn")
_GATES_BY_KIND = {"lstm": LSTM_GATES, "gru": GRU_GATES, "rnn": RNN_GATES}


def gates_for(kind: str) -> tuple[str, ...]:
    """The canonical gates of a cell kind ("lstm", "gru" or "rnn")."""
    try:
        return _GATES_BY_KIND[kind]
    except KeyError:
        raise UnsupportedError(
            f"unknown recurrent cell kind {kind!r}; use one of {', '.join(KINDS)}"
        ) from None


class GateOrder(NamedTuple):
    """The order in which one framework stores the gate blocks of one cell kind."""

    framework: str
    kind: str
    gates: tuple[str, ...]

    def position(self, gate: str) -> int:
        """Block position of `gate` in this order."""
        try:
            return self.gates.index(gate)
        except ValueError:
            raise UnsupportedError(
                f"{self.framework} {self.kind} has no gate {gate!r} (gates: {', '.join(self.gates)})"
            ) from None


# --- LSTM -------------------------------------------------------------------------------
# TF BasicLSTMCell / LSTMCell / LSTMBlockCell / CudnnCompatibleLSTMCell: i, j(=c), f, o.
TF_LSTM = GateOrder("tf", "lstm", ("input", "cell", "forget", "output"))
KERAS_LSTM = GateOrder("keras", "lstm", ("input", "forget", "cell", "output"))
TORCH_LSTM = GateOrder("torch", "lstm", ("input", "forget", "cell", "output"))  # i, f, g, o
ONNX_LSTM = GateOrder("onnx", "lstm", ("input", "output", "forget", "cell"))
ONNX_PEEPHOLES = GateOrder("onnx", "peephole", ("input", "output", "forget"))
CUDNN_LSTM = GateOrder("cudnn", "lstm", ("input", "forget", "cell", "output"))
TRT_LEGACY_LSTM = GateOrder("trt-legacy", "lstm", ("forget", "input", "cell", "output"))

# --- GRU --------------------------------------------------------------------------------
# TF GRUCell: gates/kernel holds r, u; the candidate (hidden) has its own kernel.
TF_GRU_GATES = GateOrder("tf", "gru", ("reset", "update"))
TF_GRU_CANDIDATE = GateOrder("tf", "gru", ("hidden",))
KERAS_GRU = GateOrder("keras", "gru", ("update", "reset", "hidden"))
TORCH_GRU = GateOrder("torch", "gru", ("reset", "update", "hidden"))  # r, z, n
ONNX_GRU = GateOrder("onnx", "gru", ("update", "reset", "hidden"))
CUDNN_GRU = GateOrder("cudnn", "gru", ("reset", "update", "hidden"))
TRT_LEGACY_GRU = GateOrder("trt-legacy", "gru", ("update", "reset", "hidden"))

# --- plain RNN --------------------------------------------------------------------------
TF_RNN = GateOrder("tf", "rnn", RNN_GATES)
KERAS_RNN = GateOrder("keras", "rnn", RNN_GATES)
TORCH_RNN = GateOrder("torch", "rnn", RNN_GATES)
ONNX_RNN = GateOrder("onnx", "rnn", RNN_GATES)
CUDNN_RNN = GateOrder("cudnn", "rnn", RNN_GATES)
TRT_LEGACY_RNN = GateOrder("trt-legacy", "rnn", RNN_GATES)

#: TensorRT RNNv2 `RNNGateType` enum values, keyed by canonical gate name.
TRT_GATE_TYPE: Mapping[str, int] = {
    "input": 0,
    "output": 1,
    "forget": 2,
    "update": 3,
    "reset": 4,
    "cell": 5,
    "hidden": 6,
}

#: Orders per framework and kind, for code that looks them up by name.
ORDERS: Mapping[tuple[str, str], GateOrder] = {
    (o.framework, o.kind): o
    for o in (
        TF_LSTM, KERAS_LSTM, TORCH_LSTM, ONNX_LSTM, CUDNN_LSTM, TRT_LEGACY_LSTM,
        KERAS_GRU, TORCH_GRU, ONNX_GRU, CUDNN_GRU, TRT_LEGACY_GRU,
        TF_RNN, KERAS_RNN, TORCH_RNN, ONNX_RNN, CUDNN_RNN, TRT_LEGACY_RNN,
    )
}


def permutation(src: GateOrder, dst: GateOrder) -> tuple[int, ...]:
    """Block indices of `src` that, taken in turn, give the blocks in `dst` order (gather)."""
    if sorted(src.gates) != sorted(dst.gates):
        raise UnsupportedError(
            f"gate orders {src.framework}:{src.gates} and {dst.framework}:{dst.gates} "
            "name different gates"
        )
    return tuple(src.position(g) for g in dst.gates)


def split_gates(array: np.ndarray, order: GateOrder, axis: int = 0, what: str = "array") -> dict[str, np.ndarray]:
    """Split `array` along `axis` into equal blocks named by `order` (views, no copy)."""
    array = np.asarray(array)
    n = len(order.gates)
    if array.ndim == 0 or array.shape[axis] % n:
        raise ShapeError(
            f"{what} of shape {tuple(array.shape)} cannot be split into {n} {order.framework} "
            f"{order.kind} gate blocks ({', '.join(order.gates)}) along axis {axis}"
        )
    return dict(zip(order.gates, np.split(array, n, axis=axis)))


def stack_gates(blocks: Mapping[str, np.ndarray], order: GateOrder, axis: int = 0) -> np.ndarray:
    """Concatenate per-gate blocks along `axis` in `order`."""
    missing = [g for g in order.gates if g not in blocks]
    if missing:
        raise ShapeError(f"missing gate block(s) {missing} for {order.framework} {order.kind} order")
    return np.concatenate([np.asarray(blocks[g]) for g in order.gates], axis=axis)


def reorder_gates(array: np.ndarray, src: GateOrder, dst: GateOrder, axis: int = 0) -> np.ndarray:
    """Re-arrange the gate blocks of `array` from `src` order to `dst` order."""
    return stack_gates(split_gates(array, src, axis), dst, axis)

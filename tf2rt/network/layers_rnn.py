"""RNNv2Layer: TensorRT's IRNNv2Layer (a stack of LSTM / GRU / RELU / TANH layers), in Python.

Input [N, S, E] (batch, sequence, embedding). Weights are set per gate with TensorRT's
shapes: W (H, E) for the first layer in linear mode, (H, K*H) deeper, R (H, H), biases (H,),
K = 2 when bidirectional. `layer_index` is TensorRT's pseudo-layer: unidirectional = stack
position; bidirectional = 2*position + direction (0 forward, 1 backward).

Beyond RNNv2 (what TensorRT's ILoop or the ONNX ops express): peepholes, reset-before GRU
(`linear_before_reset=False`, TF GRUCell), ONNX clip, relu/tanh candidate activations,
hard_sigmoid gates with alpha/beta, set through `set_cell(layer_index, CellWeights)`.
Unset biases are zero; unset weight matrices are an error at build time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ..errors import ShapeError, UnsupportedError
from ..layouts.gates import GRU_GATES, LSTM_GATES, PEEPHOLE_GATES, RNN_GATES
from .layer import Layer
from .layers_core import _canon
from .tensor import FLOAT_DTYPES, Shape, Tensor, shape_str

OPS = {"relu": "relu", "tanh": "tanh", "lstm": "lstm", "gru": "gru"}
DIRECTIONS = {"unidirection": "unidirection", "unidirectional": "unidirection", "forward": "unidirection",
              "bidirection": "bidirection", "bidirectional": "bidirection",
              "reverse": "reverse"}  # one direction, last step first (each sequence from its own last step)
INPUT_MODES = {"linear": "linear", "skip": "skip"}
GATE_ALIASES = {g: g for g in ("input", "output", "forget", "cell", "update", "reset", "hidden")}
GATE_ALIASES.update({"i": "input", "o": "output", "f": "forget", "c": "cell", "g": "cell", "j": "cell",
                     "z": "update", "u": "update", "r": "reset", "h": "hidden", "n": "hidden"})
CELL_ACTIVATIONS = ("tanh", "relu", "sigmoid")
GATE_ACTIVATIONS = ("sigmoid", "hard_sigmoid")


@dataclass
class CellOptions:
    """Per pseudo-layer features beyond RNNv2 (defaults = RNNv2 semantics)."""

    peepholes: Optional[dict[str, np.ndarray]] = None
    linear_before_reset: bool = True
    activation: Optional[str] = None  # None: tanh (LSTM/GRU) or the op (relu/tanh RNN)
    recurrent_activation: str = "sigmoid"
    recurrent_alpha: Optional[float] = None
    recurrent_beta: Optional[float] = None
    clip: Optional[float] = None
    unsupported: list[str] = field(default_factory=list)  # features found in set_cell that no op can express


class RNNv2Layer(Layer):
    """Outputs 0: y [N, S, K*H]; 1: h_n [N, L, H]; 2 (LSTM): c_n [N, L, H], L = layer_count*K."""

    type = "rnn_v2"
    output_names = ("y", "h_n", "c_n")

    def __init__(self, x: Tensor, layer_count: int, hidden_size: int, max_seq_length: int, op: str,
                 direction: str = "unidirection", input_mode: str = "linear"):
        super().__init__([x, None, None, None])  # x, hidden_state, cell_state, seq_lengths
        self.op = _canon("RNN operation", op, OPS)
        self.direction = _canon("RNN direction", direction, DIRECTIONS)
        self.input_mode = _canon("RNN input mode", input_mode, INPUT_MODES)
        self.layer_count, self.hidden_size, self.max_seq_length = int(layer_count), int(hidden_size), int(max_seq_length)
        self._W: dict[tuple[int, str], np.ndarray] = {}
        self._R: dict[tuple[int, str], np.ndarray] = {}
        self._Wb: dict[tuple[int, str], np.ndarray] = {}
        self._Rb: dict[tuple[int, str], np.ndarray] = {}
        self.options: dict[int, CellOptions] = {}
        # Readable weight-name prefix per stack position (e.g. the checkpoint scope of that layer).
        self.weight_names: dict[int, str] = {}

    # --- shape inference --------------------------------------------------------------
    @property
    def num_directions(self) -> int:
        return 2 if self.direction == "bidirection" else 1

    @property
    def num_layers(self) -> int:
        """TensorRT's name for layer_count."""
        return self.layer_count

    @property
    def gates(self) -> tuple[str, ...]:
        return {"lstm": LSTM_GATES, "gru": GRU_GATES}.get(self.op, RNN_GATES)

    @property
    def data_length(self) -> int:
        """E, the input's last dimension."""
        return int(self.input_tensor(0).shape[-1])  # type: ignore[arg-type]

    def infer(self) -> list[tuple[str, Shape]]:
        x = self.input_tensor(0)
        if self.layer_count < 1 or self.hidden_size < 1 or self.max_seq_length < 1:
            raise self.error(f"layer_count {self.layer_count}, hidden_size {self.hidden_size} and max_seq_length "
                             f"{self.max_seq_length} must be >= 1")
        if x.dtype not in FLOAT_DTYPES:
            raise self.error(f"input {x.name} must be float32 or float16, got {x.dtype}")
        if x.rank != 3:
            raise self.error(f"input {x.name}{shape_str(x.shape)} must be [N, S, E]")
        n, s, e = x.shape
        if e is None:
            raise self.error(f"input {x.name}{shape_str(x.shape)} needs a known last dimension E")
        if s is not None and s != self.max_seq_length:
            raise self.error(f"input {x.name} has sequence length {s}, but max_seq_length is {self.max_seq_length}")
        if self.input_mode == "skip" and e != self.hidden_size:
            raise self.error(f"input_mode skip needs E == hidden_size, got E={e}, H={self.hidden_size}")
        h, k, lk = self.hidden_size, self.num_directions, self.layer_count * self.num_directions
        outs = [(x.dtype, (n, s, k * h)), (x.dtype, (n, lk, h))]
        if self.op == "lstm":
            outs.append((x.dtype, (n, lk, h)))
        self._check_state_inputs()
        return outs

    def _check_state_inputs(self) -> None:
        x = self.input_tensor(0)
        want = (x.shape[0], self.layer_count * self.num_directions, self.hidden_size)
        for idx, what in ((1, "hidden_state"), (2, "cell_state")):
            t = self.inputs[idx]
            if t is None:
                continue
            if t.dtype != x.dtype or t.rank != 3 or any(
                    a is not None and b is not None and a != b for a, b in zip(t.shape, want)):
                raise self.error(f"{what} {t.name} is {t.dtype}{shape_str(t.shape)}, expected {x.dtype}{shape_str(want)}")
        t = self.inputs[3]
        if t is not None and (t.dtype != "int32" or t.rank != 1 or (
                t.shape[0] is not None and x.shape[0] is not None and t.shape[0] != x.shape[0])):
            raise self.error(f"seq_lengths {t.name} is {t.dtype}{shape_str(t.shape)}, expected int32[{x.shape[0]}]")

    # --- state tensors (TensorRT attribute names) --------------------------------------
    def _set_state(self, index: int, what: str, t: Optional[Tensor]) -> None:
        if t is not None and self.network is not None:
            self.network._own(t, f"layer {self.name!r} {what}")
        if index == 2 and t is not None and self.op != "lstm":
            raise self.error("cell_state exists only for LSTM")
        old = self.inputs[index]
        self.inputs[index] = t
        try:
            self._check_state_inputs()
        except ShapeError:
            self.inputs[index] = old
            raise
        if index == 3 and t is not None and t.is_network_input and self.network is not None:
            # Random test inputs for sequence lengths must be valid lengths.
            self.network.input_hints.setdefault(t.name, {}).update(low=1, high=self.max_seq_length + 1)

    hidden_state = property(lambda self: self.inputs[1], lambda self, t: self._set_state(1, "hidden_state", t))
    cell_state = property(lambda self: self.inputs[2], lambda self, t: self._set_state(2, "cell_state", t))
    seq_lengths = property(lambda self: self.inputs[3], lambda self, t: self._set_state(3, "seq_lengths", t))

    # --- weights --------------------------------------------------------------------------
    def _gate(self, gate: Any) -> str:
        key = str(gate).rsplit(".", 1)[-1].lower()
        key = key[1:] if key.startswith("k") and key[1:] in GATE_ALIASES and len(key) > 2 else key  # kINPUT
        g = GATE_ALIASES.get(key)
        if g is None or g not in self.gates:
            raise self.error(f"{self.op} has no gate {gate!r}; its gates are {', '.join(self.gates)}")
        return g

    def _index(self, layer_index: int) -> int:
        n = self.layer_count * self.num_directions
        if not 0 <= int(layer_index) < n:
            raise self.error(f"layer_index {layer_index} out of range [0, {n})")
        return int(layer_index)

    def w_shape(self, layer_index: int) -> tuple[int, int]:
        """Shape of W for this pseudo-layer: (H, E) first layer, (H, K*H) deeper."""
        if layer_index // self.num_directions == 0:
            return (self.hidden_size, self.data_length)
        return (self.hidden_size, self.num_directions * self.hidden_size)

    def set_weights_for_gate(self, layer_index: int, gate: Any, is_w: bool, weights: Any) -> None:
        """W[gate] (is_w) or R[gate] of a pseudo-layer, row-major (rows = H), used as W·x."""
        i, g = self._index(layer_index), self._gate(gate)
        if is_w and i // self.num_directions == 0 and self.input_mode == "skip":
            raise self.error("input_mode skip: the first layer has no input weights W")
        want = self.w_shape(i) if is_w else (self.hidden_size, self.hidden_size)
        arr = _array(weights)
        if arr.shape != want:
            if arr.size != want[0] * want[1] or arr.ndim != 1:
                raise self.error(f"{'W' if is_w else 'R'}[{g}] of layer {i} has shape {arr.shape}, expected {want}")
            arr = arr.reshape(want)
        (self._W if is_w else self._R)[(i, g)] = arr

    def set_bias_for_gate(self, layer_index: int, gate: Any, is_w: bool, bias: Any) -> None:
        """Wb[gate] (is_w) or Rb[gate] of a pseudo-layer, H values."""
        i, g = self._index(layer_index), self._gate(gate)
        arr = _array(bias).reshape(-1)
        if arr.shape != (self.hidden_size,):
            raise self.error(f"{'Wb' if is_w else 'Rb'}[{g}] of layer {i} has {arr.size} values, "
                             f"expected {self.hidden_size}")
        (self._Wb if is_w else self._Rb)[(i, g)] = arr

    def get_weights_for_gate(self, layer_index: int, gate: Any, is_w: bool) -> Optional[np.ndarray]:
        return (self._W if is_w else self._R).get((self._index(layer_index), self._gate(gate)))

    def get_bias_for_gate(self, layer_index: int, gate: Any, is_w: bool) -> Optional[np.ndarray]:
        return (self._Wb if is_w else self._Rb).get((self._index(layer_index), self._gate(gate)))

    def set_cell(self, layer_index: int, cell: Any, name: Optional[str] = None) -> None:
        """Set every weight and feature of one pseudo-layer from a tf2rt.layouts.CellWeights."""
        i = self._index(layer_index)
        if cell.kind != {"relu": "rnn", "tanh": "rnn"}.get(self.op, self.op):
            raise self.error(f"set_cell: a {cell.kind} cell does not fit an RNN of op {self.op}")
        if cell.hidden_size != self.hidden_size:
            raise self.error(f"set_cell: cell hidden_size {cell.hidden_size} != {self.hidden_size}")
        unsupported = [f for f in ("projection", "cell_clip", "proj_clip") if getattr(cell, f, None) is not None]
        if getattr(cell, "projection", None) is not None:
            # R is [H, P]: nothing of this cell fits; the build reports it (UnsupportedError).
            self.options[i] = CellOptions(unsupported=unsupported)
            return
        for g in self.gates:
            if not (i // self.num_directions == 0 and self.input_mode == "skip"):
                self.set_weights_for_gate(i, g, True, cell.W[g])
            self.set_weights_for_gate(i, g, False, cell.R[g])
            self.set_bias_for_gate(i, g, True, cell.Wb[g])
            self.set_bias_for_gate(i, g, False, cell.Rb[g])
        act = getattr(cell, "activation", "tanh")
        if self.op in ("relu", "tanh") and act != self.op:
            raise self.error(f"set_cell: cell activation {act!r} does not match op {self.op!r}; "
                             f"add the layer with op={act!r}")
        opts = CellOptions(
            peepholes={g: _array(p).reshape(-1) for g, p in cell.peepholes.items()} if cell.peepholes else None,
            linear_before_reset=bool(getattr(cell, "linear_before_reset", True)),
            activation=act, recurrent_activation=getattr(cell, "recurrent_activation", "sigmoid"),
            recurrent_alpha=getattr(cell, "recurrent_alpha", None), recurrent_beta=getattr(cell, "recurrent_beta", None),
            clip=getattr(cell, "clip", None))
        opts.unsupported = unsupported
        self.set_options(i, opts)
        if name:
            self.weight_names[i // self.num_directions] = name

    def set_options(self, layer_index: int, options: CellOptions) -> None:
        """Features beyond RNNv2 for one pseudo-layer (peepholes, GRU reset placement, activations, clip)."""
        i = self._index(layer_index)
        o = options
        if o.peepholes is not None:
            if self.op != "lstm":
                raise self.error("peepholes exist only for LSTM")
            if set(o.peepholes) != set(PEEPHOLE_GATES) or any(p.shape != (self.hidden_size,) for p in o.peepholes.values()):
                raise self.error(f"peepholes must be {{{', '.join(PEEPHOLE_GATES)}}} -> ({self.hidden_size},) arrays")
        if o.activation is not None and o.activation not in CELL_ACTIVATIONS:
            raise self.error(f"activation {o.activation!r} is not supported ({', '.join(CELL_ACTIVATIONS)})")
        if o.recurrent_activation not in GATE_ACTIVATIONS:
            raise self.error(f"recurrent_activation {o.recurrent_activation!r} is not supported "
                             f"({', '.join(GATE_ACTIVATIONS)})")
        if o.recurrent_activation == "hard_sigmoid" and (o.recurrent_alpha is None or o.recurrent_beta is None):
            raise self.error("hard_sigmoid needs recurrent_alpha and recurrent_beta")
        if o.clip is not None and not o.clip > 0:
            raise self.error(f"clip must be positive, got {o.clip}")
        self.options[i] = o

    def options_for(self, layer_index: int) -> CellOptions:
        return self.options.get(layer_index) or CellOptions()

    # --- build-time checks -----------------------------------------------------------------
    def check(self) -> None:
        k = self.num_directions
        for i in range(self.layer_count * k):
            o = self.options_for(i)
            if o.unsupported:
                raise UnsupportedError(f"layer {self.name!r} ({self.type}) layer {i}: LSTM {', '.join(o.unsupported)} "
                                       "cannot be expressed by ONNX LSTM (nor TensorRT RNNv2); "
                                       "tf2rt does not support it yet")
        for i in range(self.layer_count * k):
            for g in self.gates:
                if (i, g) not in self._W and not (i // k == 0 and self.input_mode == "skip"):
                    raise self.error(f"W[{g}] of layer {i} is not set (set_weights_for_gate({i}, {g!r}, True, ...))")
                if (i, g) not in self._R:
                    raise self.error(f"R[{g}] of layer {i} is not set (set_weights_for_gate({i}, {g!r}, False, ...))")
        for pos in range(self.layer_count):
            a, b = self.options_for(pos * k), self.options_for(pos * k + k - 1)
            if a.clip != b.clip or a.linear_before_reset != b.linear_before_reset:
                raise self.error(f"layer {pos}: both directions must share clip and linear_before_reset")

    def state_pairs(self) -> list[tuple[Tensor, Tensor]]:
        """(initial state input, final state output) pairs usable for streaming."""
        pairs = []
        for idx, out in ((1, 1), (2, 2)):
            t = self.inputs[idx]
            if t is not None and t.is_network_input and out < len(self.outputs) and self.outputs[out].is_network_output:
                if t.shape == self.outputs[out].shape or t.rank == 3:
                    pairs.append((t, self.outputs[out]))
        return pairs

    def weights(self) -> dict[str, np.ndarray]:
        out = {}
        for store, tag in ((self._W, "W"), (self._R, "R"), (self._Wb, "Wb"), (self._Rb, "Rb")):
            for (i, g), arr in sorted(store.items()):
                out[f"{tag}[{i}][{g}]"] = arr
        return out

    def attributes(self) -> dict[str, Any]:
        return {"op": self.op, "layer_count": self.layer_count, "hidden_size": self.hidden_size,
                "max_seq_length": self.max_seq_length, "direction": self.direction, "input_mode": self.input_mode}


def _array(value: Any) -> np.ndarray:
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        value = value.numpy()
    arr = np.asarray(value)
    if arr.dtype not in (np.float32, np.float16):
        arr = arr.astype(np.float32)
    return np.ascontiguousarray(arr, dtype=np.float32)

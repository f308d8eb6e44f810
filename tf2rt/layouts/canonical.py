"""The canonical per-gate form of one recurrent cell (one direction of one layer).

`CellWeights` is what every converter produces and consumes, and what
`Network.add_rnn_v2(...).set_cell()` takes: per gate, row-major matrices used as `W·x`
(`W[g]` is `[H, in]`, `R[g]` is `[H, H]`) and separate input/recurrent biases
(`Wb[g]`, `Rb[g]`, `[H]`), exactly TensorRT RNNv2's per-gate weights, plus the features
some frameworks have and others lack (peepholes, projection, clipping, activations).

Equations (σ = recurrent activation, φ = activation):

* LSTM: i, f, o = σ(W x + R h + Wb + Rb [+ P ⊙ c]) (i, f peep at c[t-1], o at c[t]);
  c' = φ(W_c x + R_c h + Wb_c + Rb_c); c[t] = f ⊙ c[t-1] + i ⊙ c'; h[t] = o ⊙ φ(c[t]),
  then h[t] = projection · h[t] when a projection is present.
* GRU: z, r = σ(...); reset-after (`linear_before_reset=True`):
  h' = φ(W_h x + Wb_h + r ⊙ (R_h h + Rb_h)); reset-before: h' = φ(W_h x + Wb_h + R_h (r ⊙ h) + Rb_h);
  h[t] = (1 - z) ⊙ h' + z ⊙ h[t-1].
* RNN: h[t] = φ(W x + R h + Wb + Rb).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import ShapeError, UnsupportedError
from .gates import PEEPHOLE_GATES, gates_for

#: Activations a cell may use for its candidate / output (φ).
ACTIVATIONS: tuple[str, ...] = ("tanh", "relu", "sigmoid")
#: Activations a cell may use for its gates (σ); hard_sigmoid is clip(alpha*x + beta, 0, 1).
RECURRENT_ACTIVATIONS: tuple[str, ...] = ("sigmoid", "hard_sigmoid")

Arrays = dict[str, np.ndarray]


def _as_gate_dict(value: Mapping[str, Any] | None, what: str) -> Arrays | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ShapeError(f"CellWeights.{what} must be a dict gate -> array, got {type(value).__name__}")
    return {str(k): np.asarray(v) for k, v in value.items()}


@dataclass(eq=False)
class CellWeights:
    """Per-gate weights of one direction of one recurrent layer (see module docstring).

    `clip` has ONNX semantics (clip every gate pre-activation to [-clip, clip]);
    `cell_clip` and `proj_clip` have TF LSTMCell semantics (clip the cell state after it
    is updated, and the projected output). `linear_before_reset` only matters for GRU:
    True = reset applied after the recurrent matmul (cuDNN, TensorRT, PyTorch, Keras
    reset_after), False = before (TF GRUCell, Keras reset_after=False).
    """

    kind: str
    input_size: int
    hidden_size: int
    W: Arrays
    R: Arrays
    Wb: Arrays
    Rb: Arrays
    peepholes: Arrays | None = None
    linear_before_reset: bool = True
    activation: str = "tanh"
    recurrent_activation: str = "sigmoid"
    recurrent_alpha: float | None = None
    recurrent_beta: float | None = None
    clip: float | None = None
    cell_clip: float | None = None
    projection: np.ndarray | None = None
    proj_clip: float | None = None
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        self.W = _as_gate_dict(self.W, "W")  # type: ignore[assignment]
        self.R = _as_gate_dict(self.R, "R")  # type: ignore[assignment]
        self.Wb = _as_gate_dict(self.Wb, "Wb")  # type: ignore[assignment]
        self.Rb = _as_gate_dict(self.Rb, "Rb")  # type: ignore[assignment]
        self.peepholes = _as_gate_dict(self.peepholes, "peepholes")
        if self.projection is not None:
            self.projection = np.asarray(self.projection)
        self.input_size = int(self.input_size)
        self.hidden_size = int(self.hidden_size)
        self.validate()

    # --- properties ---------------------------------------------------------------------
    @property
    def gates(self) -> tuple[str, ...]:
        """Canonical gate names of this cell's kind."""
        return gates_for(self.kind)

    @property
    def output_size(self) -> int:
        """Size of h as seen by the next layer and the recurrence (P with a projection)."""
        return self.hidden_size if self.projection is None else int(self.projection.shape[0])

    @property
    def dtype(self) -> np.dtype:
        """The dtype of the weight matrices."""
        return self.W[self.gates[0]].dtype

    # --- checks -------------------------------------------------------------------------
    def _where(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        return f"CellWeights({self.kind}{label})"

    def validate(self) -> None:
        """Raise ShapeError / UnsupportedError if any array or attribute does not fit."""
        gates = gates_for(self.kind)
        H, E = self.hidden_size, self.input_size
        if H <= 0 or E < 0:
            raise ShapeError(f"{self._where()}: hidden_size {H} and input_size {E} must be positive")
        if self.projection is not None:
            if self.kind != "lstm":
                raise UnsupportedError(f"{self._where()}: only LSTM cells can have a projection")
            if self.projection.ndim != 2 or self.projection.shape[1] != H:
                raise ShapeError(
                    f"{self._where()}: projection has shape {tuple(self.projection.shape)}, "
                    f"expected [P, H={H}]"
                )
        expected = {
            "W": (H, E),
            "R": (H, self.output_size),
            "Wb": (H,),
            "Rb": (H,),
        }
        for what, shape in expected.items():
            arrays = getattr(self, what)
            if set(arrays) != set(gates):
                raise ShapeError(
                    f"{self._where()}: {what} has gates {sorted(arrays)}, expected {list(gates)}"
                )
            for g in gates:
                if arrays[g].shape != shape:
                    raise ShapeError(
                        f"{self._where()}: {what}[{g!r}] has shape {tuple(arrays[g].shape)}, "
                        f"expected {shape} (H={H}, input_size={E})"
                    )
        if self.peepholes is not None:
            if self.kind != "lstm":
                raise UnsupportedError(f"{self._where()}: only LSTM cells have peepholes")
            if set(self.peepholes) != set(PEEPHOLE_GATES):
                raise ShapeError(
                    f"{self._where()}: peepholes has gates {sorted(self.peepholes)}, "
                    f"expected {list(PEEPHOLE_GATES)}"
                )
            for g, p in self.peepholes.items():
                if p.shape != (H,):
                    raise ShapeError(
                        f"{self._where()}: peepholes[{g!r}] has shape {tuple(p.shape)}, expected ({H},)"
                    )
        dtypes = {a.dtype for d in (self.W, self.R, self.Wb, self.Rb, self.peepholes or {}) for a in d.values()}
        if self.projection is not None:
            dtypes.add(self.projection.dtype)
        if len(dtypes) != 1 or not all(np.issubdtype(t, np.floating) for t in dtypes):
            raise ShapeError(
                f"{self._where()}: weights must share one float dtype, got {sorted(str(t) for t in dtypes)}; "
                "cast them (e.g. .astype(np.float32)) before building the cell"
            )
        if self.activation not in ACTIVATIONS:
            raise UnsupportedError(
                f"{self._where()}: activation {self.activation!r} is not supported "
                f"(supported: {', '.join(ACTIVATIONS)})"
            )
        if self.recurrent_activation not in RECURRENT_ACTIVATIONS:
            raise UnsupportedError(
                f"{self._where()}: recurrent activation {self.recurrent_activation!r} is not "
                f"supported (supported: {', '.join(RECURRENT_ACTIVATIONS)})"
            )
        if self.recurrent_activation == "hard_sigmoid" and (
            self.recurrent_alpha is None or self.recurrent_beta is None
        ):
            raise UnsupportedError(
                f"{self._where()}: hard_sigmoid needs recurrent_alpha and recurrent_beta "
                "(Keras 2: 0.2, 0.5; Keras 3: 1/6, 0.5)"
            )
        for what in ("clip", "cell_clip", "proj_clip"):
            v = getattr(self, what)
            if v is not None and not v > 0:
                raise ShapeError(f"{self._where()}: {what} must be positive or None, got {v}")

    def unsupported_by_rnnv2(self) -> list[str]:
        """Features TensorRT RNNv2's plain per-gate cells cannot express (empty = fits)."""
        issues = []
        if self.peepholes is not None:
            issues.append("peepholes")
        if self.projection is not None:
            issues.append("projection")
        for what in ("clip", "cell_clip", "proj_clip"):
            if getattr(self, what) is not None:
                issues.append(what)
        if self.recurrent_activation != "sigmoid":
            issues.append(f"recurrent_activation={self.recurrent_activation}")
        if self.kind == "rnn":
            if self.activation not in ("tanh", "relu"):
                issues.append(f"activation={self.activation}")
        elif self.activation != "tanh":
            issues.append(f"activation={self.activation}")
        if self.kind == "gru" and not self.linear_before_reset:
            issues.append("reset-before GRU (linear_before_reset=False)")
        return issues

    # --- helpers ------------------------------------------------------------------------
    def replace(self, **changes: Any) -> "CellWeights":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def astype(self, dtype: Any) -> "CellWeights":
        """A copy with every array cast to `dtype`."""

        def cast(d: Arrays | None) -> Arrays | None:
            return None if d is None else {k: v.astype(dtype) for k, v in d.items()}

        return self.replace(
            W=cast(self.W), R=cast(self.R), Wb=cast(self.Wb), Rb=cast(self.Rb),
            peepholes=cast(self.peepholes),
            projection=None if self.projection is None else self.projection.astype(dtype),
        )

    def same_as(self, other: "CellWeights") -> bool:
        """True when every attribute and every array (dtype and bits) is identical."""
        if not isinstance(other, CellWeights):
            return False
        for f in dataclasses.fields(self):
            if f.name == "name":
                continue
            a, b = getattr(self, f.name), getattr(other, f.name)
            if isinstance(a, dict) or isinstance(b, dict):
                if a is None or b is None or set(a) != set(b):
                    return False
                if not all(_same_array(a[k], b[k]) for k in a):
                    return False
            elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
                if a is None or b is None or not _same_array(a, b):
                    return False
            elif a != b:
                return False
        return True


def _same_array(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


#: A multi-layer (and maybe bidirectional) stack: one tuple per layer, (forward,) or
#: (forward, backward).
Stack = list[tuple[CellWeights, ...]]


def validate_stack(stack: Sequence[Sequence[CellWeights]]) -> Stack:
    """Check that layers chain (layer l+1's input = dirs * layer l's output) and return a Stack."""
    if not stack:
        raise ShapeError("an RNN stack needs at least one layer")
    layers = [(layer,) if isinstance(layer, CellWeights) else tuple(layer) for layer in stack]
    out: Stack = []
    dirs = len(layers[0])
    first = layers[0][0] if dirs else None
    for l, layer in enumerate(layers):
        if len(layer) not in (1, 2) or len(layer) != dirs:
            raise ShapeError(
                f"layer {l} of the RNN stack has {len(layer)} directions; every layer needs "
                f"{dirs} (1 = unidirectional, 2 = forward, backward)"
            )
        for d, cell in enumerate(layer):
            if not isinstance(cell, CellWeights):
                raise ShapeError(f"layer {l} direction {d}: expected CellWeights, got {type(cell).__name__}")
            assert first is not None
            if cell.kind != first.kind or cell.hidden_size != first.hidden_size:
                raise ShapeError(
                    f"layer {l} direction {d} is {cell.kind} H={cell.hidden_size}; the stack is "
                    f"{first.kind} H={first.hidden_size}"
                )
            if l > 0:
                want = dirs * out[-1][0].output_size
                if cell.input_size != want:
                    raise ShapeError(
                        f"layer {l} direction {d} has input_size {cell.input_size}; the layer below "
                        f"outputs {want}"
                    )
        out.append(layer)
    return out


def combine_biases(cell: CellWeights) -> CellWeights:
    """Fold Rb into Wb (Rb becomes 0) wherever that does not change the result.

    The hidden gate of a reset-after GRU keeps its Rb: r ⊙ (R h + Rb) cannot absorb it.
    """
    Wb, Rb = dict(cell.Wb), dict(cell.Rb)
    for g in cell.gates:
        if cell.kind == "gru" and g == "hidden" and cell.linear_before_reset:
            continue
        Wb[g] = cell.Wb[g] + cell.Rb[g]
        Rb[g] = np.zeros_like(cell.Rb[g])
    return cell.replace(Wb=Wb, Rb=Rb)


def split_biases(cell: CellWeights, fraction: float = 0.5) -> CellWeights:
    """Share each combinable summed bias between Wb (`fraction`) and Rb (the rest).

    TF's cuDNN-compatible restore does this with fraction 0.5; the outputs do not change.
    """
    Wb, Rb = dict(cell.Wb), dict(cell.Rb)
    for g in cell.gates:
        if cell.kind == "gru" and g == "hidden" and cell.linear_before_reset:
            continue
        total = cell.Wb[g] + cell.Rb[g]
        Wb[g] = (total * fraction).astype(total.dtype)
        Rb[g] = (total - Wb[g]).astype(total.dtype)
    return cell.replace(Wb=Wb, Rb=Rb)

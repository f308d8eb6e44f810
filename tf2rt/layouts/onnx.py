"""ONNX LSTM / GRU / RNN operator tensors <-> CellWeights.

ONNX stores `W [dirs, n*H, in]`, `R [dirs, n*H, H]` (W·x form), `B [dirs, 2*n*H]` = Wb
then Rb, LSTM peepholes `P [dirs, 3H]` (i, o, f), directions forward then reverse. Gate
orders: LSTM i, o, f, c; GRU z, r, h. Activations are per direction: LSTM (f, g, h), GRU
(f, g), RNN (f). `clip` clips every pre-activation. No projection, no cell clip.
Pure numpy: this module does not import onnx.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import ShapeError, UnsupportedError
from .canonical import CellWeights
from .gates import ONNX_GRU, ONNX_LSTM, ONNX_PEEPHOLES, ONNX_RNN, GateOrder
from ._util import as_array, rows_per_gate, stack_rows, stack_vec, vec_per_gate

OPS = {"LSTM": ("lstm", ONNX_LSTM, 3), "GRU": ("gru", ONNX_GRU, 2), "RNN": ("rnn", ONNX_RNN, 1)}
_ONNX_TO_NAME = {"sigmoid": "sigmoid", "tanh": "tanh", "relu": "relu", "hardsigmoid": "hard_sigmoid"}
_NAME_TO_ONNX = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu", "hard_sigmoid": "HardSigmoid"}
_DEFAULTS = {"lstm": ["Sigmoid", "Tanh", "Tanh"], "gru": ["Sigmoid", "Tanh"], "rnn": ["Tanh"]}


@dataclass
class OnnxRNNWeights:
    """Inputs and attributes of one ONNX LSTM / GRU / RNN node."""

    op: str  # "LSTM" | "GRU" | "RNN"
    W: np.ndarray
    R: np.ndarray
    B: np.ndarray
    P: np.ndarray | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


def _order_for(kind: str) -> GateOrder:
    return {"lstm": ONNX_LSTM, "gru": ONNX_GRU, "rnn": ONNX_RNN}[kind]


def _parse_activations(
    op: str, kind: str, dirs: int, activations: Sequence[str] | None,
    alphas: Sequence[float] | None, betas: Sequence[float] | None,
) -> list[dict[str, Any]]:
    per = OPS[op][2]
    acts = list(activations) if activations else _DEFAULTS[kind] * dirs
    if len(acts) == per:
        acts = acts * dirs  # one list for every direction
    if len(acts) != per * dirs:
        raise ShapeError(f"ONNX {op} activations {acts} should list {per} functions per direction ({dirs})")
    alphas, betas = list(alphas or []), list(betas or [])
    names: list[tuple[str, float | None, float | None]] = []
    for a in acts:
        n = _ONNX_TO_NAME.get(a.lower())
        if n is None:
            raise UnsupportedError(f"ONNX {op} activation {a!r} is not supported (supported: {', '.join(_NAME_TO_ONNX.values())})")
        if n == "hard_sigmoid":
            # onnxruntime and the spec consume alpha/beta only for functions that take them
            alpha = alphas.pop(0) if alphas else 0.2
            beta = betas.pop(0) if betas else 0.5
            names.append((n, alpha, beta))
        else:
            names.append((n, None, None))
    out = []
    for d in range(dirs):
        fs = names[d * per:(d + 1) * per]
        if kind == "rnn":
            f = fs[0]
            if f[0] not in ("tanh", "relu", "sigmoid"):
                raise UnsupportedError(f"ONNX RNN activation {f[0]} is not supported")
            out.append({"activation": f[0]})
            continue
        rec, act = fs[0], fs[1]
        if kind == "lstm" and fs[2][0] != act[0]:
            raise UnsupportedError(f"ONNX LSTM with different g ({act[0]}) and h ({fs[2][0]}) activations")
        if act[0] == "hard_sigmoid":
            raise UnsupportedError(f"ONNX {op} candidate activation HardSigmoid is not supported")
        if rec[0] not in ("sigmoid", "hard_sigmoid"):
            raise UnsupportedError(f"ONNX {op} gate activation {rec[0]} is not supported")
        out.append({"activation": act[0], "recurrent_activation": rec[0],
                    "recurrent_alpha": rec[1], "recurrent_beta": rec[2]})
    return out


def from_onnx(
    op: str, W: Any, R: Any, B: Any = None, P: Any = None, *,
    linear_before_reset: int = 0, activations: Sequence[str] | None = None,
    activation_alpha: Sequence[float] | None = None, activation_beta: Sequence[float] | None = None,
    clip: float | None = None, input_forget: int = 0, name: str = "",
) -> tuple[CellWeights, ...]:
    """CellWeights of every direction of one ONNX LSTM / GRU / RNN node (forward first)."""
    if op not in OPS:
        raise UnsupportedError(f"unknown ONNX recurrent op {op!r}; use LSTM, GRU or RNN")
    if input_forget:
        raise UnsupportedError("ONNX LSTM input_forget=1 (coupled input and forget gates) is not supported")
    kind, order, _ = OPS[op]
    n = len(order.gates)
    Wa, Ra = as_array(W, f"ONNX {op} W"), as_array(R, f"ONNX {op} R")
    if Wa.ndim != 3 or Ra.ndim != 3 or Wa.shape[1] % n or Wa.shape[0] not in (1, 2):
        raise ShapeError(f"ONNX {op} W {tuple(Wa.shape)} / R {tuple(Ra.shape)} are not [dirs, {n}H, in] / [dirs, {n}H, H]")
    dirs, H = Wa.shape[0], Wa.shape[1] // n
    if Ra.shape != (dirs, n * H, H):
        raise ShapeError(f"ONNX {op} R has shape {tuple(Ra.shape)}, expected {(dirs, n * H, H)}")
    Ba = np.zeros((dirs, 2 * n * H), Wa.dtype) if B is None else as_array(B, f"ONNX {op} B")
    if Ba.shape != (dirs, 2 * n * H):
        raise ShapeError(f"ONNX {op} B has shape {tuple(Ba.shape)}, expected {(dirs, 2 * n * H)}")
    Pa = None
    if P is not None:
        if kind != "lstm":
            raise ShapeError(f"ONNX {op} has no peephole input P")
        Pa = as_array(P, "ONNX LSTM P")
        if Pa.shape != (dirs, 3 * H):
            raise ShapeError(f"ONNX LSTM P has shape {tuple(Pa.shape)}, expected {(dirs, 3 * H)}")
    acts = _parse_activations(op, kind, dirs, activations, activation_alpha, activation_beta)
    cells = []
    for d in range(dirs):
        extra: dict[str, Any] = dict(acts[d])
        if kind == "gru":
            extra["linear_before_reset"] = bool(linear_before_reset)
        cells.append(CellWeights(
            kind, Wa.shape[2], H,
            W=rows_per_gate(Wa[d], order, f"ONNX {op} W"), R=rows_per_gate(Ra[d], order, f"ONNX {op} R"),
            Wb=vec_per_gate(Ba[d, :n * H], order, f"ONNX {op} B"),
            Rb=vec_per_gate(Ba[d, n * H:], order, f"ONNX {op} B"),
            peepholes=None if Pa is None else vec_per_gate(Pa[d], ONNX_PEEPHOLES, "ONNX LSTM P"),
            clip=clip, name=f"{name}/{('forward', 'reverse')[d]}" if name else "", **extra,
        ))
    return tuple(cells)


def to_onnx(cells: Sequence[CellWeights] | CellWeights) -> OnnxRNNWeights:
    """ONNX node inputs W, R, B (, P) and attributes for one layer: (forward,) or (forward, reverse)."""
    if isinstance(cells, CellWeights):
        cells = (cells,)
    cells = tuple(cells)
    if len(cells) not in (1, 2):
        raise ShapeError(f"an ONNX recurrent node has 1 or 2 directions, got {len(cells)}")
    first = cells[0]
    for c in cells:
        bad = [w for w in ("projection", "cell_clip", "proj_clip") if getattr(c, w) is not None]
        if bad:
            raise UnsupportedError(
                f"ONNX {c.kind.upper()} cannot express {', '.join(bad)} (TF LSTMCell num_proj / cell_clip); "
                "build the cell without them or lower the model with an explicit loop"
            )
        if (c.kind, c.hidden_size, c.input_size) != (first.kind, first.hidden_size, first.input_size):
            raise ShapeError("both directions of an ONNX recurrent node need the same kind and sizes")
        if c.clip != first.clip or (c.kind == "gru" and c.linear_before_reset != first.linear_before_reset):
            raise UnsupportedError("both directions of an ONNX recurrent node need the same clip / linear_before_reset")
    kind = first.kind
    order = _order_for(kind)
    op = kind.upper()
    W = np.stack([stack_rows(c.W, order) for c in cells])
    R = np.stack([stack_rows(c.R, order) for c in cells])
    B = np.stack([np.concatenate([stack_vec(c.Wb, order), stack_vec(c.Rb, order)]) for c in cells])
    P = None
    if kind == "lstm" and any(c.peepholes is not None for c in cells):
        P = np.stack([
            stack_vec(c.peepholes, ONNX_PEEPHOLES) if c.peepholes is not None
            else np.zeros(3 * c.hidden_size, c.dtype) for c in cells
        ])
    attrs: dict[str, Any] = {"hidden_size": first.hidden_size,
                             "direction": "bidirectional" if len(cells) == 2 else "forward"}
    acts: list[str] = []
    alphas: list[float] = []
    betas: list[float] = []
    for c in cells:
        if kind == "rnn":
            acts.append(_NAME_TO_ONNX[c.activation])
            continue
        acts.append(_NAME_TO_ONNX[c.recurrent_activation])
        if c.recurrent_activation == "hard_sigmoid":
            alphas.append(float(c.recurrent_alpha))  # type: ignore[arg-type]
            betas.append(float(c.recurrent_beta))  # type: ignore[arg-type]
        acts.extend([_NAME_TO_ONNX[c.activation]] * (2 if kind == "lstm" else 1))
    if acts != _DEFAULTS[kind] * len(cells):
        attrs["activations"] = acts
        if alphas:
            attrs["activation_alpha"] = alphas
            attrs["activation_beta"] = betas
    if first.clip is not None:
        attrs["clip"] = float(first.clip)
    if kind == "gru":
        attrs["linear_before_reset"] = int(first.linear_before_reset)
    return OnnxRNNWeights(op, W, R, B, P, attrs)

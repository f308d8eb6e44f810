"""PyTorch nn.LSTM / nn.GRU / nn.RNN state_dicts <-> CellWeights stacks.

PyTorch stores `weight_ih_l{k}[_reverse]` `[n*H, in]` and `weight_hh_l{k}` `[n*H, H]`
(already W·x form), `bias_ih_l{k}` / `bias_hh_l{k}` `[n*H]`, and for LSTMs with proj_size
`weight_hr_l{k}` `[P, H]`. Gate order: LSTM i, f, g, o; GRU r, z, n (reset-after).
Importing this module does not import torch; tensors or numpy arrays are accepted.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..errors import MissingTensorError, ShapeError, UnsupportedError
from .canonical import CellWeights, Stack, validate_stack
from .gates import TORCH_GRU, TORCH_LSTM, TORCH_RNN
from ._util import as_array, rows_per_gate, stack_rows, stack_vec, vec_per_gate

#: torch `mode` -> (kind, activation)
MODES = {"LSTM": ("lstm", "tanh"), "GRU": ("gru", "tanh"), "RNN_TANH": ("rnn", "tanh"), "RNN_RELU": ("rnn", "relu")}
_ORDERS = {"lstm": TORCH_LSTM, "gru": TORCH_GRU, "rnn": TORCH_RNN}


def from_torch_cell(
    weight_ih: Any, weight_hh: Any, bias_ih: Any = None, bias_hh: Any = None, *,
    mode: str = "LSTM", weight_hr: Any = None, name: str = "",
) -> CellWeights:
    """CellWeights of one direction of one layer of a torch RNN module."""
    if mode not in MODES:
        raise UnsupportedError(f"unknown torch RNN mode {mode!r}; use one of {', '.join(MODES)}")
    kind, act = MODES[mode]
    order = _ORDERS[kind]
    Wi = as_array(weight_ih, f"{name} weight_ih")
    Wh = as_array(weight_hh, f"{name} weight_hh")
    if Wi.ndim != 2 or Wh.ndim != 2 or Wi.shape[0] % len(order.gates):
        raise ShapeError(f"{name}: weight_ih {tuple(Wi.shape)} / weight_hh {tuple(Wh.shape)} are not [n*H, in] / [n*H, H]")
    H = Wi.shape[0] // len(order.gates)
    bi = np.zeros(Wi.shape[0], Wi.dtype) if bias_ih is None else as_array(bias_ih, f"{name} bias_ih")
    bh = np.zeros(Wi.shape[0], Wi.dtype) if bias_hh is None else as_array(bias_hh, f"{name} bias_hh")
    return CellWeights(
        kind, Wi.shape[1], H,
        W=rows_per_gate(Wi, order, f"{name} weight_ih"), R=rows_per_gate(Wh, order, f"{name} weight_hh"),
        Wb=vec_per_gate(bi, order, f"{name} bias_ih"), Rb=vec_per_gate(bh, order, f"{name} bias_hh"),
        activation=act, linear_before_reset=True,
        projection=None if weight_hr is None else as_array(weight_hr, f"{name} weight_hr"), name=name,
    )


def from_torch(state_dict: Mapping[str, Any], mode: str = "LSTM", *, prefix: str = "") -> Stack:
    """A CellWeights stack from an nn.LSTM / nn.GRU / nn.RNN state_dict (layers and
    directions found from the keys; `prefix` selects a submodule, e.g. "encoder.rnn.")."""
    keys = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    if "weight_ih_l0" not in keys:
        raise MissingTensorError(
            f"no {prefix}weight_ih_l0 in the state_dict; pass prefix= for a submodule "
            f"(keys: {sorted(state_dict)[:8]})"
        )
    dirs = 2 if "weight_ih_l0_reverse" in keys else 1
    stack: Stack = []
    l = 0
    while f"weight_ih_l{l}" in keys:
        layer = []
        for suffix in ("", "_reverse")[:dirs]:
            k = f"l{l}{suffix}"
            if f"weight_hh_{k}" not in keys or f"weight_ih_{k}" not in keys:
                raise MissingTensorError(f"state_dict has no {prefix}weight_ih_{k} / weight_hh_{k}")
            layer.append(from_torch_cell(
                keys[f"weight_ih_{k}"], keys[f"weight_hh_{k}"], keys.get(f"bias_ih_{k}"), keys.get(f"bias_hh_{k}"),
                mode=mode, weight_hr=keys.get(f"weight_hr_{k}"), name=f"{prefix}{k}",
            ))
        stack.append(tuple(layer))
        l += 1
    return validate_stack(stack)


def _check(cell: CellWeights) -> None:
    bad = []
    if cell.peepholes is not None:
        bad.append("peepholes")
    for what in ("clip", "cell_clip", "proj_clip"):
        if getattr(cell, what) is not None:
            bad.append(what)
    if cell.kind != "rnn" and (cell.activation != "tanh" or cell.recurrent_activation != "sigmoid"):
        bad.append(f"activations {cell.recurrent_activation}/{cell.activation}")
    if cell.kind == "rnn" and cell.activation not in ("tanh", "relu"):
        bad.append(f"activation {cell.activation}")
    if cell.kind == "gru" and not cell.linear_before_reset:
        bad.append("reset-before GRU (torch.nn.GRU applies the reset gate after the matmul)")
    if bad:
        raise UnsupportedError(f"torch.nn RNN modules cannot express {', '.join(bad)}; export to ONNX instead")


def torch_mode(cell: CellWeights) -> str:
    """The torch RNN mode ("LSTM", "GRU", "RNN_TANH", "RNN_RELU") of a cell."""
    if cell.kind == "rnn":
        return "RNN_RELU" if cell.activation == "relu" else "RNN_TANH"
    return cell.kind.upper()


def to_torch(stack: Stack) -> dict[str, np.ndarray]:
    """A state_dict (numpy arrays) for nn.LSTM / nn.GRU / nn.RNN built with `torch_kwargs(stack)`."""
    stack = validate_stack(stack)
    out: dict[str, np.ndarray] = {}
    for l, layer in enumerate(stack):
        for d, cell in enumerate(layer):
            _check(cell)
            order = _ORDERS[cell.kind]
            k = f"l{l}{'_reverse' if d else ''}"
            out[f"weight_ih_{k}"] = stack_rows(cell.W, order)
            out[f"weight_hh_{k}"] = stack_rows(cell.R, order)
            out[f"bias_ih_{k}"] = stack_vec(cell.Wb, order)
            out[f"bias_hh_{k}"] = stack_vec(cell.Rb, order)
            if cell.projection is not None:
                out[f"weight_hr_{k}"] = cell.projection.copy()
    return out


def torch_kwargs(stack: Stack) -> dict[str, Any]:
    """Constructor arguments of the torch module that `to_torch(stack)` fits (batch_first=True)."""
    stack = validate_stack(stack)
    cell = stack[0][0]
    kw: dict[str, Any] = {
        "input_size": cell.input_size, "hidden_size": cell.hidden_size, "num_layers": len(stack),
        "bidirectional": len(stack[0]) == 2, "batch_first": True,
    }
    if cell.kind == "rnn":
        kw["nonlinearity"] = cell.activation
    if cell.projection is not None:
        kw["proj_size"] = cell.output_size
    return kw


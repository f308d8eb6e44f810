"""Keras recurrent layers (LSTM, GRU, SimpleRNN, Bidirectional) <-> CellWeights.

Keras stores `kernel [in, n*u]`, `recurrent_kernel [u, n*u]` (x·K form) and a bias:
LSTM `[4u]` (i, f, c, o), GRU `[3u]` (reset_after=False) or `[2, 3u]` (reset_after=True,
row 0 input bias, row 1 recurrent bias) in z, r, h order, SimpleRNN `[u]`.
`hard_sigmoid` differs by version: Keras 2 (tf.keras / tf_keras) clip(0.2x + 0.5, 0, 1),
Keras 3 clip(x/6 + 0.5, 0, 1); it is carried as recurrent_alpha / recurrent_beta.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import ShapeError, UnsupportedError
from .canonical import ACTIVATIONS, CellWeights
from .gates import KERAS_GRU, KERAS_LSTM, KERAS_RNN, GateOrder
from ._util import as_array, cols_per_gate_T, expect_shape, stack_cols_T, stack_vec, vec_per_gate, zeros_like_gates

#: (alpha, beta) of hard_sigmoid per Keras major version.
HARD_SIGMOID = {2: (0.2, 0.5), 3: (1.0 / 6.0, 0.5)}


def _activation_name(value: Any) -> str:
    if isinstance(value, Mapping):  # a serialized activation: {"class_name": ..., "config": {...}}
        cfg = value.get("config")
        value = cfg.get("name") if isinstance(cfg, Mapping) and "name" in cfg else value.get("class_name")
    if value is None:
        return "linear"
    return str(value).lower()


def _recurrent(name: Any, keras_version: int) -> dict[str, Any]:
    n = _activation_name(name)
    if n == "sigmoid":
        return {"recurrent_activation": "sigmoid"}
    if n == "hard_sigmoid":
        if keras_version not in HARD_SIGMOID:
            raise UnsupportedError(f"unknown Keras major version {keras_version}; use 2 or 3")
        a, b = HARD_SIGMOID[keras_version]
        return {"recurrent_activation": "hard_sigmoid", "recurrent_alpha": a, "recurrent_beta": b}
    raise UnsupportedError(
        f"Keras recurrent_activation {n!r} is not supported (supported: sigmoid, hard_sigmoid)"
    )


def _activation(name: Any) -> str:
    n = _activation_name(name)
    if n not in ACTIVATIONS:
        raise UnsupportedError(f"Keras activation {n!r} is not supported (supported: {', '.join(ACTIVATIONS)})")
    return n


def _common(kernel: Any, recurrent_kernel: Any, order: GateOrder) -> tuple[np.ndarray, np.ndarray, int]:
    K = as_array(kernel, f"Keras {order.kind} kernel")
    Rk = as_array(recurrent_kernel, f"Keras {order.kind} recurrent_kernel")
    n = len(order.gates)
    if K.ndim != 2 or Rk.ndim != 2 or Rk.shape[1] % n or K.shape[1] != Rk.shape[1]:
        raise ShapeError(
            f"Keras {order.kind} kernel {tuple(K.shape)} / recurrent_kernel {tuple(Rk.shape)} "
            f"do not fit [in, {n}u] / [u, {n}u]"
        )
    u = Rk.shape[1] // n
    expect_shape(Rk, (u, n * u), f"Keras {order.kind} recurrent_kernel")
    return K, Rk, u


def from_keras_lstm(
    kernel: Any, recurrent_kernel: Any, bias: Any = None, *,
    activation: Any = "tanh", recurrent_activation: Any = "sigmoid", keras_version: int = 3, name: str = "",
) -> CellWeights:
    """CellWeights from a Keras LSTM layer's weights (bias None = use_bias=False)."""
    K, Rk, u = _common(kernel, recurrent_kernel, KERAS_LSTM)
    b = np.zeros(4 * u, K.dtype) if bias is None else as_array(bias, "Keras LSTM bias")
    expect_shape(b, (4 * u,), "Keras LSTM bias")
    Wb = vec_per_gate(b, KERAS_LSTM, "Keras LSTM bias")
    return CellWeights(
        "lstm", K.shape[0], u,
        W=cols_per_gate_T(K, KERAS_LSTM, "kernel"), R=cols_per_gate_T(Rk, KERAS_LSTM, "recurrent_kernel"),
        Wb=Wb, Rb=zeros_like_gates(Wb), activation=_activation(activation),
        **_recurrent(recurrent_activation, keras_version), name=name,
    )


def from_keras_gru(
    kernel: Any, recurrent_kernel: Any, bias: Any = None, *, reset_after: bool = True,
    activation: Any = "tanh", recurrent_activation: Any = "sigmoid", keras_version: int = 3, name: str = "",
) -> CellWeights:
    """CellWeights from a Keras GRU layer's weights."""
    K, Rk, u = _common(kernel, recurrent_kernel, KERAS_GRU)
    if reset_after:
        b = np.zeros((2, 3 * u), K.dtype) if bias is None else as_array(bias, "Keras GRU bias")
        expect_shape(b, (2, 3 * u), "Keras GRU bias (reset_after=True)")
        Wb = vec_per_gate(b[0], KERAS_GRU, "Keras GRU input bias")
        Rb = vec_per_gate(b[1], KERAS_GRU, "Keras GRU recurrent bias")
    else:
        b = np.zeros(3 * u, K.dtype) if bias is None else as_array(bias, "Keras GRU bias")
        expect_shape(b, (3 * u,), "Keras GRU bias (reset_after=False)")
        Wb = vec_per_gate(b, KERAS_GRU, "Keras GRU bias")
        Rb = zeros_like_gates(Wb)
    return CellWeights(
        "gru", K.shape[0], u,
        W=cols_per_gate_T(K, KERAS_GRU, "kernel"), R=cols_per_gate_T(Rk, KERAS_GRU, "recurrent_kernel"),
        Wb=Wb, Rb=Rb, linear_before_reset=bool(reset_after), activation=_activation(activation),
        **_recurrent(recurrent_activation, keras_version), name=name,
    )


def from_keras_simple_rnn(
    kernel: Any, recurrent_kernel: Any, bias: Any = None, *, activation: Any = "tanh", name: str = "",
) -> CellWeights:
    """CellWeights from a Keras SimpleRNN layer's weights."""
    K, Rk, u = _common(kernel, recurrent_kernel, KERAS_RNN)
    b = np.zeros(u, K.dtype) if bias is None else as_array(bias, "Keras SimpleRNN bias")
    expect_shape(b, (u,), "Keras SimpleRNN bias")
    Wb = vec_per_gate(b, KERAS_RNN, "bias")
    return CellWeights(
        "rnn", K.shape[0], u,
        W=cols_per_gate_T(K, KERAS_RNN, "kernel"), R=cols_per_gate_T(Rk, KERAS_RNN, "recurrent_kernel"),
        Wb=Wb, Rb=zeros_like_gates(Wb), activation=_activation(activation), name=name,
    )


def from_keras_cudnn_lstm(kernel: Any, recurrent_kernel: Any, bias: Any, *, name: str = "") -> CellWeights:
    """CellWeights from a Keras 2 `CuDNNLSTM` layer: kernel/recurrent_kernel as LSTM (i, f, c, o),
    bias `[8u]` = input biases then recurrent biases, each in i, f, c, o order."""
    K, Rk, u = _common(kernel, recurrent_kernel, KERAS_LSTM)
    b = as_array(bias, "Keras CuDNNLSTM bias")
    expect_shape(b, (8 * u,), "Keras CuDNNLSTM bias")
    return CellWeights(
        "lstm", K.shape[0], u,
        W=cols_per_gate_T(K, KERAS_LSTM, "kernel"), R=cols_per_gate_T(Rk, KERAS_LSTM, "recurrent_kernel"),
        Wb=vec_per_gate(b[:4 * u], KERAS_LSTM, "CuDNNLSTM input bias"),
        Rb=vec_per_gate(b[4 * u:], KERAS_LSTM, "CuDNNLSTM recurrent bias"), name=name,
    )


def from_keras_cudnn_gru(kernel: Any, recurrent_kernel: Any, bias: Any, *, name: str = "") -> CellWeights:
    """CellWeights from a Keras 2 `CuDNNGRU` layer: kernel/recurrent_kernel as GRU (z, r, h),
    bias `[6u]` = input biases then recurrent biases (z, r, h); cuDNN's GRU is reset-after."""
    K, Rk, u = _common(kernel, recurrent_kernel, KERAS_GRU)
    b = as_array(bias, "Keras CuDNNGRU bias")
    expect_shape(b, (6 * u,), "Keras CuDNNGRU bias")
    return CellWeights(
        "gru", K.shape[0], u,
        W=cols_per_gate_T(K, KERAS_GRU, "kernel"), R=cols_per_gate_T(Rk, KERAS_GRU, "recurrent_kernel"),
        Wb=vec_per_gate(b[:3 * u], KERAS_GRU, "CuDNNGRU input bias"),
        Rb=vec_per_gate(b[3 * u:], KERAS_GRU, "CuDNNGRU recurrent bias"), linear_before_reset=True, name=name,
    )


def keras_activations(cell: CellWeights, keras_version: int = 3) -> dict[str, str]:
    """The Keras layer arguments (activation, recurrent_activation) that reproduce `cell`."""
    out = {"activation": cell.activation}
    if cell.kind == "rnn":
        return out
    if cell.recurrent_activation == "hard_sigmoid":
        if HARD_SIGMOID.get(keras_version) != (cell.recurrent_alpha, cell.recurrent_beta):
            raise UnsupportedError(
                f"hard_sigmoid with alpha={cell.recurrent_alpha}, beta={cell.recurrent_beta} is not "
                f"Keras {keras_version}'s hard_sigmoid {HARD_SIGMOID.get(keras_version)}"
            )
    out["recurrent_activation"] = cell.recurrent_activation
    return out


def to_keras(cell: CellWeights, *, reset_after: bool | None = None, use_bias: bool = True) -> list[np.ndarray]:
    """Keras layer weights [kernel, recurrent_kernel(, bias)] in `layer.get_weights()` order."""
    if cell.peepholes is not None or cell.projection is not None or cell.cell_clip is not None \
            or cell.clip is not None or cell.proj_clip is not None:
        raise UnsupportedError(
            "Keras recurrent layers have no peepholes, projection or clipping; export to ONNX instead"
        )
    order = {"lstm": KERAS_LSTM, "gru": KERAS_GRU, "rnn": KERAS_RNN}[cell.kind]
    out = [stack_cols_T(cell.W, order), stack_cols_T(cell.R, order)]
    if cell.kind == "gru":
        lbr = cell.linear_before_reset if reset_after is None else reset_after
        if lbr != cell.linear_before_reset:
            raise UnsupportedError(
                f"this GRU is reset_after={cell.linear_before_reset}; Keras reset_after={lbr} "
                "computes something else"
            )
        if lbr:
            bias = np.stack([stack_vec(cell.Wb, order), stack_vec(cell.Rb, order)])
        else:
            bias = stack_vec({g: cell.Wb[g] + cell.Rb[g] for g in cell.gates}, order)
    else:
        bias = stack_vec({g: cell.Wb[g] + cell.Rb[g] for g in cell.gates}, order)
    if use_bias:
        out.append(bias)
    elif np.any(bias):
        raise UnsupportedError("the cell has non-zero biases; keep use_bias=True")
    return out


_KINDS = {"LSTM": "lstm", "GRU": "gru", "SimpleRNN": "rnn"}


def from_keras_layer(
    class_name: str, config: Mapping[str, Any], weights: Sequence[Any], *, keras_version: int = 3, name: str = ""
) -> tuple[CellWeights, ...]:
    """CellWeights of a Keras LSTM / GRU / SimpleRNN layer, or of both directions of a
    Bidirectional wrapper around one, from its config and `get_weights()` list."""
    if class_name == "Bidirectional":
        inner = config.get("layer") or {}
        inner_cfg = inner.get("config", {})
        if len(weights) % 2:
            raise ShapeError(f"Bidirectional layer {name!r} has an odd number of weights ({len(weights)})")
        half = len(weights) // 2
        if inner_cfg.get("go_backwards"):
            raise UnsupportedError(f"Bidirectional layer {name!r} wraps a go_backwards layer")
        fw = from_keras_layer(inner.get("class_name", ""), inner_cfg, weights[:half],
                              keras_version=keras_version, name=f"{name}/forward")
        bw = from_keras_layer(inner.get("class_name", ""), inner_cfg, weights[half:],
                              keras_version=keras_version, name=f"{name}/backward")
        return fw + bw
    kind = _KINDS.get(class_name)
    if kind is None:
        raise UnsupportedError(
            f"Keras layer {name or class_name!r} of class {class_name!r} is not a recurrent layer "
            f"tf2rt converts (supported: {', '.join(_KINDS)}, Bidirectional)"
        )
    if config.get("go_backwards"):
        raise UnsupportedError(f"Keras layer {name!r} has go_backwards=True; reverse the input instead")
    use_bias = config.get("use_bias", True)
    need = 3 if use_bias else 2
    if len(weights) != need:
        raise ShapeError(f"Keras {class_name} {name!r} has {len(weights)} weights, expected {need}")
    bias = weights[2] if use_bias else None
    act = config.get("activation", "tanh")
    if kind == "lstm":
        return (from_keras_lstm(weights[0], weights[1], bias, activation=act,
                                recurrent_activation=config.get("recurrent_activation", "sigmoid"),
                                keras_version=keras_version, name=name),)
    if kind == "gru":
        return (from_keras_gru(weights[0], weights[1], bias, reset_after=config.get("reset_after", True),
                               activation=act,
                               recurrent_activation=config.get("recurrent_activation", "sigmoid"),
                               keras_version=keras_version, name=name),)
    return (from_keras_simple_rnn(weights[0], weights[1], bias, activation=act, name=name),)

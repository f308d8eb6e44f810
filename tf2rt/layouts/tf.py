"""TensorFlow cells <-> CellWeights.

TF cells use `[x, h] · kernel + bias` with kernel `[in + H, n*H]`: the first `in` rows
multiply the input, the rest the state; column blocks are the gates. Covered:
BasicLSTMCell / LSTMCell / LSTMBlockCell (i, j(=cell), f, o; peepholes, projection,
cell_clip; `forget_bias` added at run time, folded here into Wb["forget"]), GRUCell
(reset-before), BasicRNNCell, and the cuDNN-compatible cells (CudnnCompatibleLSTMCell
with summed or split biases, CudnnCompatibleGRUCell, reset-after).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ShapeError, UnsupportedError
from .canonical import CellWeights
from .gates import TF_GRU_CANDIDATE, TF_GRU_GATES, TF_LSTM, TF_RNN
from ._util import (
    add_scalar,
    as_array,
    cols_per_gate_T,
    expect_shape,
    stack_cols_T,
    stack_vec,
    vec_per_gate,
    zeros_like_gates,
)


def _split_kernel(kernel: np.ndarray, state_size: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    if kernel.ndim != 2 or kernel.shape[0] <= state_size:
        raise ShapeError(
            f"{what} has shape {tuple(kernel.shape)}; a TF cell kernel is [input + {state_size}, gates*H]"
        )
    in_size = kernel.shape[0] - state_size
    return kernel[:in_size], kernel[in_size:]


# --- LSTM -------------------------------------------------------------------------------
def from_tf_lstm(
    kernel: Any,
    bias: Any,
    *,
    forget_bias: float = 1.0,
    w_i_diag: Any = None,
    w_f_diag: Any = None,
    w_o_diag: Any = None,
    projection: Any = None,
    cell_clip: float | None = None,
    proj_clip: float | None = None,
    activation: str = "tanh",
    recurrent_bias: Any = None,
    name: str = "",
) -> CellWeights:
    """CellWeights from a TF BasicLSTMCell / LSTMCell / LSTMBlockCell / CudnnCompatibleLSTMCell.

    `forget_bias` is the cell's constructor argument (BasicLSTMCell and LSTMCell default
    1.0; cuDNN-compatible cells 0.0); it is added to Wb["forget"]. `projection` is the
    LSTMCell `projection/kernel` `[H, P]`. `recurrent_bias` (cuDNN split biases) goes to Rb;
    without it Rb is zero.
    """
    K = as_array(kernel, "LSTM kernel")
    b = as_array(bias, "LSTM bias")
    if K.ndim != 2 or K.shape[1] % 4:
        raise ShapeError(f"LSTM kernel has shape {tuple(K.shape)}; expected [input + H, 4H]")
    H = K.shape[1] // 4
    proj = None
    if projection is not None:
        p = as_array(projection, "LSTM projection/kernel")
        if p.ndim != 2 or p.shape[0] != H:
            raise ShapeError(f"LSTM projection/kernel has shape {tuple(p.shape)}; expected [H={H}, P]")
        proj = np.ascontiguousarray(p.T)
    state = H if proj is None else proj.shape[0]
    Kx, Kh = _split_kernel(K, state, "LSTM kernel")
    expect_shape(b, (4 * H,), "LSTM bias")
    Wb = vec_per_gate(b, TF_LSTM, "LSTM bias")
    Wb["forget"] = add_scalar(Wb["forget"], forget_bias)
    if recurrent_bias is None:
        Rb = zeros_like_gates(Wb)
    else:
        rb = as_array(recurrent_bias, "LSTM recurrent bias")
        expect_shape(rb, (4 * H,), "LSTM recurrent bias")
        Rb = vec_per_gate(rb, TF_LSTM, "LSTM recurrent bias")
    diags = {"input": w_i_diag, "forget": w_f_diag, "output": w_o_diag}
    peepholes = None
    if any(v is not None for v in diags.values()):
        if any(v is None for v in diags.values()):
            raise ShapeError("LSTM peepholes need all of w_i_diag, w_f_diag and w_o_diag")
        peepholes = {g: as_array(v, f"peephole {g}") for g, v in diags.items()}
    return CellWeights(
        "lstm", Kx.shape[0], H,
        W=cols_per_gate_T(Kx, TF_LSTM, "LSTM kernel"),
        R=cols_per_gate_T(Kh, TF_LSTM, "LSTM kernel"),
        Wb=Wb, Rb=Rb, peepholes=peepholes, activation=activation,
        cell_clip=cell_clip, projection=proj, proj_clip=proj_clip, name=name,
    )


def _require_sigmoid(cell: CellWeights, target: str) -> None:
    if cell.recurrent_activation != "sigmoid":
        raise UnsupportedError(
            f"{target} uses sigmoid gates; this cell uses {cell.recurrent_activation}. "
            "Export it to ONNX (tf2rt.layouts.to_onnx) instead"
        )
    if cell.clip is not None:
        raise UnsupportedError(f"{target} has no pre-activation clip (ONNX clip={cell.clip})")


def to_tf_lstm(cell: CellWeights, *, forget_bias: float = 1.0) -> dict[str, np.ndarray]:
    """TF LSTMCell variables {"kernel", "bias"[, "w_i_diag", "w_f_diag", "w_o_diag", "projection/kernel"]}.

    The single TF bias is Wb + Rb with `forget_bias` subtracted from the forget block (the
    TF cell adds it back at run time). Build the TF cell with the same `forget_bias`,
    activation, cell_clip and proj_clip.
    """
    if cell.kind != "lstm":
        raise UnsupportedError(f"to_tf_lstm needs an LSTM cell, got {cell.kind}")
    _require_sigmoid(cell, "TF LSTMCell")
    bias = {g: cell.Wb[g] + cell.Rb[g] for g in cell.gates}
    bias["forget"] = add_scalar(bias["forget"], -forget_bias)
    out = {
        "kernel": np.concatenate([stack_cols_T(cell.W, TF_LSTM), stack_cols_T(cell.R, TF_LSTM)], axis=0),
        "bias": stack_vec(bias, TF_LSTM),
    }
    if cell.peepholes is not None:
        out["w_i_diag"] = cell.peepholes["input"].copy()
        out["w_f_diag"] = cell.peepholes["forget"].copy()
        out["w_o_diag"] = cell.peepholes["output"].copy()
    if cell.projection is not None:
        out["projection/kernel"] = np.ascontiguousarray(cell.projection.T)
    return out


def from_tf_cudnn_lstm(
    kernel: Any, bias: Any, bias_cudnn_0: Any = None, bias_cudnn_1: Any = None, *, name: str = ""
) -> CellWeights:
    """CellWeights from CudnnCompatibleLSTMCell variables (forget_bias 0).

    With the early saveable's split biases (`bias_cudnn_0` = input, `bias_cudnn_1` =
    recurrent, both in TF i, c, f, o order) Wb/Rb are exact; otherwise the summed `bias`
    goes to Wb.
    """
    if (bias_cudnn_0 is None) != (bias_cudnn_1 is None):
        raise ShapeError("cuDNN split biases need both bias_cudnn_0 and bias_cudnn_1")
    if bias_cudnn_0 is None:
        return from_tf_lstm(kernel, bias, forget_bias=0.0, name=name)
    return from_tf_lstm(kernel, bias_cudnn_0, forget_bias=0.0, recurrent_bias=bias_cudnn_1, name=name)


def to_tf_cudnn_lstm(cell: CellWeights, *, split: bool = False) -> dict[str, np.ndarray]:
    """CudnnCompatibleLSTMCell variables {"kernel", "bias"} (+ "bias_cudnn_0/1" with split=True)."""
    if cell.unsupported_by_rnnv2():
        raise UnsupportedError(
            f"cuDNN-compatible LSTM cells cannot express {', '.join(cell.unsupported_by_rnnv2())}"
        )
    out = to_tf_lstm(cell, forget_bias=0.0)
    if split:
        out["bias_cudnn_0"] = stack_vec(cell.Wb, TF_LSTM)
        out["bias_cudnn_1"] = stack_vec(cell.Rb, TF_LSTM)
    return out


# --- GRU --------------------------------------------------------------------------------
def from_tf_gru(
    gates_kernel: Any, gates_bias: Any, candidate_kernel: Any, candidate_bias: Any,
    *, activation: str = "tanh", name: str = "",
) -> CellWeights:
    """CellWeights from a TF GRUCell (reset applied before the recurrent matmul)."""
    Kg = as_array(gates_kernel, "GRU gates/kernel")
    Kc = as_array(candidate_kernel, "GRU candidate/kernel")
    if Kg.ndim != 2 or Kg.shape[1] % 2:
        raise ShapeError(f"GRU gates/kernel has shape {tuple(Kg.shape)}; expected [input + H, 2H]")
    H = Kg.shape[1] // 2
    expect_shape(Kc, (Kg.shape[0], H), "GRU candidate/kernel")
    bg = as_array(gates_bias, "GRU gates/bias")
    bc = as_array(candidate_bias, "GRU candidate/bias")
    expect_shape(bg, (2 * H,), "GRU gates/bias")
    expect_shape(bc, (H,), "GRU candidate/bias")
    Kgx, Kgh = _split_kernel(Kg, H, "GRU gates/kernel")
    Kcx, Kch = _split_kernel(Kc, H, "GRU candidate/kernel")
    W = {**cols_per_gate_T(Kgx, TF_GRU_GATES, "gates"), **cols_per_gate_T(Kcx, TF_GRU_CANDIDATE, "candidate")}
    R = {**cols_per_gate_T(Kgh, TF_GRU_GATES, "gates"), **cols_per_gate_T(Kch, TF_GRU_CANDIDATE, "candidate")}
    Wb = {**vec_per_gate(bg, TF_GRU_GATES, "gates/bias"), **vec_per_gate(bc, TF_GRU_CANDIDATE, "candidate/bias")}
    return CellWeights(
        "gru", Kgx.shape[0], H, W=W, R=R, Wb=Wb, Rb=zeros_like_gates(Wb),
        linear_before_reset=False, activation=activation, name=name,
    )


def to_tf_gru(cell: CellWeights) -> dict[str, np.ndarray]:
    """TF GRUCell variables {"gates/kernel", "gates/bias", "candidate/kernel", "candidate/bias"}."""
    if cell.kind != "gru":
        raise UnsupportedError(f"to_tf_gru needs a GRU cell, got {cell.kind}")
    if cell.linear_before_reset:
        raise UnsupportedError(
            "TF GRUCell applies the reset gate before the recurrent matmul; this GRU applies it "
            "after (cuDNN/Keras reset_after). Use to_tf_cudnn_gru (CudnnCompatibleGRUCell) instead"
        )
    _require_sigmoid(cell, "TF GRUCell")
    # reset-before: R_h (r ⊙ h) + Rb_h, so Rb_h is a plain additive bias like Wb_h.
    bias = {g: cell.Wb[g] + cell.Rb[g] for g in cell.gates}
    return {
        "gates/kernel": np.concatenate(
            [stack_cols_T(cell.W, TF_GRU_GATES), stack_cols_T(cell.R, TF_GRU_GATES)], axis=0),
        "gates/bias": stack_vec(bias, TF_GRU_GATES),
        "candidate/kernel": np.concatenate(
            [stack_cols_T(cell.W, TF_GRU_CANDIDATE), stack_cols_T(cell.R, TF_GRU_CANDIDATE)], axis=0),
        "candidate/bias": stack_vec(bias, TF_GRU_CANDIDATE),
    }


def from_tf_cudnn_gru(
    gates_kernel: Any, gates_bias: Any,
    input_projection_kernel: Any, input_projection_bias: Any,
    hidden_projection_kernel: Any, hidden_projection_bias: Any,
    *, name: str = "",
) -> CellWeights:
    """CellWeights from CudnnCompatibleGRUCell variables (reset applied after the matmul).

    gates/bias holds the summed input+recurrent r, u biases (goes to Wb); the candidate
    keeps its split input (`candidate/input_projection/bias`) and hidden biases.
    """
    Kg = as_array(gates_kernel, "GRU gates/kernel")
    if Kg.ndim != 2 or Kg.shape[1] % 2:
        raise ShapeError(f"GRU gates/kernel has shape {tuple(Kg.shape)}; expected [input + H, 2H]")
    H = Kg.shape[1] // 2
    Kgx, Kgh = _split_kernel(Kg, H, "GRU gates/kernel")
    E = Kgx.shape[0]
    Kix = as_array(input_projection_kernel, "candidate/input_projection/kernel")
    Khh = as_array(hidden_projection_kernel, "candidate/hidden_projection/kernel")
    bg = as_array(gates_bias, "gates/bias")
    bi = as_array(input_projection_bias, "candidate/input_projection/bias")
    bh = as_array(hidden_projection_bias, "candidate/hidden_projection/bias")
    expect_shape(Kix, (E, H), "candidate/input_projection/kernel")
    expect_shape(Khh, (H, H), "candidate/hidden_projection/kernel")
    expect_shape(bg, (2 * H,), "gates/bias")
    expect_shape(bi, (H,), "candidate/input_projection/bias")
    expect_shape(bh, (H,), "candidate/hidden_projection/bias")
    W = {**cols_per_gate_T(Kgx, TF_GRU_GATES, "gates"), "hidden": np.ascontiguousarray(Kix.T)}
    R = {**cols_per_gate_T(Kgh, TF_GRU_GATES, "gates"), "hidden": np.ascontiguousarray(Khh.T)}
    Wb = {**vec_per_gate(bg, TF_GRU_GATES, "gates/bias"), "hidden": bi.copy()}
    Rb = {"reset": np.zeros_like(bg[:H]), "update": np.zeros_like(bg[:H]), "hidden": bh.copy()}
    return CellWeights("gru", E, H, W=W, R=R, Wb=Wb, Rb=Rb, linear_before_reset=True, name=name)


def to_tf_cudnn_gru(cell: CellWeights) -> dict[str, np.ndarray]:
    """CudnnCompatibleGRUCell variables (gates/kernel, gates/bias, candidate/{input,hidden}_projection/{kernel,bias})."""
    if cell.kind != "gru":
        raise UnsupportedError(f"to_tf_cudnn_gru needs a GRU cell, got {cell.kind}")
    if not cell.linear_before_reset:
        raise UnsupportedError(
            "CudnnCompatibleGRUCell applies the reset gate after the recurrent matmul; this GRU "
            "applies it before (TF GRUCell). Use to_tf_gru instead"
        )
    _require_sigmoid(cell, "CudnnCompatibleGRUCell")
    if cell.activation != "tanh":
        raise UnsupportedError(f"CudnnCompatibleGRUCell uses tanh, this cell uses {cell.activation}")
    gates_bias = {g: cell.Wb[g] + cell.Rb[g] for g in TF_GRU_GATES.gates}
    return {
        "gates/kernel": np.concatenate(
            [stack_cols_T(cell.W, TF_GRU_GATES), stack_cols_T(cell.R, TF_GRU_GATES)], axis=0),
        "gates/bias": stack_vec(gates_bias, TF_GRU_GATES),
        "candidate/input_projection/kernel": np.ascontiguousarray(cell.W["hidden"].T),
        "candidate/input_projection/bias": cell.Wb["hidden"].copy(),
        "candidate/hidden_projection/kernel": np.ascontiguousarray(cell.R["hidden"].T),
        "candidate/hidden_projection/bias": cell.Rb["hidden"].copy(),
    }


# --- plain RNN --------------------------------------------------------------------------
def from_tf_rnn(kernel: Any, bias: Any, *, activation: str = "tanh", name: str = "") -> CellWeights:
    """CellWeights from a TF BasicRNNCell (activation tanh or relu)."""
    K = as_array(kernel, "RNN kernel")
    b = as_array(bias, "RNN bias")
    if K.ndim != 2:
        raise ShapeError(f"RNN kernel has shape {tuple(K.shape)}; expected [input + H, H]")
    H = K.shape[1]
    Kx, Kh = _split_kernel(K, H, "RNN kernel")
    expect_shape(b, (H,), "RNN bias")
    Wb = vec_per_gate(b, TF_RNN, "RNN bias")
    return CellWeights(
        "rnn", Kx.shape[0], H,
        W=cols_per_gate_T(Kx, TF_RNN, "RNN kernel"), R=cols_per_gate_T(Kh, TF_RNN, "RNN kernel"),
        Wb=Wb, Rb=zeros_like_gates(Wb), activation=activation, name=name,
    )


def to_tf_rnn(cell: CellWeights) -> dict[str, np.ndarray]:
    """TF BasicRNNCell variables {"kernel", "bias"} (build the cell with cell.activation)."""
    if cell.kind != "rnn":
        raise UnsupportedError(f"to_tf_rnn needs a plain RNN cell, got {cell.kind}")
    if cell.clip is not None:
        raise UnsupportedError(f"TF BasicRNNCell has no pre-activation clip (ONNX clip={cell.clip})")
    return {
        "kernel": np.concatenate([stack_cols_T(cell.W, TF_RNN), stack_cols_T(cell.R, TF_RNN)], axis=0),
        "bias": stack_vec({g: cell.Wb[g] + cell.Rb[g] for g in cell.gates}, TF_RNN),
    }

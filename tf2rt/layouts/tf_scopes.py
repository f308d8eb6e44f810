"""Find TF1 RNN cells in a name -> array mapping (a loaded checkpoint) by their scopes.

TF1 names recurrent variables after the cell class and the wrappers around it:
`rnn/basic_lstm_cell/kernel`, `rnn/multi_rnn_cell/cell_1/gru_cell/gates/kernel`,
`bidirectional_rnn/fw/lstm_cell/kernel`,
`stack_bidirectional_rnn/cell_0/bidirectional_rnn/bw/basic_rnn_cell/bias`. Run-time options
that are not stored (forget_bias, activation, cell_clip, proj_clip) are arguments.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import numpy as np

from ..errors import MissingTensorError, UnsupportedError
from .canonical import CellWeights, Stack, validate_stack
from .tf import from_tf_cudnn_gru, from_tf_cudnn_lstm, from_tf_gru, from_tf_lstm, from_tf_rnn

#: TF cell scope name -> what it is.
CELL_SCOPES = {
    "basic_lstm_cell": "lstm",
    "lstm_cell": "lstm",
    "basic_rnn_cell": "rnn",
    "gru_cell": "gru",
    "cudnn_compatible_lstm_cell": "cudnn_lstm",
    "cudnn_compatible_gru_cell": "cudnn_gru",
}


# Names older TensorFlow versions used (what TF's checkpoint_convert.py renamed).
_OLD_NAMES = {"kernel": "weights", "bias": "biases"}


def _get(weights: Mapping[str, Any], name: str) -> np.ndarray:
    if name not in weights:
        head, _, leaf = name.rpartition("/")
        old = f"{head}/{_OLD_NAMES.get(leaf, leaf)}"
        if old not in weights:
            raise MissingTensorError(f"checkpoint has no tensor {name!r}")
        name = old
    v = weights[name]
    return np.asarray(getattr(v, "array", v))


def _opt(weights: Mapping[str, Any], name: str) -> np.ndarray | None:
    return np.asarray(getattr(weights[name], "array", weights[name])) if name in weights else None


def tf_cell(
    weights: Mapping[str, Any], scope: str, *, forget_bias: float = 1.0, activation: str = "tanh",
    cell_clip: float | None = None, proj_clip: float | None = None,
) -> CellWeights:
    """CellWeights of the TF cell whose variables live under `scope` (ending in the cell name,
    e.g. "rnn/multi_rnn_cell/cell_0/basic_lstm_cell")."""
    scope = scope.rstrip("/")
    kind = CELL_SCOPES.get(scope.rsplit("/", 1)[-1])
    if kind is None:
        raise UnsupportedError(
            f"{scope!r} does not end in a known TF cell scope ({', '.join(CELL_SCOPES)})"
        )
    s = scope + "/"
    if kind == "lstm":
        return from_tf_lstm(
            _get(weights, s + "kernel"), _get(weights, s + "bias"), forget_bias=forget_bias,
            w_i_diag=_opt(weights, s + "w_i_diag"), w_f_diag=_opt(weights, s + "w_f_diag"),
            w_o_diag=_opt(weights, s + "w_o_diag"), projection=_opt(weights, s + "projection/kernel"),
            cell_clip=cell_clip, proj_clip=proj_clip, activation=activation, name=scope,
        )
    if kind == "rnn":
        return from_tf_rnn(_get(weights, s + "kernel"), _get(weights, s + "bias"), activation=activation, name=scope)
    if kind == "gru" and s + "gates/kernel" not in weights and s + "w_ru" in weights:
        return _gru_block_cell(weights, scope, activation)
    if kind == "gru":
        return from_tf_gru(
            _get(weights, s + "gates/kernel"), _get(weights, s + "gates/bias"),
            _get(weights, s + "candidate/kernel"), _get(weights, s + "candidate/bias"),
            activation=activation, name=scope,
        )
    if kind == "cudnn_lstm":
        return from_tf_cudnn_lstm(
            _get(weights, s + "kernel"), _get(weights, s + "bias"),
            _opt(weights, s + "bias_cudnn_0"), _opt(weights, s + "bias_cudnn_1"), name=scope,
        )
    return from_tf_cudnn_gru(
        _get(weights, s + "gates/kernel"), _get(weights, s + "gates/bias"),
        _get(weights, s + "candidate/input_projection/kernel"), _get(weights, s + "candidate/input_projection/bias"),
        _get(weights, s + "candidate/hidden_projection/kernel"), _get(weights, s + "candidate/hidden_projection/bias"),
        name=scope,
    )


def find_cell_scopes(weights: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Scopes of every TF cell under `prefix`, in name order (cell_10 after cell_9)."""
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    found = set()
    names = "|".join(sorted(CELL_SCOPES, key=len, reverse=True))
    pat = re.compile(rf"^(.*?(?:^|/)(?:{names}))/")
    for name in weights:
        if not name.startswith(prefix):
            continue
        m = pat.match(name)
        if m:
            found.add(m.group(1))

    def key(s: str) -> list[Any]:
        return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]

    return sorted(found, key=key)


def tf_stack(weights: Mapping[str, Any], scope: str = "rnn", **options: Any) -> Stack:
    """The stack of cells under `scope`: a single cell, a MultiRNNCell, a bidirectional_dynamic_rnn
    (`fw`/`bw`, one layer) or a stack_bidirectional_dynamic_rnn. `options` go to `tf_cell`."""
    scope = scope.rstrip("/")
    scopes = find_cell_scopes(weights, scope)
    if not scopes:
        raise MissingTensorError(f"no TF RNN cell variables under {scope!r}")
    fw = [s for s in scopes if s.startswith(scope + "/fw/")]
    bw = [s for s in scopes if s.startswith(scope + "/bw/")]
    if fw or bw:
        if len(fw) != 1 or len(bw) != 1:
            raise UnsupportedError(
                f"{scope!r} runs independent forward ({len(fw)} layers) and backward ({len(bw)} layers) "
                f"stacks; convert them separately with tf_stack(weights, {scope + '/fw'!r}) and "
                f"tf_stack(weights, {scope + '/bw'!r})"
            )
        return validate_stack([(tf_cell(weights, fw[0], **options), tf_cell(weights, bw[0], **options))])
    layers: dict[int, list[str]] = {}
    for s in scopes:
        m = re.match(re.escape(scope) + r"/(?:multi_rnn_cell/)?cell_(\d+)/", s + "/")
        layers.setdefault(int(m.group(1)) if m else 0, []).append(s)
    if len(layers) == 1 and len(next(iter(layers.values()))) == 1:
        return validate_stack([(tf_cell(weights, scopes[0], **options),)])
    stack: Stack = []
    for l in sorted(layers):
        group = layers[l]
        f = [s for s in group if "/fw/" in s]
        b = [s for s in group if "/bw/" in s]
        if f and b:
            stack.append((tf_cell(weights, f[0], **options), tf_cell(weights, b[0], **options)))
        elif len(group) == 1:
            stack.append((tf_cell(weights, group[0], **options),))
        else:
            raise UnsupportedError(f"layer {l} under {scope!r} has several cells: {group}")
    if sorted(layers) != list(range(len(layers))):
        raise MissingTensorError(f"layers under {scope!r} are not numbered 0..{len(layers) - 1}: {sorted(layers)}")
    return validate_stack(stack)


def _gru_block_cell(weights: Mapping[str, Any], scope: str, activation: str) -> CellWeights:
    """GRUBlockCell (contrib, scope gru_cell): w_ru/b_ru (r, u gates) and w_c/b_c (candidate).

    Some versions saved the gate kernel under w_c and the candidate kernel under w_ru, so the
    tensors are told apart by shape: the gate kernel and bias have 2H columns."""
    s = scope + "/"
    kernels = sorted((_get(weights, s + "w_ru"), _get(weights, s + "w_c")), key=lambda a: -a.shape[-1])
    biases = sorted((_get(weights, s + "b_ru"), _get(weights, s + "b_c")), key=lambda a: -a.shape[-1])
    return from_tf_gru(kernels[0], biases[0], kernels[1], biases[1], activation=activation, name=scope)

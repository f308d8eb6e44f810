"""Numpy LSTM / GRU / RNN with exact ONNX semantics (opset 14+: layout, both GRU reset placements).

sequence_lens (each in [1, S]; 0 is refused, as ONNX leaves it undefined): a batch entry of length L is processed for steps [0, L) only (the reverse
direction walks L-1 .. 0); Y past L is zero and Y_h / Y_c hold the state after the last
valid step. `clip` bounds every activation input to [-clip, clip].
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

from .ops_core import sigmoid
from .registry import op

_DEFAULT_ALPHA = {"leakyrelu": 0.01, "thresholdedrelu": 1.0, "elu": 1.0, "hardsigmoid": 0.2, "scaledtanh": 1.0,
                  "affine": 1.0}
_DEFAULT_BETA = {"hardsigmoid": 0.5, "scaledtanh": 1.0, "affine": 0.0}
_TAKES_ALPHA = set(_DEFAULT_ALPHA)
_TAKES_BETA = set(_DEFAULT_BETA)


def _activation(name: str, alpha: Optional[float], beta: Optional[float]) -> Callable[[np.ndarray], np.ndarray]:
    key = name.lower()
    a = _DEFAULT_ALPHA.get(key, 0.0) if alpha is None else alpha
    b = _DEFAULT_BETA.get(key, 0.0) if beta is None else beta
    fns: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "sigmoid": sigmoid, "tanh": np.tanh, "relu": lambda x: np.maximum(x, 0),
        "hardsigmoid": lambda x: np.clip(a * x + b, 0, 1), "affine": lambda x: a * x + b,
        "leakyrelu": lambda x: np.where(x >= 0, x, a * x), "thresholdedrelu": lambda x: np.where(x > a, x, 0),
        "scaledtanh": lambda x: a * np.tanh(b * x), "elu": lambda x: np.where(x >= 0, x, a * np.expm1(np.minimum(x, 0))),
        "softsign": lambda x: x / (1 + np.abs(x)), "softplus": lambda x: np.logaddexp(0, x),
    }
    if key not in fns:
        raise ValueError(f"unsupported RNN activation {name!r}")
    fn = fns[key]
    return lambda x: np.asarray(fn(x)).astype(x.dtype, copy=False)


def _activation_list(attrs: dict, per_dir: int, defaults: Sequence[str], num_dir: int) -> list[list[Callable]]:
    """Activation functions per direction.

    activation_alpha / activation_beta are consumed in activation order, one value per
    activation that takes that parameter (as onnxruntime reads them); a list that runs out
    leaves the op's default.
    """
    names = list(attrs.get("activations") or [])
    if not names:
        names = list(defaults) * num_dir
    elif len(names) == per_dir and num_dir == 2:
        names = names * 2
    alphas = iter(attrs.get("activation_alpha") or [])
    betas = iter(attrs.get("activation_beta") or [])
    fns = []
    for n in names:
        key = n.lower()
        a = next(alphas, None) if key in _TAKES_ALPHA else None
        b = next(betas, None) if key in _TAKES_BETA else None
        fns.append(_activation(n, a, b))
    return [fns[d * per_dir:(d + 1) * per_dir] for d in range(num_dir)]


def _prepare(i: Sequence[Optional[np.ndarray]], attrs: dict, gates: int) -> tuple:
    x = i[0]
    layout = attrs.get("layout", 0)
    if layout:
        x = np.transpose(x, (1, 0, 2))
    s, n, _ = x.shape
    W, R = i[1], i[2]
    num_dir, gh, _ = W.shape
    h = gh // gates
    B = i[3] if len(i) > 3 and i[3] is not None else np.zeros((num_dir, 2 * gh), x.dtype)
    lens = i[4] if len(i) > 4 and i[4] is not None else np.full((n,), s, np.int32)
    if lens.size and (lens.min() < 1 or lens.max() > s):
        # ONNX leaves length 0 undefined (onnxruntime zeroes the final state, others keep the
        # initial one) and TensorRT rejects it; lengths past S are invalid everywhere.
        raise ValueError(f"sequence_lens must be in [1, {s}], got {lens.tolist()}")
    h0 = i[5] if len(i) > 5 and i[5] is not None else np.zeros((num_dir, n, h), x.dtype)
    if layout and len(i) > 5 and i[5] is not None:
        h0 = np.transpose(h0, (1, 0, 2))
    direction = attrs.get("direction", "forward")
    dirs = ["forward", "reverse"] if direction == "bidirectional" else [direction]
    return x, W, R, B, lens.astype(np.int64), h0, dirs, s, n, h, layout


def _clip(attrs: dict) -> Callable[[np.ndarray], np.ndarray]:
    c = attrs.get("clip")
    if c is None:
        return lambda v: v
    return lambda v: np.clip(v, -c, c).astype(v.dtype, copy=False)


def _run(x: np.ndarray, lens: np.ndarray, dirs: list[str], n: int, h: int, step: Callable, states: list) -> tuple:
    """Generic recurrence: step(d, t, active_rows, x_t, state) -> new state tuple (h first)."""
    s = x.shape[0]
    Y = np.zeros((s, len(dirs), n, h), x.dtype)
    finals = []
    for d, direction in enumerate(dirs):
        state = [v.copy() for v in states[d]]
        for k in range(s):
            # Each batch row visits its own valid steps: forward t=k, reverse t=len-1-k.
            rows = np.nonzero(lens > k)[0]
            if rows.size == 0:
                break
            t = np.full(rows.shape, k) if direction == "forward" else lens[rows] - 1 - k
            xt = x[t, rows]
            new = step(d, xt, [v[rows] for v in state])
            for v, nv in zip(state, new):
                v[rows] = nv
            Y[t, d, rows] = new[0]
        finals.append(state)
    return Y, finals


@op("LSTM")
def lstm(i: Sequence[Optional[np.ndarray]], attrs: dict) -> tuple:
    x, W, R, B, lens, h0, dirs, s, n, h, layout = _prepare(i, attrs, 4)
    c0 = i[6] if len(i) > 6 and i[6] is not None else np.zeros((len(dirs), n, h), x.dtype)
    if layout and len(i) > 6 and i[6] is not None:
        c0 = np.transpose(c0, (1, 0, 2))
    P = i[7] if len(i) > 7 and i[7] is not None else np.zeros((len(dirs), 3 * h), x.dtype)
    acts = _activation_list(attrs, 3, ("Sigmoid", "Tanh", "Tanh"), len(dirs))
    clip = _clip(attrs)
    couple = bool(attrs.get("input_forget", 0))

    def step(d: int, xt: np.ndarray, st: list) -> tuple:
        hp, cp = st
        f_act, g_act, h_act = acts[d]
        z = xt @ W[d].T + hp @ R[d].T + B[d, :4 * h] + B[d, 4 * h:]
        zi, zo, zf, zc = (z[:, j * h:(j + 1) * h] for j in range(4))
        pi, po, pf = P[d, :h], P[d, h:2 * h], P[d, 2 * h:]
        ig = f_act(clip(zi + pi * cp))
        fg = (1 - ig) if couple else f_act(clip(zf + pf * cp))
        cc = g_act(clip(zc))
        c = (fg * cp + ig * cc).astype(x.dtype)
        og = f_act(clip(zo + po * c))
        return (og * h_act(c)).astype(x.dtype), c

    Y, finals = _run(x, lens, dirs, n, h, step, [[h0[d], c0[d]] for d in range(len(dirs))])
    Yh = np.stack([f[0] for f in finals])
    Yc = np.stack([f[1] for f in finals])
    if layout:
        return np.transpose(Y, (2, 0, 1, 3)), np.transpose(Yh, (1, 0, 2)), np.transpose(Yc, (1, 0, 2))
    return Y, Yh, Yc


@op("GRU")
def gru(i: Sequence[Optional[np.ndarray]], attrs: dict) -> tuple:
    x, W, R, B, lens, h0, dirs, s, n, h, layout = _prepare(i, attrs, 3)
    acts = _activation_list(attrs, 2, ("Sigmoid", "Tanh"), len(dirs))
    clip = _clip(attrs)
    lbr = bool(attrs.get("linear_before_reset", 0))

    def step(d: int, xt: np.ndarray, st: list) -> tuple:
        (hp,) = st
        f_act, g_act = acts[d]
        Wz, Wr, Wh = W[d, :h], W[d, h:2 * h], W[d, 2 * h:]
        Rz, Rr, Rh = R[d, :h], R[d, h:2 * h], R[d, 2 * h:]
        Wbz, Wbr, Wbh = B[d, :h], B[d, h:2 * h], B[d, 2 * h:3 * h]
        Rbz, Rbr, Rbh = B[d, 3 * h:4 * h], B[d, 4 * h:5 * h], B[d, 5 * h:]
        z = f_act(clip(xt @ Wz.T + hp @ Rz.T + Wbz + Rbz))
        r = f_act(clip(xt @ Wr.T + hp @ Rr.T + Wbr + Rbr))
        if lbr:
            hh = g_act(clip(xt @ Wh.T + r * (hp @ Rh.T + Rbh) + Wbh))
        else:
            hh = g_act(clip(xt @ Wh.T + (r * hp) @ Rh.T + Rbh + Wbh))
        return ((1 - z) * hh + z * hp).astype(x.dtype),

    Y, finals = _run(x, lens, dirs, n, h, step, [[h0[d]] for d in range(len(dirs))])
    Yh = np.stack([f[0] for f in finals])
    if layout:
        return np.transpose(Y, (2, 0, 1, 3)), np.transpose(Yh, (1, 0, 2))
    return Y, Yh


@op("RNN")
def rnn(i: Sequence[Optional[np.ndarray]], attrs: dict) -> tuple:
    x, W, R, B, lens, h0, dirs, s, n, h, layout = _prepare(i, attrs, 1)
    acts = _activation_list(attrs, 1, ("Tanh",), len(dirs))
    clip = _clip(attrs)

    def step(d: int, xt: np.ndarray, st: list) -> tuple:
        (hp,) = st
        return acts[d][0](clip(xt @ W[d].T + hp @ R[d].T + B[d, :h] + B[d, h:])).astype(x.dtype),

    Y, finals = _run(x, lens, dirs, n, h, step, [[h0[d]] for d in range(len(dirs))])
    Yh = np.stack([f[0] for f in finals])
    if layout:
        return np.transpose(Y, (2, 0, 1, 3)), np.transpose(Yh, (1, 0, 2))
    return Y, Yh

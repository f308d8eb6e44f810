"""The Keras layer table, core part: activations, Dense, merges, shape and identity layers,
Embedding / Masking (masks for the recurrent layers), TimeDistributed.

Handlers are `fn(cv, name, config, args, ref) -> TV | list[TV]` (see keras_graph); 4-D
image tensors may be held NCHW inside (TV.nchw), everything else in Keras' own order.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..errors import FormatError, UnsupportedError
from .graphdef import TV, phys_axis
from .keras_graph import LAYERS, KerasConverter, check, layer

_IDENTITY = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
             "GaussianDropout", "ActivityRegularization", "AlphaDropout")


def act_name(value: Any) -> str:
    """The name of a Keras activation (a string or a serialized {"class_name", "config"})."""
    if isinstance(value, dict):
        cfg = value.get("config")
        value = cfg.get("name") if isinstance(cfg, dict) and "name" in cfg else value.get("class_name")
    return "linear" if value in (None, "") else str(value).lower()


# --- activations ---------------------------------------------------------------------
def _hard_sigmoid(cv: KerasConverter, x: Any, name: str) -> Any:
    # Keras 3: relu6(x + 3) / 6; Keras 2 (tf.keras): clip(0.2 x + 0.5, 0, 1)
    alpha = 1.0 / 6.0 if cv.keras3 else 0.2
    return cv.net.add_activation(x, "hard_sigmoid", alpha, 0.5, name=name).output


def _swish(cv: KerasConverter, x: Any, name: str, hard: bool = False) -> Any:
    gate = _hard_sigmoid(cv, x, f"{name}/gate") if hard else \
        cv.net.add_activation(x, "sigmoid", name=f"{name}/sigmoid").output
    return cv.net.add_elementwise(x, gate, "prod", name=name).output


ACTIVATIONS: dict[str, Callable[[KerasConverter, Any, str, int], Any]] = {
    "linear": lambda cv, x, n, ax: x,
    "relu": lambda cv, x, n, ax: cv.net.add_activation(x, "relu", name=n).output,
    "relu6": lambda cv, x, n, ax: cv.net.add_activation(x, "clip", 0.0, 6.0, name=n).output,
    "sigmoid": lambda cv, x, n, ax: cv.net.add_activation(x, "sigmoid", name=n).output,
    "tanh": lambda cv, x, n, ax: cv.net.add_activation(x, "tanh", name=n).output,
    "elu": lambda cv, x, n, ax: cv.net.add_activation(x, "elu", 1.0, name=n).output,
    "selu": lambda cv, x, n, ax: cv.net.add_activation(x, "selu", name=n).output,
    "softplus": lambda cv, x, n, ax: cv.net.add_activation(x, "softplus", 1.0, 1.0, name=n).output,
    "softsign": lambda cv, x, n, ax: cv.net.add_activation(x, "softsign", name=n).output,
    "gelu": lambda cv, x, n, ax: cv.net.add_activation(x, "gelu_erf", name=n).output,
    "hard_sigmoid": lambda cv, x, n, ax: _hard_sigmoid(cv, x, n),
    "swish": lambda cv, x, n, ax: _swish(cv, x, n),
    "silu": lambda cv, x, n, ax: _swish(cv, x, n),
    "hard_silu": lambda cv, x, n, ax: _swish(cv, x, n, hard=True),
    "hard_swish": lambda cv, x, n, ax: _swish(cv, x, n, hard=True),
    "softmax": lambda cv, x, n, ax: cv.net.add_softmax(x, axis=ax, name=n).output,
    "exponential": lambda cv, x, n, ax: cv.net.add_unary(x, "exp", name=n).output,
}


def activate(cv: KerasConverter, v: TV, act: Any, name: str) -> TV:
    act = act_name(act)
    if act == "linear":
        return v
    if act not in ACTIVATIONS:
        raise UnsupportedError(f"activation {act!r}")
    axis = cv.logical_axis(v, -1)
    return TV(ACTIVATIONS[act](cv, v.t, name, axis), v.nchw)


@layer("Dense", mask=True)
def _dense(cv, name, cfg, args, ref):
    w = cv.weights(name, 1)
    x = cv.plain(args[0])
    bias = w[1] if cfg.get("use_bias", True) else None
    out = cv.dense(x, w[0], bias, name)
    act = act_name(cfg.get("activation"))
    if act in (None, "linear"):
        if cv.consumers[ref] == 1:
            cv.fusable.add(id(out))
        return TV(out)
    out.name = f"{name}/linear"  # the activation's output carries the Keras layer's name
    return activate(cv, TV(out), act, f"{name}/{act}")


def _merge(op: str) -> Callable:
    def h(cv, name, cfg, args, ref):
        tvs = [a for a in args if isinstance(a, TV)]
        use_nchw = all(a.t.rank == 4 for a in tvs) and any(a.nchw for a in tvs)
        like = TV(tvs[0].t, use_nchw)
        ts = [(cv.nchw(a) if use_nchw else cv.plain(a)) if isinstance(a, TV) else
              cv.const_like(np.asarray(a, np.float32), like, f"{name}/const{i}") for i, a in enumerate(args)]
        acc = ts[0]
        for i, t in enumerate(ts[1:]):
            acc = cv.net.add_elementwise(acc, t, op, name=name if i == len(ts) - 2 else f"{name}/{i}").output
        if op == "sum" and cfg.get("_average"):
            acc = cv.net.add_scale(acc, "uniform", scale=np.float32(1.0 / len(ts)), name=f"{name}/mean").output
        return TV(acc, use_nchw)
    return h


for _k, _op in {"Add": "sum", "Multiply": "prod", "Subtract": "sub", "Maximum": "max", "Minimum": "min",
                "Divide": "div", "TrueDivide": "div"}.items():
    layer(_k, mask=True)(_merge(_op))
layer("Average", mask=True)(lambda cv, name, cfg, args, ref: _merge("sum")(cv, name, dict(cfg, _average=True),
                                                                           args, ref))


@layer("Concatenate", mask=True)
def _concat(cv, name, cfg, args, ref):
    axis = int(cfg.get("axis", -1))
    use_nchw = all(a.t.rank == 4 for a in args) and any(a.nchw for a in args)
    ts = [cv.nchw(a) if use_nchw else cv.plain(a) for a in args]
    rank = ts[0].rank
    phys = phys_axis(axis % rank) if use_nchw else axis % rank
    return TV(cv.net.add_concatenation(ts, phys, name=name).output, use_nchw)


@layer("Activation", mask=True)
def _activation(cv, name, cfg, args, ref):
    return activate(cv, args[0], cfg.get("activation"), name)


@layer("ReLU")
def _relu(cv, name, cfg, args, ref):
    v = args[0]
    mx = cfg.get("max_value")
    slope, th = float(cfg.get("negative_slope", 0.0) or 0.0), float(cfg.get("threshold", 0.0) or 0.0)
    if th != 0.0:
        raise UnsupportedError("ReLU with a threshold")
    if slope != 0.0:
        if mx is not None:
            raise UnsupportedError("ReLU with both negative_slope and max_value")
        return TV(cv.net.add_activation(v.t, "leaky_relu", slope, name=name).output, v.nchw)
    if mx is None:
        return TV(cv.net.add_activation(v.t, "relu", name=name).output, v.nchw)
    return TV(cv.net.add_activation(v.t, "clip", 0.0, float(mx), name=name).output, v.nchw)


@layer("LeakyReLU")
def _leaky(cv, name, cfg, args, ref):
    a = cfg.get("negative_slope", cfg.get("alpha", 0.3))
    return TV(cv.net.add_activation(args[0].t, "leaky_relu", float(a), name=name).output, args[0].nchw)


@layer("ELU")
def _elu(cv, name, cfg, args, ref):
    return TV(cv.net.add_activation(args[0].t, "elu", float(cfg.get("alpha", 1.0)), name=name).output, args[0].nchw)


@layer("PReLU")
def _prelu(cv, name, cfg, args, ref):
    v = args[0]
    alpha = cv.weights(name, 1)[0]  # shape of the input without batch, with shared axes set to 1
    full = alpha.reshape((1,) + alpha.shape)
    if v.nchw:
        full = full.transpose(0, 3, 1, 2)
    return TV(cv.net.add_parametric_relu(v.t, full[0], name=name).output, v.nchw)


@layer("Softmax")
def _softmax(cv, name, cfg, args, ref):
    axis = cfg.get("axis", -1)
    axis = axis[0] if isinstance(axis, list) else axis
    return TV(cv.net.add_softmax(args[0].t, axis=cv.logical_axis(args[0], int(axis)), name=name).output, args[0].nchw)


@layer("Rescaling")
def _rescaling(cv, name, cfg, args, ref):
    v = args[0]
    scale, offset = np.asarray(cfg.get("scale", 1.0), np.float32), np.asarray(cfg.get("offset", 0.0), np.float32)
    if scale.size == 1 and offset.size == 1:
        y = cv.net.add_scale(v.t, "uniform", shift=offset.reshape(()), scale=scale.reshape(()), name=name).output
        return TV(y, v.nchw)
    t = cv.net.add_elementwise(v.t, cv.const_like(scale, v, f"{name}/scale"), "prod", name=f"{name}/mul").output
    return TV(cv.net.add_elementwise(t, cv.const_like(offset, TV(t, v.nchw), f"{name}/offset"), "sum",
                                     name=name).output, v.nchw)


@layer("Normalization")
def _normalization(cv, name, cfg, args, ref):
    v = args[0]
    if cfg.get("invert"):
        raise UnsupportedError("Normalization(invert=True)")
    w = cv.get_weights(name)
    if cfg.get("mean") is not None:
        mean, var = np.asarray(cfg["mean"], np.float64), np.asarray(cfg["variance"], np.float64)
    elif len(w) >= 2:
        mean, var = np.asarray(w[0], np.float64), np.asarray(w[1], np.float64)
    else:
        raise FormatError("Normalization layer without mean and variance")
    eps = 1e-7  # keras.backend.epsilon(): Keras divides by max(sqrt(variance), epsilon)
    s = 1.0 / np.maximum(np.sqrt(var), eps)
    shape = (1,) * (len(v.shape) - mean.ndim) + mean.shape if mean.ndim else ()
    scale, shift = (s.reshape(shape)).astype(np.float32), (-mean * s).reshape(shape).astype(np.float32)
    t = cv.net.add_elementwise(v.t, cv.const_like(scale, v, f"{name}/scale"), "prod", name=f"{name}/mul").output
    return TV(cv.net.add_elementwise(t, cv.const_like(shift, v, f"{name}/shift"), "sum", name=name).output, v.nchw)


@layer("Flatten")
def _flatten(cv, name, cfg, args, ref):
    t = cv.plain(args[0])
    rest = t.shape[1:]
    n = int(np.prod(rest)) if all(d is not None for d in rest) else -1
    return TV(cv.net.add_shuffle(t, reshape_dims=[0, n], name=name).output)


@layer("Reshape")
def _reshape(cv, name, cfg, args, ref):
    target = [int(d) for d in cfg["target_shape"]]
    v = args[0]
    if v.nchw and v.t.shape[2:] == (1, 1) and (len(target) == 1 or (len(target) == 3 and target[:2] == [1, 1])):
        # [N, C, 1, 1] holds the same order as NHWC: reshape it where it is
        if len(target) == 1:
            return TV(cv.net.add_shuffle(v.t, reshape_dims=[0, target[0]], name=name).output)
        return TV(cv.net.add_shuffle(v.t, reshape_dims=[0, target[2], 1, 1], name=name).output, True)
    if v.nchw is False and v.t.rank == 2 and len(target) == 3 and target[0] == 1 and target[1] == 1:
        # [N, C] -> [N, 1, 1, C] (squeeze-and-excitation): as NCHW this is [N, C, 1, 1]
        return TV(cv.net.add_shuffle(v.t, reshape_dims=[0, target[2], 1, 1], name=name).output, True)
    return TV(cv.net.add_shuffle(cv.plain(v), reshape_dims=[0] + target, name=name).output)


for _k in _IDENTITY:  # identity at inference
    layer(_k, mask=True)(lambda cv, name, cfg, args, ref: args[0])


# --- sequences -------------------------------------------------------------------------
def not_equal_mask(cv: KerasConverter, x: Any, value: np.ndarray, name: str) -> Any:
    """float 1.0 where x != value, 0.0 where equal."""
    c = cv.net.add_constant((), value, name=f"{name}/value").output
    eq = cv.net.add_elementwise(x, c, "equal", name=f"{name}/equal").output
    eqf = cv.net.add_cast(eq, "float32", name=f"{name}/equal_f").output
    return cv.net.add_scale(eqf, "uniform", shift=np.float32(1.0), scale=np.float32(-1.0), name=name).output


@layer("Embedding")
def _embedding(cv, name, cfg, args, ref):
    ids = cv.plain(args[0])
    if not str(ids.dtype).startswith("int"):
        ids = cv.net.add_cast(ids, "int32", name=f"{name}/cast").output
    table = cv.weights(name, 1)[0]
    t = cv.net.add_constant(table.shape, table, name=f"{name}/embeddings").output
    cv.mask_out = not_equal_mask(cv, ids, np.array(0, ids.dtype), f"{name}/mask") if cfg.get("mask_zero") else None
    return TV(cv.net.add_gather(t, ids, axis=0, name=name).output)


@layer("Masking")
def _masking(cv, name, cfg, args, ref):
    x = cv.plain(args[0])
    if x.rank != 3:
        raise UnsupportedError(f"Masking of a rank-{x.rank} tensor (only sequences [N, S, F])")
    ne = not_equal_mask(cv, x, np.array(cfg.get("mask_value", 0.0), np.float32), f"{name}/not_equal")
    mask = cv.net.add_reduce(ne, "max", [2], keep_dims=False, name=f"{name}/mask").output
    cv.mask_out = mask
    m3 = cv.net.add_shuffle(mask, reshape_dims=[0, 0, 1], name=f"{name}/mask3").output
    return TV(cv.net.add_elementwise(x, m3, "prod", name=name).output)


# TimeDistributed applies its layer to every step; these layers act on the last axis only,
# so applying them to [N, S, ...] at once is the same.
_PER_STEP = {"Dense", "Activation", "Dropout", "ReLU", "LeakyReLU", "ELU", "Softmax"}


@check("TimeDistributed")
def _td_check(cfg: dict) -> list[str]:
    inner = cfg.get("layer") or {}
    if inner.get("class_name") not in _PER_STEP:
        return [f"wraps {inner.get('class_name')!r}; supported inside TimeDistributed: {', '.join(sorted(_PER_STEP))}"]
    return []


@layer("TimeDistributed", mask=True)
def _time_distributed(cv, name, cfg, args, ref):
    inner = cfg.get("layer") or {}
    problems = _td_check(cfg)
    if problems:
        raise UnsupportedError(problems[0])
    return LAYERS[inner["class_name"]](cv, name, inner.get("config") or {}, args, ref)


@layer("Dot")
def _dot(cv, name, cfg, args, ref):
    a, b = cv.plain(args[0]), cv.plain(args[1])
    axes = cfg.get("axes", -1)
    axes = [axes, axes] if isinstance(axes, int) else list(axes)
    axes = [int(ax) % t.rank for ax, t in zip(axes, (a, b))]
    if cfg.get("normalize"):
        a, b = (_l2_normalize(cv, t, ax, f"{name}/l2norm{i}") for i, (t, ax) in enumerate(zip((a, b), axes)))
    if a.rank == b.rank == 2 and axes == [1, 1]:
        p = cv.net.add_elementwise(a, b, "prod", name=f"{name}/prod").output
        return TV(cv.net.add_reduce(p, "sum", [1], keep_dims=True, name=name).output)
    if a.rank == b.rank == 3:
        op_a = "none" if axes[0] == 2 else "transpose"
        op_b = "transpose" if axes[1] == 2 else "none"
        if 0 not in axes:
            return TV(cv.net.add_matrix_multiply(a, op_a, b, op_b, name=name).output)
    raise UnsupportedError(f"Dot of ranks {a.rank} and {b.rank} over axes {axes} (supported: 2-D over axis 1, "
                           "3-D batched over axes 1 or 2)")


def _l2_normalize(cv: KerasConverter, t: Any, axis: int, name: str) -> Any:
    sq = cv.net.add_elementwise(t, t, "prod", name=f"{name}/sq").output
    ss = cv.net.add_reduce(sq, "sum", [axis], keep_dims=True, name=f"{name}/sum").output
    eps = cv.net.add_constant((), np.float32(1e-12), name=f"{name}/eps").output
    ss = cv.net.add_elementwise(ss, eps, "max", name=f"{name}/clamp").output
    inv = cv.net.add_unary(cv.net.add_unary(ss, "sqrt", name=f"{name}/sqrt").output, "recip", name=f"{name}/inv").output
    return cv.net.add_elementwise(t, inv, "prod", name=name).output


# Keras 3 writes the masks it passes between layers as op layers: not_equal(ids, 0) for
# Embedding(mask_zero=True), any(not_equal(x, value), axis=-1) for Masking. Here they
# give float 1.0 / 0.0 tensors, the form masks take inside the network.
@layer("NotEqual")
def _not_equal(cv, name, cfg, args, ref):
    if not isinstance(args[0], TV) or isinstance(args[1], TV):
        raise UnsupportedError("NotEqual is supported as a mask (a tensor compared with a constant)")
    x = cv.plain(args[0])
    return TV(not_equal_mask(cv, x, np.array(args[1], x.dtype), name))


@layer("Any")
def _any(cv, name, cfg, args, ref):
    x = cv.plain(args[0])
    axis = cfg.get("axis", None)
    if axis is None:
        raise UnsupportedError("Any over all axes")
    axes = [int(a) % x.rank for a in (axis if isinstance(axis, list) else [axis])]
    return TV(cv.net.add_reduce(x, "max", axes, keep_dims=bool(cfg.get("keepdims", False)), name=name).output)


@check("LayerNormalization")
def _ln_check(cfg: dict) -> list[str]:
    axis = cfg.get("axis", -1)
    axes = axis if isinstance(axis, list) else [axis]
    out = [] if len(axes) == 1 else [f"normalisation over axes {axes} (only the last axis)"]
    if cfg.get("rms_scaling"):
        out.append("rms_scaling=True")
    return out


@layer("LayerNormalization", mask=True)
def _layer_norm(cv, name, cfg, args, ref):
    x = cv.plain(args[0])
    axis = cfg.get("axis", -1)
    axis = (axis[0] if isinstance(axis, list) else axis) % x.rank
    if axis != x.rank - 1 or _ln_check(cfg):
        raise UnsupportedError("LayerNormalization over an axis other than the last, or with rms_scaling")
    w = cv.layer_arrays(name)
    gamma = w.pop(0) if cfg.get("scale", True) else None
    beta = w.pop(0) if cfg.get("center", True) else None
    net = cv.net
    mean = net.add_reduce(x, "avg", [axis], keep_dims=True, name=f"{name}/mean").output
    d = net.add_elementwise(x, mean, "sub", name=f"{name}/centered").output
    var = net.add_reduce(net.add_elementwise(d, d, "prod", name=f"{name}/sq").output, "avg", [axis], keep_dims=True,
                         name=f"{name}/variance").output
    std = net.add_scale(var, "uniform", shift=np.float32(cfg.get("epsilon", 1e-3)), power=np.float32(0.5),
                        name=f"{name}/std").output
    y = net.add_elementwise(d, std, "div", name=f"{name}/normalized" if gamma is not None or beta is not None
                            else name).output
    if gamma is not None:
        g = net.add_constant(gamma.shape, gamma, name=f"{name}/gamma").output
        y = net.add_elementwise(y, g, "prod", name=f"{name}/scaled" if beta is not None else name).output
    if beta is not None:
        b = net.add_constant(beta.shape, beta, name=f"{name}/beta").output
        y = net.add_elementwise(y, b, "sum", name=name).output
    return TV(y)


@layer("RepeatVector")
def _repeat_vector(cv, name, cfg, args, ref):
    x = cv.plain(args[0])
    n = int(cfg["n"])
    x3 = cv.net.add_shuffle(x, reshape_dims=[0, 1, x.shape[1] or -1], name=f"{name}/expand").output
    zeros = cv.net.add_constant((1, n, 1), np.zeros((1, n, 1), np.float32), name=f"{name}/zeros").output
    return TV(cv.net.add_elementwise(x3, zeros, "sum", name=name).output)


@layer("Permute")
def _permute(cv, name, cfg, args, ref):
    x = cv.plain(args[0])
    dims = [int(d) for d in cfg["dims"]]
    return TV(cv.net.add_shuffle(x, first_transpose=[0] + dims, name=name).output)

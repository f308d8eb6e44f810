"""Keras `.keras` / `.h5` image models (Functional or Sequential) -> Network.

The model config (JSON) gives the layer graph, the weights come from the file's HDF5 part
(tf2rt.weights.keras_file); no Keras or TensorFlow is needed. NHWC images are held NCHW
inside the network (one transpose at the input); BatchNormalization layers that follow a
convolution or a dense layer are folded into its weights. Unsupported layers are all
listed at once, with counts, before anything is built.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ..errors import FormatError, UnsupportedError
from ..network.layers_cnn import same_padding
from .graphdef import TV, LayoutBuilder, phys_axis
from .graphdef_ops import try_fold

_IDENTITY = ("Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "ActivityRegularization",
             "AlphaDropout", "SpatialDropout1D")
LAYERS: dict[str, Callable] = {}


def layer(*names: str) -> Callable[[Callable], Callable]:
    def deco(fn: Callable) -> Callable:
        for n in names:
            LAYERS[n] = fn
        return fn
    return deco


def _tensor_refs(obj: Any) -> list[tuple[str, int, int]]:
    """(layer, node, tensor) refs in an inbound-node entry (Keras 3 dicts or Keras 2 lists)."""
    out: list[tuple[str, int, int]] = []
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__":
            h = obj["config"]["keras_history"]
            return [(h[0], int(h[1]), int(h[2]))]
        for v in obj.get("args", []) if "args" in obj else obj.values():
            out += _tensor_refs(v)
        return out
    if isinstance(obj, (list, tuple)):
        if len(obj) >= 3 and isinstance(obj[0], str) and isinstance(obj[1], int) and isinstance(obj[2], int):
            return [(obj[0], obj[1], obj[2])]
        for v in obj:
            out += _tensor_refs(v)
    return out


def _node_args(node: Any) -> list[Any]:
    """The inputs of one inbound node in order: (layer, node, tensor) refs, or constants
    (Keras 3 op layers such as `x + 3.0` keep their non-tensor operands in `args`)."""
    if isinstance(node, dict) and "args" in node:
        out: list[Any] = []
        for a in node["args"]:
            if isinstance(a, (int, float)) and not isinstance(a, bool):
                out.append(float(a))
            else:
                out += _tensor_refs(a)
        return out
    return list(_tensor_refs(node))


class KerasConverter(LayoutBuilder):
    """Walks a Functional/Sequential config and adds one group of layers per Keras layer."""

    def __init__(self, config: dict, weights: Callable[[str], list[np.ndarray]], keras3: bool):
        super().__init__()
        self.config = config
        self.get_weights = weights
        self.keras3 = keras3
        self.values: dict[tuple[str, int, int], TV] = {}
        self.consumers: Counter = Counter()

    def _layers(self) -> tuple[list[dict], list, list]:
        cls, cfg = self.config.get("class_name"), self.config.get("config", {})
        if cls == "Sequential":
            layers, prev = [], None
            for i, lc in enumerate(cfg.get("layers", [])):
                lc = dict(lc)
                name = lc.get("config", {}).get("name") or f"layer_{i}"
                lc["name"] = name
                lc["inbound_nodes"] = [] if prev is None and lc["class_name"] == "InputLayer" else \
                    ([[[prev, 0, 0, {}]]] if prev else [])
                if prev is None and lc["class_name"] != "InputLayer":  # input shape given on the first layer
                    shape = lc["config"].get("batch_input_shape") or lc["config"].get("batch_shape")
                    if shape is None:
                        raise FormatError("Sequential model without an input shape")
                    layers.append({"class_name": "InputLayer", "name": "input", "inbound_nodes": [],
                                   "config": {"batch_shape": shape, "name": "input"}})
                    lc["inbound_nodes"] = [[["input", 0, 0, {}]]]
                layers.append(lc)
                prev = name
            return layers, [[layers[0]["name"], 0, 0]], [[prev, 0, 0]]
        if cls not in ("Functional", "Model"):
            raise UnsupportedError(f"Keras model class {cls!r}; only Functional and Sequential models are supported")
        return cfg["layers"], cfg["input_layers"], cfg["output_layers"]

    def convert(self, name: str) -> Any:
        from ..network import Network

        layers, ins, outs = self._layers()
        self._check(layers)
        for lc in layers:
            for node in lc.get("inbound_nodes", []):
                for ref in _tensor_refs(node):
                    self.consumers[ref] += 1
        for ref in outs if isinstance(outs[0], list) else [outs]:
            self.consumers[tuple(ref)] += 1
        self.net = Network(name)
        self.net.metadata["source_format"] = "keras"
        for lc in layers:
            cls, lname, cfg = lc["class_name"], lc.get("name") or lc["config"]["name"], lc.get("config", {})
            if cls == "InputLayer":
                shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
                dt = cfg.get("dtype", "float32")
                dt = dt if isinstance(dt, str) else "float32"
                self.values[(lname, 0, 0)] = TV(self.net.add_input(lname, dt, [None if d is None else d for d in shape]))
                continue
            for k, node in enumerate(lc.get("inbound_nodes", [])):
                args = [self.values[a] if isinstance(a, tuple) else np.float32(a) for a in _node_args(node)]
                try:
                    out = LAYERS[cls](self, lname if k == 0 else f"{lname}_{k}", cfg, args, (lname, k, 0))
                except (UnsupportedError, FormatError) as exc:
                    raise type(exc)(f"layer {lname!r} ({cls}): {exc}") from None
                self.values[(lname, k, 0)] = out
        out_refs = outs if isinstance(outs[0], list) else [outs]
        for ref in out_refs:
            v = self.values[(ref[0], int(ref[1]), int(ref[2]))]
            t = self.plain(v)
            if t.producer is None or t.is_network_output:
                t = self.net.add_identity(t, name=f"{ref[0]}/identity").output
            self.mark_output(t, ref[0])
        return self.net

    def _check(self, layers: list[dict]) -> None:
        bad: Counter = Counter()
        for lc in layers:
            cls = lc["class_name"]
            if cls != "InputLayer" and cls not in LAYERS:
                bad[cls] += 1
            act = lc.get("config", {}).get("activation")
            if cls in LAYERS and isinstance(act, str) and act not in ACTIVATIONS:
                bad[f"activation {act!r}"] += 1
        if bad:
            listed = ", ".join(f"{k} x{n}" for k, n in sorted(bad.items()))
            raise UnsupportedError(f"unsupported Keras layers: {listed}. Supported: {', '.join(sorted(LAYERS))}")

    def weights(self, lname: str, n_min: int) -> list[np.ndarray]:
        w = self.get_weights(lname)
        if len(w) < n_min:
            raise FormatError(f"layer {lname!r} has {len(w)} weight arrays in the file, expected {n_min}")
        return [np.asarray(a, dtype=np.float32) for a in w]

    def fusable_out(self, t: Any, ref: tuple) -> TV:
        if self.consumers[ref] == 1:
            self.fusable.add(id(t))
        return TV(t, nchw=True)


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
    if act is None or act == "linear":
        return v
    if not isinstance(act, str) or act not in ACTIVATIONS:
        raise UnsupportedError(f"activation {act!r}")
    axis = cv.logical_axis(v, -1)
    return TV(ACTIVATIONS[act](cv, v.t, name, axis), v.nchw)


# --- layers ----------------------------------------------------------------------------
def _two(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, float)) else (int(v[0]), int(v[1]))


def _check_channels_last(cfg: dict) -> None:
    if cfg.get("data_format", "channels_last") not in (None, "channels_last"):
        raise UnsupportedError("data_format='channels_first'")


def _pads(cfg: dict, x: Any, window: tuple, stride: tuple, dil: tuple) -> tuple[tuple, tuple]:
    if cfg.get("padding", "valid") == "valid":
        return (0, 0), (0, 0)
    if cfg["padding"] != "same":
        raise UnsupportedError(f"padding {cfg['padding']!r}")
    p = [same_padding(x.shape[2 + i], window[i], stride[i], dil[i]) for i in range(2)]
    return (p[0][0], p[1][0]), (p[0][1], p[1][1])


def _conv(cv: KerasConverter, name: str, cfg: dict, x: Any, kernel: np.ndarray, bias: Optional[np.ndarray],
          groups: int, ref: tuple, window: tuple, stride: tuple, dil: tuple, act: Any) -> TV:
    pre, post = _pads(cfg, x, window, stride, dil)
    layer = cv.net.add_convolution_nd(x, kernel.shape[0], window, kernel, bias, stride=stride, pre_padding=pre,
                                      post_padding=post, dilation=dil, num_groups=groups, name=name)
    if act not in (None, "linear"):
        layer.output.name = f"{name}/linear"  # the activation's output carries the Keras layer's name
        return activate(cv, TV(layer.output, True), act, f"{name}/{act}")
    return cv.fusable_out(layer.output, ref)


@layer("Conv2D")
def _conv2d(cv, name, cfg, args, ref):
    _check_channels_last(cfg)
    x = cv.nchw(args[0])
    w = cv.weights(name, 1)
    kernel = w[0].transpose(3, 2, 0, 1)  # [kh, kw, in/g, out] -> [out, in/g, kh, kw]
    bias = w[1] if cfg.get("use_bias", True) else None
    return _conv(cv, name, cfg, x, kernel, bias, int(cfg.get("groups", 1)), ref, _two(cfg["kernel_size"]),
                 _two(cfg.get("strides", 1)), _two(cfg.get("dilation_rate", 1)), cfg.get("activation"))


def _depthwise_kernel(w: np.ndarray) -> np.ndarray:
    kh, kw, c, m = w.shape  # output channel c*m + j reads input channel c
    return w.reshape(kh, kw, c * m).transpose(2, 0, 1)[:, None]


@layer("DepthwiseConv2D")
def _depthwise(cv, name, cfg, args, ref):
    _check_channels_last(cfg)
    x = cv.nchw(args[0])
    w = cv.weights(name, 1)
    bias = w[1] if cfg.get("use_bias", True) else None
    return _conv(cv, name, cfg, x, _depthwise_kernel(w[0]), bias, w[0].shape[2], ref, _two(cfg["kernel_size"]),
                 _two(cfg.get("strides", 1)), _two(cfg.get("dilation_rate", 1)), cfg.get("activation"))


@layer("SeparableConv2D")
def _separable(cv, name, cfg, args, ref):
    _check_channels_last(cfg)
    x = cv.nchw(args[0])
    w = cv.weights(name, 2)
    dw = cv.net.add_convolution_nd(x, w[0].shape[2] * w[0].shape[3], _two(cfg["kernel_size"]),
                                   _depthwise_kernel(w[0]), None, stride=_two(cfg.get("strides", 1)),
                                   dilation=_two(cfg.get("dilation_rate", 1)), num_groups=w[0].shape[2],
                                   name=f"{name}/depthwise")
    pre, post = _pads(cfg, x, _two(cfg["kernel_size"]), _two(cfg.get("strides", 1)), _two(cfg.get("dilation_rate", 1)))
    dw.pre_padding, dw.post_padding = pre, post
    bias = w[2] if cfg.get("use_bias", True) else None
    cfg1 = dict(cfg, padding="valid")
    return _conv(cv, f"{name}/pointwise", cfg1, dw.output, w[1].transpose(3, 2, 0, 1), bias, 1, ref, (1, 1),
                 (1, 1), (1, 1), cfg.get("activation"))


@layer("Dense")
def _dense(cv, name, cfg, args, ref):
    w = cv.weights(name, 1)
    x = cv.plain(args[0])
    bias = w[1] if cfg.get("use_bias", True) else None
    out = cv.dense(x, w[0], bias, name)
    act = cfg.get("activation")
    if act in (None, "linear"):
        if cv.consumers[ref] == 1:
            cv.fusable.add(id(out))
        return TV(out)
    out.name = f"{name}/linear"  # the activation's output carries the Keras layer's name
    return activate(cv, TV(out), act, f"{name}/{act}")


@layer("BatchNormalization")
def _batchnorm(cv, name, cfg, args, ref):
    w = list(cv.get_weights(name))
    gamma = np.asarray(w.pop(0), np.float64) if cfg.get("scale", True) else None
    beta = np.asarray(w.pop(0), np.float64) if cfg.get("center", True) else None
    if len(w) < 2:
        raise FormatError("BatchNormalization without moving statistics")
    mean, var = np.asarray(w[0], np.float64), np.asarray(w[1], np.float64)
    s = 1.0 / np.sqrt(var + float(cfg.get("epsilon", 1e-3)))
    if gamma is not None:
        s = s * gamma
    shift = -mean * s + (beta if beta is not None else 0.0)
    v = args[0]
    axis = cfg.get("axis", -1)
    axis = axis[0] if isinstance(axis, list) else axis
    if axis % len(v.shape) != len(v.shape) - 1:
        raise UnsupportedError(f"BatchNormalization over axis {axis} (only the channel axis)")
    s32, b32 = s.astype(np.float32), shift.astype(np.float32)
    if try_fold(cv, v, s32, "prod") is not None:
        try_fold(cv, v, b32, "sum")
        if cv.consumers[ref] != 1:
            cv.fusable.discard(id(v.t))
        return v
    if v.t.rank == 4:
        y = cv.net.add_scale(cv.nchw(v), "channel", shift=b32, scale=s32, channel_axis=1, name=name).output
        return TV(y, True)
    y = cv.net.add_scale(v.t, "channel", shift=b32, scale=s32, channel_axis=-1, name=name).output
    return TV(y, v.nchw)


def _pool(kind: str) -> Callable:
    def h(cv, name, cfg, args, ref):
        _check_channels_last(cfg)
        x = cv.nchw(args[0])
        win = _two(cfg.get("pool_size", 2))
        stride = _two(cfg.get("strides") or win)
        pre, post = _pads(cfg, x, win, stride, (1, 1))
        return TV(cv.net.add_pooling_nd(x, kind, win, stride, pre, post, True, name=name).output, True)
    return h


LAYERS["MaxPooling2D"] = _pool("max")
LAYERS["AveragePooling2D"] = _pool("average")


def _global(op: str) -> Callable:
    def h(cv, name, cfg, args, ref):
        _check_channels_last(cfg)
        x = cv.nchw(args[0])
        keep = bool(cfg.get("keepdims", False))
        y = cv.net.add_reduce(x, op, [2, 3], keep_dims=keep, name=name).output
        return TV(y, keep)
    return h


LAYERS["GlobalAveragePooling2D"] = _global("avg")
LAYERS["GlobalMaxPooling2D"] = _global("max")


@layer("ZeroPadding2D")
def _zeropad(cv, name, cfg, args, ref):
    _check_channels_last(cfg)
    p = cfg.get("padding", 1)
    if isinstance(p, int):
        (t, b), (l, r) = (p, p), (p, p)
    else:
        (t, b), (l, r) = (_two(p[0]), _two(p[1]))
    return TV(cv.net.add_padding_nd(cv.nchw(args[0]), (t, l), (b, r), name=name).output, True)


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
    LAYERS[_k] = _merge(_op)
LAYERS["Average"] = lambda cv, name, cfg, args, ref: _merge("sum")(cv, name, dict(cfg, _average=True), args, ref)


@layer("Concatenate")
def _concat(cv, name, cfg, args, ref):
    axis = int(cfg.get("axis", -1))
    use_nchw = all(a.t.rank == 4 for a in args) and any(a.nchw for a in args)
    ts = [cv.nchw(a) if use_nchw else cv.plain(a) for a in args]
    rank = ts[0].rank
    phys = phys_axis(axis % rank) if use_nchw else axis % rank
    return TV(cv.net.add_concatenation(ts, phys, name=name).output, use_nchw)


@layer("Activation")
def _activation(cv, name, cfg, args, ref):
    return activate(cv, args[0], cfg.get("activation"), name)


@layer("ReLU")
def _relu(cv, name, cfg, args, ref):
    v = args[0]
    mx, slope, th = cfg.get("max_value"), float(cfg.get("negative_slope", 0.0) or 0.0), float(cfg.get("threshold", 0.0) or 0.0)
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


for _k in _IDENTITY:
    LAYERS[_k] = lambda cv, name, cfg, args, ref: args[0]


def import_keras(path: str | Path, name: Optional[str] = None) -> Any:
    """A Keras `.keras` / `.h5` image model as a Network (inputs/outputs keep the model's names)."""
    from ..weights.keras_file import open_keras

    kf = open_keras(path)
    try:
        config = kf.model_config()
        keras3 = not str(kf.keras_version() or "2").startswith("2")
        cv = KerasConverter(config, kf.layer_weights, keras3)
        try:
            net = cv.convert(name or config.get("config", {}).get("name") or Path(path).stem)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise FormatError(f"{path}: malformed Keras model config ({type(exc).__name__}: {exc})") from None
    finally:
        kf.close()
    net.metadata["source"] = str(path)
    return net

"""P-Net, R-Net and O-Net built layer by layer with tf2rt's Network API.

The layer list mirrors the `mtcnn` package's Keras models: Conv2D (valid) -> PReLU
(one slope per channel) -> MaxPooling2D, then 1x1 convolutions (P-Net) or dense layers
(R-Net, O-Net) with softmax face probabilities. Engine inputs and outputs stay NHWC like
the Keras models; inside, tensors are NCHW (TensorRT's convention).

TensorFlow's SAME max pooling pads its extra row/column at the end, and only when the
size needs it. For P-Net, whose input size varies, one row/column of post-padding gives
the same result for every size: a 2x2/2 window never reaches it on even sizes, and
padding never wins a max.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ...errors import Tf2rtError
from .mtcnn_weights import load_mtcnn_weights

# input side of each net (None = any size: P-Net is fully convolutional)
INPUT_SIZE = {"pnet": None, "rnet": 24, "onet": 48}
# output names, in the order the pipeline (and the Keras models) return them
OUTPUTS = {
    "pnet": ("offsets", "probs"),
    "rnet": ("offsets", "probs"),
    "onet": ("offsets", "landmarks", "probs"),
}


def _conv(net: Any, x: Any, w: Mapping[str, np.ndarray], layer: str) -> Any:
    """Keras Conv2D (valid padding, stride 1): kernel [kh, kw, in, out] -> [out, in, kh, kw]."""
    k = w[f"{layer}/kernel"]
    kernel = np.ascontiguousarray(k.transpose(3, 2, 0, 1))
    return net.add_convolution_nd(x, k.shape[3], k.shape[:2], kernel, w[f"{layer}/bias"], name=layer).output


# How PReLU reaches the engine: "decomposed" spells it relu(x) + slope * min(x, 0) with
# elementwise layers - exactly PReLU, and about 4x faster in onnxruntime, whose PRelu
# kernel broadcasts a per-channel slope slowly (measured 13.7 ms vs 3.1 ms on a
# [1, 10, 305, 305] tensor, one thread); "layer" uses the parametric_relu layer.
PRELU_MODES = ("decomposed", "layer")


def _prelu(net: Any, x: Any, w: Mapping[str, np.ndarray], layer: str, spatial: bool, mode: str) -> Any:
    """Keras PReLU: per-channel slope, broadcast as [C, 1, 1] on NCHW or [C] on [N, C]."""
    a = w[f"{layer}/alpha"].reshape(-1)
    slope = a.reshape(-1, 1, 1) if spatial else a
    if mode == "layer":
        return net.add_parametric_relu(x, slope, name=layer).output
    shape = (1, len(a), 1, 1) if spatial else (1, len(a))
    s = net.add_constant(shape, slope.reshape(shape), name=f"{layer}/alpha").output
    zero = net.add_constant((1,) * len(shape), np.zeros((1,) * len(shape), np.float32), name=f"{layer}/zero").output
    pos = net.add_activation(x, "relu", name=f"{layer}/positive").output
    neg = net.add_elementwise(x, zero, "min", name=f"{layer}/negative").output
    scaled = net.add_elementwise(neg, s, "prod", name=f"{layer}/scaled").output
    return net.add_elementwise(pos, scaled, "sum", name=layer).output


def _maxpool(net: Any, x: Any, size: int, stride: int, post: int, name: str) -> Any:
    return net.add_pooling_nd(x, "max", (size, size), stride=(stride, stride), pre_padding=(0, 0),
                              post_padding=(post, post), name=name).output


def _dense(net: Any, x: Any, w: Mapping[str, np.ndarray], layer: str) -> Any:
    k = w[f"{layer}/kernel"]
    return net.add_fully_connected(x, k.shape[1], k, w[f"{layer}/bias"], name=layer).output


def _flatten_like_keras(net: Any, x: Any, name: str) -> Any:
    """Keras Permute((2, 1, 3)) + Flatten on NHWC, i.e. [N, W, H, C] order, from an NCHW tensor."""
    _, c, h, w = x.shape
    return net.add_shuffle(x, reshape_dims=(0, c * h * w), first_transpose=(0, 3, 2, 1), name=name).output


def _nhwc_input(net: Any, side: int | None, batch: int | None) -> Any:
    x = net.add_input("image", "float32", (batch, side, side, 3))
    return net.add_shuffle(x, first_transpose=(0, 3, 1, 2), name="to_nchw").output


def build_pnet(w: Mapping[str, np.ndarray], prelu: str = "decomposed") -> Any:
    """P-Net on one NHWC image of any size >= 12: offsets [1, h, w, 4], probs [1, h, w, 2]."""
    from ...network import Network

    net = Network("mtcnn_pnet")
    x = _nhwc_input(net, None, 1)
    x = _prelu(net, _conv(net, x, w, "conv1"), w, "prelu1", True, prelu)
    x = _maxpool(net, x, 2, 2, 1, "maxpooling1")
    x = _prelu(net, _conv(net, x, w, "conv2"), w, "prelu2", True, prelu)
    x = _prelu(net, _conv(net, x, w, "conv3"), w, "prelu3", True, prelu)
    offsets = _conv(net, x, w, "conv4-1")
    logits = _conv(net, x, w, "conv4-2")
    probs = net.add_softmax(logits, axis=1, name="conv4-2_softmax").output
    for t, name in ((offsets, "offsets"), (probs, "probs")):
        net.mark_output(net.add_shuffle(t, first_transpose=(0, 2, 3, 1), name=f"{name}_nhwc").output, name=name)
    return net


def build_rnet(w: Mapping[str, np.ndarray], prelu: str = "decomposed") -> Any:
    """R-Net on [N, 24, 24, 3]: offsets [N, 4], probs [N, 2]."""
    from ...network import Network

    net = Network("mtcnn_rnet")
    x = _nhwc_input(net, 24, None)
    x = _prelu(net, _conv(net, x, w, "conv1"), w, "prelu1", True, prelu)   # 22
    x = _maxpool(net, x, 3, 2, 1, "maxpooling1")                     # SAME: 11
    x = _prelu(net, _conv(net, x, w, "conv2"), w, "prelu2", True, prelu)   # 9
    x = _maxpool(net, x, 3, 2, 0, "maxpooling2")                     # VALID: 4
    x = _prelu(net, _conv(net, x, w, "conv3"), w, "prelu3", True, prelu)   # 3
    x = _flatten_like_keras(net, x, "flatten3")
    x = _prelu(net, _dense(net, x, w, "fc4"), w, "prelu4", False, prelu)
    net.mark_output(_dense(net, x, w, "fc5-1"), name="offsets")
    net.mark_output(net.add_softmax(_dense(net, x, w, "fc5-2"), axis=-1, name="fc5-2_softmax").output, name="probs")
    return net


def build_onet(w: Mapping[str, np.ndarray], prelu: str = "decomposed") -> Any:
    """O-Net on [N, 48, 48, 3]: offsets [N, 4], landmarks [N, 10], probs [N, 2]."""
    from ...network import Network

    net = Network("mtcnn_onet")
    x = _nhwc_input(net, 48, None)
    x = _prelu(net, _conv(net, x, w, "conv1"), w, "prelu1", True, prelu)   # 46
    x = _maxpool(net, x, 3, 2, 1, "maxpooling1")                     # SAME: 23
    x = _prelu(net, _conv(net, x, w, "conv2"), w, "prelu2", True, prelu)   # 21
    x = _maxpool(net, x, 3, 2, 0, "maxpooling2")                     # VALID: 10
    x = _prelu(net, _conv(net, x, w, "conv3"), w, "prelu3", True, prelu)   # 8
    x = _maxpool(net, x, 2, 2, 0, "maxpooling3")                     # SAME on 8: no padding, 4
    x = _prelu(net, _conv(net, x, w, "conv4"), w, "prelu4", True, prelu)   # 3
    x = _flatten_like_keras(net, x, "flatten4")
    x = _prelu(net, _dense(net, x, w, "fc5"), w, "prelu5", False, prelu)
    net.mark_output(_dense(net, x, w, "fc6-1"), name="offsets")
    net.mark_output(_dense(net, x, w, "fc6-2"), name="landmarks")
    net.mark_output(net.add_softmax(_dense(net, x, w, "fc6-3"), axis=-1, name="fc6-3_softmax").output, name="probs")
    return net


BUILDERS = {"pnet": build_pnet, "rnet": build_rnet, "onet": build_onet}


def build_network(net: str, weights: Mapping[str, np.ndarray] | None = None,
                  weights_dir: str | Path | None = None, prelu: str = "decomposed") -> Any:
    """The Network of one MTCNN net, with the package's pretrained weights unless given."""
    if net not in BUILDERS:
        raise Tf2rtError(f"unknown MTCNN net {net!r}; expected one of {', '.join(BUILDERS)}")
    if prelu not in PRELU_MODES:
        raise Tf2rtError(f"prelu must be one of {', '.join(PRELU_MODES)}, not {prelu!r}")
    w = weights if weights is not None else load_mtcnn_weights(net, weights_dir)
    return BUILDERS[net](w, prelu)


def build_engines(precision: str = "fp32", weights_dir: str | Path | None = None,
                  prelu: str = "decomposed") -> dict[str, Any]:
    """Engines for P-Net, R-Net and O-Net: {"pnet": Engine, "rnet": Engine, "onet": Engine}."""
    from ...engine import build_engine

    out = {}
    for name in BUILDERS:
        network = build_network(name, weights_dir=weights_dir, prelu=prelu)
        out[name] = build_engine(network, precision=precision, metadata={
            "source": f"mtcnn package weights ({name}.lz4)",
            "model": {"name": f"MTCNN {name}", "task": "face detection", "license": "MIT (weights from the mtcnn package)"},
        })
    return out


class EngineNet:
    """Adapts an engine runner to the pipeline's net callables (NHWC float32 in, outputs in order)."""

    def __init__(self, engine: Any, name: str, backend: str = "onnxruntime", **options: Any) -> None:
        self.name = name
        self.input_name = engine.inputs[0].name
        self.output_names = OUTPUTS[name]
        self.runner = engine.runner(backend=backend, **options)
        names = [o.name for o in engine.outputs]
        if sorted(names) != sorted(self.output_names):
            raise Tf2rtError(f"{name} engine outputs {names}, expected {list(self.output_names)}")
        self._order = [names.index(n) for n in self.output_names]
        # run_list skips per-call feed checks (the pipeline always feeds NHWC float32)
        self._run_list = getattr(self.runner, "run_list", None)

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        feeds = {self.input_name: np.ascontiguousarray(x, dtype=np.float32)}
        if self._run_list is not None:
            out = self._run_list(feeds)
            return [out[i] for i in self._order]
        res = self.runner.run(feeds)
        return [res[n] for n in self.output_names]

    def close(self) -> None:
        self.runner.close()

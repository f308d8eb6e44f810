"""Pretrained MTCNN weights (P-Net, R-Net, O-Net) read from the `mtcnn` package's files.

The package (PyPI `mtcnn`, MIT) ships each net as a joblib pickle in an lz4 frame holding
the list Keras' `model.get_weights()` returns. We read it with the allow-listed
unpickler (no code from the file runs, TensorFlow is not needed) and name each array
after its Keras layer, e.g. "conv1/kernel", "prelu1/alpha", "fc5-1/bias".
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Mapping

import numpy as np

from ...errors import FormatError, Tf2rtError
from .safe_pickle import safe_load

# Layer order of each net and the weights each layer holds, as Keras stores them:
# Conv2D kernel [kh, kw, in, out] + bias; PReLU alpha (shared over H,W for conv layers);
# Dense kernel [in, out] + bias.
NET_LAYERS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "pnet": (
        ("conv1", ("kernel", "bias")), ("prelu1", ("alpha",)),
        ("conv2", ("kernel", "bias")), ("prelu2", ("alpha",)),
        ("conv3", ("kernel", "bias")), ("prelu3", ("alpha",)),
        ("conv4-1", ("kernel", "bias")), ("conv4-2", ("kernel", "bias")),
    ),
    "rnet": (
        ("conv1", ("kernel", "bias")), ("prelu1", ("alpha",)),
        ("conv2", ("kernel", "bias")), ("prelu2", ("alpha",)),
        ("conv3", ("kernel", "bias")), ("prelu3", ("alpha",)),
        ("fc4", ("kernel", "bias")), ("prelu4", ("alpha",)),
        ("fc5-1", ("kernel", "bias")), ("fc5-2", ("kernel", "bias")),
    ),
    "onet": (
        ("conv1", ("kernel", "bias")), ("prelu1", ("alpha",)),
        ("conv2", ("kernel", "bias")), ("prelu2", ("alpha",)),
        ("conv3", ("kernel", "bias")), ("prelu3", ("alpha",)),
        ("conv4", ("kernel", "bias")), ("prelu4", ("alpha",)),
        ("fc5", ("kernel", "bias")), ("prelu5", ("alpha",)),
        ("fc6-1", ("kernel", "bias")), ("fc6-2", ("kernel", "bias")), ("fc6-3", ("kernel", "bias")),
    ),
}

NETS = tuple(NET_LAYERS)


def weight_names(net: str) -> list[str]:
    """Names of a net's weights in file order, e.g. ["conv1/kernel", "conv1/bias", ...]."""
    if net not in NET_LAYERS:
        raise Tf2rtError(f"unknown MTCNN net {net!r}; expected one of {', '.join(NETS)}")
    return [f"{layer}/{w}" for layer, ws in NET_LAYERS[net] for w in ws]


def package_weights_dir() -> Path:
    """Folder of the installed `mtcnn` package's weight files (found without importing it)."""
    spec = importlib.util.find_spec("mtcnn")
    if spec is None or not spec.submodule_search_locations:
        raise Tf2rtError(
            "the pretrained MTCNN weights come from the `mtcnn` package, which is not installed: "
            "pip install 'tf2rt[faces]' (or pass weights_dir= with pnet.lz4, rnet.lz4, onet.lz4)"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "assets" / "weights"


def load_mtcnn_weights(net: str, weights_dir: str | Path | None = None) -> dict[str, np.ndarray]:
    """Read one net's weights ("pnet", "rnet" or "onet") as {name: float32 array}."""
    names = weight_names(net)
    folder = Path(weights_dir) if weights_dir is not None else package_weights_dir()
    path = folder / f"{net}.lz4"
    if not path.exists():
        raise FormatError(f"MTCNN weights file {path} not found; expected {net}.lz4 from the `mtcnn` package")
    arrays = safe_load(path)
    if not isinstance(arrays, list) or not all(isinstance(a, np.ndarray) for a in arrays):
        raise FormatError(f"{path}: expected a list of arrays (Keras get_weights order), got {type(arrays).__name__}")
    if len(arrays) != len(names):
        raise FormatError(f"{path}: expected {len(names)} arrays for {net} ({', '.join(names)}), found {len(arrays)}")
    out = {name: np.ascontiguousarray(a, dtype=np.float32) for name, a in zip(names, arrays)}
    _check_shapes(net, out, path)
    return out


def _check_shapes(net: str, w: Mapping[str, np.ndarray], path: Path) -> None:
    """Each layer's arrays must chain: conv kernel 4-D, bias/alpha sized by its output channels."""
    prev_out: int | None = None
    for layer, kinds in NET_LAYERS[net]:
        if "kernel" in kinds:
            k, b = w[f"{layer}/kernel"], w[f"{layer}/bias"]
            if k.ndim not in (2, 4) or b.shape != (k.shape[-1],):
                raise FormatError(f"{path}: {layer} kernel {k.shape} and bias {b.shape} do not fit together")
            prev_out = k.shape[-1]
        else:
            a = w[f"{layer}/alpha"]
            if prev_out is None or a.shape[-1] != prev_out:
                raise FormatError(f"{path}: {layer} alpha {a.shape} does not match {prev_out} channels")

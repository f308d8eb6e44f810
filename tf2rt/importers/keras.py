"""Keras models -> Network: one importer for every layer kind and every Keras generation.

    net = import_keras("model.h5")                                   # Keras 2.0 ... tf.keras .h5
    net = import_keras("model.keras")                                # Keras 3
    net = import_keras("weights.h5", architecture="model.json")      # save_weights + to_json()

The model config gives the layer graph (keras_graph), the layer table turns each layer
into Network layers (keras_layers, keras_conv, keras_rnn_layers), the weights come from
the file's HDF5 part (tf2rt.weights.keras_file); no Keras or TensorFlow is needed.
A layer class no table knows (a project's own layer) is converted by a function given
by name:

    @register_layer("AttentionWeightedAverage")
    def attention(net, config, inputs, weights):
        ...                       # Network API calls on the input tensors
        return output_tensor

or per call with `custom_layers={"AttentionWeightedAverage": attention}`. See docs/convert.md.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import FormatError
from .card import ModelCard
from .keras_graph import CUSTOM, LAYERS, RECURRENT, KerasConverter


def register_layer(class_name: str, fn: Optional[Callable] = None) -> Any:
    """Convert Keras layers of class `class_name` with fn(network, config, inputs, weights) -> tensor(s).

    `inputs` are the layer's input tensors (Keras axis order), `weights` its arrays in
    `layer.get_weights()` order (float32), `config` its Keras config (with "name"). A fn
    with a `masks` parameter also gets the inputs' masks (float [N, S] tensors or None).
    Use as a decorator (`@register_layer("Name")`) or call `register_layer("Name", fn)`.
    """
    def deco(f: Callable) -> Callable:
        CUSTOM[class_name] = f
        return f
    return deco(fn) if fn is not None else deco


def _load_tables() -> None:
    from . import keras_conv, keras_layers, keras_rnn_layers  # noqa: F401  (they fill LAYERS)


def major_version(version: Any, default: int = 3) -> int:
    m = re.match(r"(\d+)", str(version or ""))
    return int(m.group(1)) if m else default


def read_architecture(architecture: Any) -> dict:
    """A model config from a dict, a JSON string (`model.to_json()`) or a path to a .json file."""
    if isinstance(architecture, dict):
        return architecture
    if isinstance(architecture, Path) or (isinstance(architecture, str) and not architecture.lstrip().startswith("{")):
        p = Path(architecture)
        if not p.is_file():
            raise FormatError(f"architecture file {p} does not exist")
        if p.stat().st_size > 64 << 20:
            raise FormatError(f"architecture file {p} is implausibly large")
        architecture = p.read_text(errors="replace")
    try:
        config = json.loads(architecture)
    except (ValueError, RecursionError) as exc:
        raise FormatError(f"the architecture is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise FormatError("the architecture JSON is not an object")
    return config


def build_keras(config: dict, weights_of: Callable[[str], list], *, keras_version: int, card: ModelCard,
                states: Optional[bool] = None, custom_layers: Optional[dict[str, Callable]] = None,
                default_name: Optional[str] = None) -> Any:
    """A Network from a Keras model config and a layer name -> weights function; fills `card`."""
    _load_tables()
    cv = KerasConverter(config, weights_of, keras_version, custom_layers=custom_layers, states=states)
    cfg = config.get("config")
    name = (cfg.get("name") if isinstance(cfg, dict) else None) or default_name or "keras"
    try:
        net = cv.convert(str(name))
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise FormatError(f"malformed Keras model config ({type(exc).__name__}: {exc})") from None
    layers = [lc for lc in cv.layers if lc["class_name"] != "InputLayer"]
    card.detected["keras_version"] = card.detected.get("keras_version") or str(keras_version)
    card.detected["outputs"] = [t.name for t in net.outputs if t.name not in cv.state_names]
    card.detected["head"] = {"logits": card.detected["outputs"][0]} if card.detected["outputs"] else None
    card.states = list(cv.state_names)
    if any(lc["class_name"] in RECURRENT for lc in layers):
        card.detected["layers"] = [{"name": lc["name"], "class": lc["class_name"]} for lc in layers]
        card.detected["rnn"] = cv.rnn_cards
        card.summary = " -> ".join(_describe(lc) for lc in layers)
    else:
        counts: dict[str, int] = {}
        for layer in net.layers:
            counts[layer.type] = counts.get(layer.type, 0) + 1
        card.detected["layers"] = dict(sorted(counts.items()))
        card.summary = f"feed-forward network of {len(net.layers)} layers"
    for t in net.inputs:
        if str(t.dtype).startswith("int"):
            card.detected.setdefault("input", {"kind": "embedding", "layer": t.name})
    return net


def _describe(lc: dict) -> str:
    c, cls = lc["config"], lc["class_name"]
    if cls == "Bidirectional":
        inner = c.get("layer") or {}
        return f"Bidirectional({inner.get('class_name')}({(inner.get('config') or {}).get('units')}))"
    if "units" in c:
        return f"{cls}({c['units']})"
    return cls


def keras_network(path: str | Path, *, card: ModelCard, states: Optional[bool] = None,
                  activation: Optional[str] = None, reset_after: Optional[bool] = None,
                  keras_version: Optional[int] = None, architecture: Any = None,
                  custom_layers: Optional[dict[str, Callable]] = None) -> Any:
    """Network of a `.keras` / `.h5` / `.weights.h5` file (with `architecture` when it holds
    weights only) or of a tf.keras SavedModel directory."""
    path = Path(path)
    if path.is_dir():
        from .keras_checkpoint import saved_model_network

        return saved_model_network(path, card=card, states=states, activation=activation, reset_after=reset_after,
                                   keras_version=keras_version, custom_layers=custom_layers)
    from ..weights.keras_file import _keras3_layer_names, open_keras

    kf = open_keras(path)
    try:
        if architecture is not None:
            config = read_architecture(architecture)
        else:
            config = kf.model_config()
        version = keras_version or major_version(kf.keras_version() or config.get("keras_version"))
        card.detected["keras_version"] = kf.keras_version() or str(config.get("keras_version") or version)
        weights_of = kf.layer_weights
        if kf.layout == "keras3" and architecture is not None:
            # a Keras 3 weights file names layer groups by class (lstm, lstm_1, ...): map them back
            stored = {n: "/".join(part for part in p.split("/") if part and part != "layers")
                      for p, n in _keras3_layer_names(config).items()}
            weights_of = lambda n: kf.layer_weights(stored.get(n, n))  # noqa: E731
        return build_keras(config, _tolerant(weights_of, kf), keras_version=version, card=card, states=states,
                           custom_layers=custom_layers, default_name=path.stem)
    finally:
        kf.close()


def _tolerant(weights_of: Callable[[str], list], kf: Any = None) -> Callable[[str], list]:
    """Layers without weights have no group in Keras 3 files: an empty list for them. Layers
    of a nested model in a legacy .h5 are found by their weight names (`<layer>/...`)."""
    from ..errors import MissingTensorError

    def get(name: str) -> list:
        try:
            return list(weights_of(name))
        except MissingTensorError:
            if kf is not None and kf.layout == "legacy":
                return [kf.read(i.name) for i in kf._order() if i.name.split("/")[0] == name]
            return []
    return get


def import_keras(path: str | Path, name: Optional[str] = None, *, architecture: Any = None,
                 custom_layers: Optional[dict[str, Callable]] = None, states: Optional[bool] = None,
                 keras_version: Optional[int] = None) -> Any:
    """A Keras model file as a Network (inputs/outputs keep the model's names)."""
    card = ModelCard(str(path), "keras")
    net = keras_network(path, card=card, states=states, keras_version=keras_version, architecture=architecture,
                        custom_layers=custom_layers)
    if name:
        net.name = name
    net.metadata["source"] = str(path)
    return net


__all__ = ["import_keras", "keras_network", "register_layer", "build_keras", "read_architecture", "LAYERS"]

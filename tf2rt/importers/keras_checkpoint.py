"""Keras models without a `.keras`/`.h5` file: TF2 object-based checkpoints of Keras models
and tf.keras SavedModels (config in keras_metadata.pb, weights in variables/).

A TF2 checkpoint has no config: the layers are recognised from the object graph
(`layer_with_weights-N/cell/kernel`, ...), taken in order as a Sequential model, and what
cannot be known is assumed and recorded in the model card. Both then go through the
one Keras importer (tf2rt.importers.keras).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ..errors import FormatError, UnsupportedError
from .card import ModelCard
from .keras import build_keras


def _spec(class_name: str, config: dict, weights: list) -> dict:
    return {"class_name": class_name, "config": config, "weights": weights}


def layers_from_checkpoint(source: Any, card: ModelCard, activation: str | None,
                           reset_after: bool | None) -> list[dict]:
    """Recognise the layers of a Keras model saved as a TF2 object-based checkpoint (no config)."""
    groups: dict[int, dict[str, Any]] = {}
    problems: list[str] = []
    for info in source.infos():
        if info.kind != "variable":
            continue
        key = info.key or info.name
        # tf.keras: layer_with_weights-N/...; Keras 3: _functional/_operations/N/... (or layers/N/...)
        m = re.match(r"^(?:.*?/)?(?:layer_with_weights-|_operations/|layers/)(\d+)/(.*)/\.ATTRIBUTES/VARIABLE_VALUE$",
                     key)
        if m is None:
            problems.append(f"variable {info.name!r} ({key}) is not a Keras layer weight")
            continue
        role = "/".join(part.lstrip("_") for part in m.group(2).split("/"))  # Keras 3: _kernel -> kernel
        parts = info.name.split("/")
        name = parts[-(role.count("/") + 2)] if len(parts) > role.count("/") + 1 else parts[0]
        g = groups.setdefault(int(m.group(1)), {"roles": {}, "name": name})
        g["roles"][role] = info
    specs: list[dict] = []
    assumed: list[str] = []
    for n in sorted(groups):
        roles, name = groups[n]["roles"], groups[n]["name"]
        read = lambda r: np.asarray(source.read(roles[r].name), np.float32)  # noqa: E731
        keys = set(roles)
        if keys == {"embeddings"}:
            specs.append(_spec("Embedding", {"name": name}, [read("embeddings")]))
        elif keys <= {"kernel", "bias"} and "kernel" in keys:
            specs.append(_spec("Dense", {"name": name, "activation": "linear", "use_bias": "bias" in keys},
                                   [read(k) for k in ("kernel", "bias") if k in keys]))
            assumed.append(f"Dense layer {name!r}: activation linear")
        elif {"cell/kernel", "cell/recurrent_kernel"} <= keys:
            specs.append(_rnn_from_roles(name, roles, "cell/", read, activation, reset_after, assumed))
        elif any(k.startswith("forward_layer/cell/") for k in keys):
            fw = _rnn_from_roles(name, roles, "forward_layer/cell/", read, activation, reset_after, assumed)
            bw = _rnn_from_roles(name, roles, "backward_layer/cell/", read, activation, reset_after, assumed)
            specs.append(_spec("Bidirectional", {"name": name, "merge_mode": "concat",
                                                     "layer": {"class_name": fw["class_name"], "config": fw["config"]}},
                                   fw["weights"] + bw["weights"]))
        else:
            problems.append(f"layer_with_weights-{n} ({name!r}) has variables {sorted(keys)}: not a layer "
                            "tf2rt recognises (Embedding, LSTM, GRU, SimpleRNN, Bidirectional, Dense)")
    if problems:
        raise UnsupportedError("cannot convert this checkpoint:\n" + "\n".join(f"  - {p}" for p in problems))
    if not specs:
        raise UnsupportedError("the checkpoint holds no Keras layer weights (layer_with_weights-N/...)")
    card.assume("a TF2 checkpoint stores no model config: layers are taken in order as a Sequential model, "
                "recurrent layers return sequences, " + "; ".join(dict.fromkeys(assumed)))
    return specs


def _rnn_from_roles(name: str, roles: dict, prefix: str, read: Any, activation: str | None,
                    reset_after: bool | None, assumed: list[str]) -> dict:
    rk = roles[prefix + "recurrent_kernel"].shape
    u = rk[0]
    gates = rk[1] // u if u else 0
    bias = roles.get(prefix + "bias")
    weights = [read(prefix + "kernel"), read(prefix + "recurrent_kernel")] + ([read(prefix + "bias")] if bias else [])
    cfg: dict[str, Any] = {"name": name, "units": u, "return_sequences": True, "use_bias": bias is not None,
                           "activation": activation or "tanh", "recurrent_activation": "sigmoid"}
    if activation is None:
        assumed.append("recurrent layers: activation tanh, recurrent_activation sigmoid (Keras 2.x/3 defaults)")
    if gates == 4:
        return _spec("LSTM", cfg, weights)
    if gates == 3:
        ra = len(bias.shape) == 2 if bias is not None else (True if reset_after is None else reset_after)
        if reset_after is not None and bias is not None and reset_after != ra:
            raise UnsupportedError(f"layer {name!r}: bias shape {tuple(bias.shape)} means reset_after={ra}, "
                                   f"but --reset-after {reset_after} was given")
        cfg["reset_after"] = ra
        return _spec("GRU", cfg, weights)
    return _spec("SimpleRNN", cfg, weights)


def keras_checkpoint_network(source: Any, *, card: ModelCard, states: Optional[bool] = None,
                             activation: Optional[str] = None, reset_after: Optional[bool] = None,
                             keras_version: Optional[int] = None,
                             custom_layers: Optional[dict[str, Callable]] = None) -> Any:
    """Network of a Keras model saved as a TF2 object-based checkpoint (layers in order)."""
    specs = layers_from_checkpoint(source, card, activation, reset_after)
    weights = {s["config"]["name"]: s["weights"] for s in specs}
    config = {"class_name": "Sequential", "config": {"name": "keras", "layers": [
        {"class_name": s["class_name"], "config": s["config"]} for s in specs]}}
    return build_keras(config, lambda n: weights.get(n, []), keras_version=keras_version or 3, card=card,
                       states=states, custom_layers=custom_layers)


def saved_model_network(path: Path, *, card: ModelCard, states: Optional[bool] = None,
                        activation: Optional[str] = None, reset_after: Optional[bool] = None,
                        keras_version: Optional[int] = None,
                        custom_layers: Optional[dict[str, Callable]] = None) -> Any:
    """A tf.keras SavedModel: the Keras config from keras_metadata.pb, weights from variables/."""
    from ..proto import Message
    from ..weights.tf_checkpoint import open_checkpoint

    meta = path / "keras_metadata.pb"
    prefix = path / "variables" / "variables"
    if not Path(str(prefix) + ".index").is_file():
        raise FormatError(f"{path} has no variables/variables.index; is it a SavedModel directory?")
    source = open_checkpoint(prefix)
    try:
        config = None
        if meta.is_file():
            for node in Message(meta.read_bytes(), "keras_metadata.pb").messages(1):
                if node.str(3) == "root":
                    try:
                        data = json.loads(node.str(5))
                    except json.JSONDecodeError:
                        raise FormatError(f"{meta}: the root object's metadata is not JSON") from None
                    if isinstance(data, dict) and "config" in data:
                        config = {"class_name": data.get("class_name"), "config": data["config"]}
        if config is None:
            card.assume("the SavedModel has no keras_metadata.pb with a model config")
            return keras_checkpoint_network(source, card=card, states=states, activation=activation,
                                            reset_after=reset_after, keras_version=keras_version,
                                            custom_layers=custom_layers)
        by_layer = _checkpoint_weights_by_layer(source)
        card.detected["keras_version"] = "2 (tf.keras SavedModel)"
        return build_keras(config, lambda n: by_layer.get(n, []), keras_version=keras_version or 2, card=card,
                           states=states, custom_layers=custom_layers)
    finally:
        source.close()


def _checkpoint_weights_by_layer(source: Any) -> dict[str, list[np.ndarray]]:
    """Layer name -> weights in get_weights() order, from a SavedModel's object-based checkpoint."""
    order = {"embeddings": 0, "kernel": 0, "recurrent_kernel": 1, "bias": 2}
    groups: dict[str, list[tuple[tuple, np.ndarray]]] = {}
    for info in source.infos():
        if info.kind != "variable":
            continue
        parts = info.name.split("/")
        layer = parts[0]
        leaf = parts[-1]
        direction = 1 if any(p.startswith("backward") for p in parts[1:-1]) else 0
        groups.setdefault(layer, []).append(((direction, order.get(leaf, 9), leaf),
                                             np.asarray(source.read(info.name), np.float32)))
    return {k: [a for _, a in sorted(v, key=lambda t: t[0])] for k, v in groups.items()}

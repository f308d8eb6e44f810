"""Keras recurrent models -> Network: `.keras` (Keras 3) and `.h5` (Keras 2 / tf.keras) files,
TF2 object-based checkpoints of Keras models, and SavedModels written by tf.keras.

The Keras config says everything the weights do not (activations, GRU reset_after,
return_sequences, ...). A TF2 checkpoint has no config: the layers are recognised from
the object graph (`layer_with_weights-N/cell/kernel`, ...) and what cannot be known is
assumed and recorded in the model card. Supported layers: InputLayer, Embedding, LSTM,
GRU, SimpleRNN, Bidirectional (merge_mode concat), Dense, TimeDistributed(Dense),
Dropout-like layers (identity at inference), Activation.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import FormatError, UnsupportedError
from .card import ModelCard
from .tf1_rnn import add_dense, add_recurrent

_IDENTITY_LAYERS = {"Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
                    "ActivityRegularization"}
_RNN_LAYERS = {"LSTM", "GRU", "SimpleRNN"}
_ACTIVATIONS = {"relu", "sigmoid", "tanh", "elu", "selu", "softplus", "hard_sigmoid"}
_HARD_SIGMOID = {2: (0.2, 0.5), 3: (1.0 / 6.0, 0.5)}


@dataclass
class LayerSpec:
    """One Keras layer: class, config, weights in get_weights() order, inbound layer names."""

    class_name: str
    config: dict
    weights: list[np.ndarray]
    inbound: list[tuple[str, int]]  # (layer name, output index)

    @property
    def name(self) -> str:
        return str(self.config.get("name", self.class_name))


def _act_name(value: Any) -> str:
    if isinstance(value, dict):
        cfg = value.get("config")
        value = cfg.get("name") if isinstance(cfg, dict) and "name" in cfg else value.get("class_name")
    return "linear" if value in (None, "") else str(value).lower()


def _major(version: str | None, default: int = 3) -> int:
    m = re.match(r"(\d+)", version or "")
    return int(m.group(1)) if m else default


# --- reading layer specs ---------------------------------------------------------------------
def _history(arg: Any) -> list[tuple[str, int]]:
    """Inbound (layer, index) pairs from a Keras 3 or Keras 2 inbound_nodes entry."""
    out: list[tuple[str, int]] = []
    if isinstance(arg, dict):
        if arg.get("class_name") == "__keras_tensor__":
            h = arg.get("config", {}).get("keras_history")
            if h:
                out.append((str(h[0]), int(h[2])))
            return out
        for v in arg.values():
            out += _history(v)
    elif isinstance(arg, list):
        if len(arg) >= 3 and isinstance(arg[0], str) and isinstance(arg[1], int) and isinstance(arg[2], int):
            return [(arg[0], int(arg[2]))]
        for v in arg:
            out += _history(v)
    return out


def layers_from_config(config: dict, weights_of: Any) -> tuple[list[LayerSpec], list[tuple[str, int]]]:
    """(layers in order, model outputs) of a Sequential or Functional config."""
    cls = config.get("class_name")
    cfg = config.get("config", {})
    raw = cfg.get("layers") if isinstance(cfg, dict) else None
    if not isinstance(raw, list):
        raise FormatError(f"the Keras config of class {cls!r} lists no layers; only Sequential and "
                          "Functional models are supported")
    specs: list[LayerSpec] = []
    if cls == "Sequential":
        prev: str | None = None
        for item in raw:
            spec = LayerSpec(item.get("class_name", "?"), dict(item.get("config", {})), [], [])
            if spec.class_name != "InputLayer":
                spec.weights = list(weights_of(spec.name))
            if prev is not None:
                spec.inbound = [(prev, 0)]
            specs.append(spec)
            prev = spec.name
        return specs, [(prev, 0)] if prev else []
    for item in raw:
        spec = LayerSpec(item.get("class_name", "?"), dict(item.get("config", {})), [], [])
        nodes = item.get("inbound_nodes") or []
        if len(nodes) > 1:
            raise UnsupportedError(f"Keras layer {spec.name!r} is called {len(nodes)} times (shared layers are "
                                   "not supported)")
        spec.inbound = _history(nodes[0]) if nodes else []
        if spec.class_name != "InputLayer":
            spec.weights = list(weights_of(spec.name))
        specs.append(spec)
    outputs = _history(cfg.get("output_layers", []))
    return specs, outputs


def layers_from_checkpoint(source: Any, card: ModelCard, activation: str | None,
                           reset_after: bool | None) -> list[LayerSpec]:
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
    specs: list[LayerSpec] = []
    assumed: list[str] = []
    for n in sorted(groups):
        roles, name = groups[n]["roles"], groups[n]["name"]
        read = lambda r: np.asarray(source.read(roles[r].name), np.float32)  # noqa: E731
        keys = set(roles)
        if keys == {"embeddings"}:
            specs.append(LayerSpec("Embedding", {"name": name}, [read("embeddings")], []))
        elif keys <= {"kernel", "bias"} and "kernel" in keys:
            specs.append(LayerSpec("Dense", {"name": name, "activation": "linear", "use_bias": "bias" in keys},
                                   [read(k) for k in ("kernel", "bias") if k in keys], []))
            assumed.append(f"Dense layer {name!r}: activation linear")
        elif {"cell/kernel", "cell/recurrent_kernel"} <= keys:
            specs.append(_rnn_from_roles(name, roles, "cell/", read, activation, reset_after, assumed))
        elif any(k.startswith("forward_layer/cell/") for k in keys):
            fw = _rnn_from_roles(name, roles, "forward_layer/cell/", read, activation, reset_after, assumed)
            bw = _rnn_from_roles(name, roles, "backward_layer/cell/", read, activation, reset_after, assumed)
            specs.append(LayerSpec("Bidirectional", {"name": name, "merge_mode": "concat",
                                                     "layer": {"class_name": fw.class_name, "config": fw.config}},
                                   fw.weights + bw.weights, []))
        else:
            problems.append(f"layer_with_weights-{n} ({name!r}) has variables {sorted(keys)}: not a layer "
                            "tf2rt recognises (Embedding, LSTM, GRU, SimpleRNN, Bidirectional, Dense)")
    if problems:
        raise UnsupportedError("cannot convert this checkpoint:\n" + "\n".join(f"  - {p}" for p in problems))
    if not specs:
        raise UnsupportedError("the checkpoint holds no Keras layer weights (layer_with_weights-N/...)")
    for i in range(1, len(specs)):
        specs[i].inbound = [(specs[i - 1].name, 0)]
    card.assume("a TF2 checkpoint stores no model config: layers are taken in order as a Sequential model, "
                "recurrent layers return sequences, " + "; ".join(dict.fromkeys(assumed)))
    return specs


def _rnn_from_roles(name: str, roles: dict, prefix: str, read: Any, activation: str | None,
                    reset_after: bool | None, assumed: list[str]) -> LayerSpec:
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
        return LayerSpec("LSTM", cfg, weights, [])
    if gates == 3:
        ra = len(bias.shape) == 2 if bias is not None else (True if reset_after is None else reset_after)
        if reset_after is not None and bias is not None and reset_after != ra:
            raise UnsupportedError(f"layer {name!r}: bias shape {tuple(bias.shape)} means reset_after={ra}, "
                                   f"but --reset-after {reset_after} was given")
        cfg["reset_after"] = ra
        return LayerSpec("GRU", cfg, weights, [])
    return LayerSpec("SimpleRNN", cfg, weights, [])


# --- building ----------------------------------------------------------------------------------
def build_keras_network(specs: Sequence[LayerSpec], outputs: Sequence[tuple[str, int]], *, card: ModelCard,
                        keras_version: int, states: bool | None, name: str = "keras") -> Any:
    """A Network from Keras layer specs (a DAG of single-input layers)."""
    from ..layouts.keras import from_keras_layer
    from ..network import Network

    net = Network(name=name)
    problems: list[str] = []
    produced: dict[str, list[Any]] = {}
    rnn_specs = [s for s in specs if s.class_name in _RNN_LAYERS or s.class_name == "Bidirectional"]
    if states is None:
        states = bool(rnn_specs) and all(s.class_name != "Bidirectional" for s in rnn_specs)
    consumers: dict[str, list[LayerSpec]] = {}
    for s in specs:
        for src, _ in s.inbound:
            consumers.setdefault(src, []).append(s)
    state_names: list[str] = []
    layer_cards: list[dict[str, Any]] = []
    problems = [p for spec in specs for p in _config_problems(spec)]
    if problems:
        raise UnsupportedError("cannot convert this Keras model:\n" + "\n".join(f"  - {p}" for p in problems))

    def make_input(spec: LayerSpec | None, next_spec: LayerSpec | None, in_name: str) -> Any:
        if next_spec is not None and next_spec.class_name == "Embedding":
            return net.add_input(in_name, "int32", (None, None))
        feat = None
        if next_spec is not None and next_spec.weights:
            feat = int(next_spec.weights[0].shape[0])
        cfg = spec.config if spec is not None else {}
        shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
        if feat is None and shape:
            feat = shape[-1]
        if feat is None:
            raise UnsupportedError(f"cannot tell the feature size of input {in_name!r}")
        return net.add_input(in_name, "float32", (None, None, int(feat)))

    for spec in specs:
        cls, cfg, lname = spec.class_name, spec.config, spec.name
        try:
            if cls == "InputLayer":
                nxt = consumers.get(lname, [None])[0]
                produced[lname] = [make_input(spec, nxt, lname)]
                continue
            if not spec.inbound:
                # Sequential without an InputLayer: the model input is named after the layer (tf.keras style)
                produced[f"{lname}_input"] = [make_input(None, spec, f"{lname}_input")]
                spec.inbound = [(f"{lname}_input", 0)]
            if len(spec.inbound) != 1:
                raise UnsupportedError(f"layer {lname!r} ({cls}) has {len(spec.inbound)} inputs; only "
                                       "single-input layers are supported")
            src, idx = spec.inbound[0]
            if src not in produced:
                raise UnsupportedError(f"layer {lname!r} takes its input from {src!r}, which was not converted")
            x = produced[src][idx]
            if cls in _IDENTITY_LAYERS:
                produced[lname] = [x]
            elif cls == "Embedding":
                if cfg.get("mask_zero"):
                    raise UnsupportedError(f"Embedding {lname!r} has mask_zero=True: masked (padded) sequences "
                                           "are not supported; pass sequence lengths instead")
                if not str(x.dtype).startswith("int"):
                    x = net.add_cast(x, "int32", name=f"{lname}/cast").get_output(0)
                table = spec.weights[0].astype(np.float32)
                t = net.add_constant(table.shape, table, name=f"{lname}/embeddings").get_output(0)
                produced[lname] = [net.add_gather(t, x, axis=0, name=lname).get_output(0)]
                card.detected.setdefault("input", {"kind": "embedding", "layer": lname, "vocab": int(table.shape[0]),
                                                   "size": int(table.shape[1])})
            elif cls in _RNN_LAYERS or cls == "Bidirectional":
                produced[lname] = _add_rnn(net, spec, x, keras_version, states, state_names, layer_cards,
                                           from_keras_layer)
            elif cls in ("Dense", "TimeDistributed"):
                if cls == "TimeDistributed":
                    inner = cfg.get("layer", {})
                    if inner.get("class_name") != "Dense":
                        raise UnsupportedError(f"TimeDistributed {lname!r} wraps {inner.get('class_name')!r}; "
                                               "only Dense is supported")
                    dcfg = inner.get("config", {})
                else:
                    dcfg = cfg
                w = spec.weights
                kernel = w[0].astype(np.float32)
                bias = w[1].astype(np.float32) if len(w) > 1 else None
                y = add_dense(net, x, kernel, bias, lname)
                produced[lname] = [_add_activation(net, y, _act_name(dcfg.get("activation")), lname, keras_version)]
            elif cls == "Activation":
                produced[lname] = [_add_activation(net, x, _act_name(cfg.get("activation")), lname, keras_version)]
            else:
                raise UnsupportedError(f"layer {lname!r} of class {cls!r} is not supported")
        except UnsupportedError as exc:
            problems.append(str(exc))
            break
    if problems:
        raise UnsupportedError("cannot convert this Keras model:\n" + "\n".join(f"  - {p}" for p in problems))
    marked = []
    for lname, idx in outputs:
        t = produced[lname][idx]
        out_name = lname if idx == 0 else f"{lname}/state_{idx}"
        if t in marked:
            continue
        net.mark_output(t, out_name)
        marked.append(t)
    card.detected["layers"] = [{"name": s.name, "class": s.class_name} for s in specs]
    card.detected["rnn"] = layer_cards
    card.detected["outputs"] = [lname for lname, _ in outputs]
    card.detected["head"] = {"logits": outputs[0][0]} if outputs else None
    card.states = state_names
    card.summary = " -> ".join(_describe(s) for s in specs if s.class_name != "InputLayer")
    return net


def _config_problems(spec: LayerSpec) -> list[str]:
    """Everything about one layer's config that cannot be converted (checked before building)."""
    cls, cfg, lname = spec.class_name, spec.config, spec.name
    out = []
    known = {"InputLayer", "Embedding", "Dense", "TimeDistributed", "Activation", "Bidirectional"}
    if cls not in known | _RNN_LAYERS | _IDENTITY_LAYERS:
        return [f"layer {lname!r} of class {cls!r} is not supported"]
    if cls == "Embedding" and cfg.get("mask_zero"):
        out.append(f"Embedding {lname!r} has mask_zero=True: masked (padded) sequences are not supported")
    if cls in _RNN_LAYERS or cls == "Bidirectional":
        inner = cfg.get("layer", {}).get("config", {}) if cls == "Bidirectional" else cfg
        if cls == "Bidirectional" and cfg.get("merge_mode", "concat") != "concat":
            out.append(f"Bidirectional {lname!r}: merge_mode {cfg.get('merge_mode')!r} is not supported (only concat)")
        if cls == "Bidirectional" and inner.get("return_state"):
            out.append(f"Bidirectional {lname!r} with return_state is not supported")
        if inner.get("go_backwards") and cls != "Bidirectional":
            out.append(f"layer {lname!r}: go_backwards=True outside Bidirectional is not supported")
        if inner.get("time_major"):
            out.append(f"layer {lname!r}: time_major=True is not supported")
    if cls == "TimeDistributed" and cfg.get("layer", {}).get("class_name") != "Dense":
        out.append(f"TimeDistributed {lname!r} wraps {cfg.get('layer', {}).get('class_name')!r}; only Dense is supported")
    if cls in ("Dense", "TimeDistributed", "Activation"):
        dcfg = cfg.get("layer", {}).get("config", {}) if cls == "TimeDistributed" else cfg
        act = _act_name(dcfg.get("activation"))
        if act not in _ACTIVATIONS | {"linear", "softmax"}:
            out.append(f"layer {lname!r}: activation {act!r} is not supported "
                       f"(supported: linear, softmax, {', '.join(sorted(_ACTIVATIONS))})")
    return out


def _describe(s: LayerSpec) -> str:
    c = s.config
    if s.class_name in _RNN_LAYERS:
        return f"{s.class_name}({c.get('units')})"
    if s.class_name == "Bidirectional":
        inner = c.get("layer", {})
        return f"Bidirectional({inner.get('class_name')}({inner.get('config', {}).get('units')}))"
    if s.class_name == "Embedding" and s.weights:
        return f"Embedding({s.weights[0].shape[0]}x{s.weights[0].shape[1]})"
    if s.class_name == "Dense" and s.weights:
        return f"Dense({s.weights[0].shape[1]}, {_act_name(c.get('activation'))})"
    return s.class_name


def _add_activation(net: Any, x: Any, act: str, name: str, keras_version: int) -> Any:
    if act == "linear":
        return x
    if act == "softmax":
        return net.add_softmax(x, axis=-1, name=f"{name}/softmax").get_output(0)
    if act == "hard_sigmoid":
        a, b = _HARD_SIGMOID[keras_version]
        return net.add_activation(x, "hard_sigmoid", alpha=a, beta=b, name=f"{name}/hard_sigmoid").get_output(0)
    if act not in _ACTIVATIONS:
        raise UnsupportedError(f"layer {name!r}: activation {act!r} is not supported "
                               f"(supported: linear, softmax, {', '.join(sorted(_ACTIVATIONS))})")
    return net.add_activation(x, act, name=f"{name}/{act}").get_output(0)


def _add_rnn(net: Any, spec: LayerSpec, x: Any, keras_version: int, states: bool, state_names: list[str],
             layer_cards: list, from_keras_layer: Any) -> list[Any]:
    cfg, lname = spec.config, spec.name
    inner = cfg.get("layer", {}).get("config", {}) if spec.class_name == "Bidirectional" else cfg
    if spec.class_name == "Bidirectional" and cfg.get("merge_mode", "concat") != "concat":
        raise UnsupportedError(f"Bidirectional {lname!r}: merge_mode {cfg.get('merge_mode')!r} is not supported "
                               "(only concat)")
    if inner.get("go_backwards") and spec.class_name != "Bidirectional":
        raise UnsupportedError(f"layer {lname!r}: go_backwards=True outside Bidirectional is not supported; "
                               "reverse the input sequence instead")
    if inner.get("time_major"):
        raise UnsupportedError(f"layer {lname!r}: time_major=True is not supported")
    if x.rank != 3:
        raise UnsupportedError(f"layer {lname!r} needs a sequence input [N, S, F]; it gets {x.name} of rank {x.rank}")
    cells = from_keras_layer(spec.class_name, cfg, [np.asarray(w, np.float32) for w in spec.weights],
                             keras_version=keras_version, name=lname)
    stack = [tuple(cells)]
    bidir = len(cells) == 2
    io = add_recurrent(net, x, stack, lname, states=states and not bidir)
    state_names += [t.name for t in io.state_inputs] + [t.name for t in io.state_outputs]
    layer_cards.append({"name": lname, "class": spec.class_name, "units": cells[0].hidden_size,
                        "input_size": cells[0].input_size, "kind": cells[0].kind,
                        "return_sequences": bool(inner.get("return_sequences", False))})
    rnn = io.output.producer
    H = cells[0].hidden_size
    h_n = rnn.get_output(1)
    last = net.add_shuffle(h_n, reshape_dims=(0, len(cells) * H), name=f"{lname}/last").get_output(0)
    y = io.output if inner.get("return_sequences", False) else last
    outs = [y]
    if inner.get("return_state"):
        if bidir:
            raise UnsupportedError(f"Bidirectional {lname!r} with return_state is not supported")
        outs.append(last)
        if cells[0].kind == "lstm":
            outs.append(net.add_shuffle(rnn.get_output(2), reshape_dims=(0, H), name=f"{lname}/last_c").get_output(0))
    return outs


# --- front doors ------------------------------------------------------------------------------
def keras_network(path: Path, *, card: ModelCard, states: bool | None = None, activation: str | None = None,
                  reset_after: bool | None = None, keras_version: int | None = None) -> Any:
    """Network of a `.keras` / `.h5` file or a tf.keras SavedModel directory."""
    if path.is_dir():
        return _saved_model_network(path, card=card, states=states, activation=activation,
                                    reset_after=reset_after, keras_version=keras_version)
    from ..weights.keras_file import open_keras

    kf = open_keras(path)
    try:
        config = kf.model_config()
        version = keras_version or _major(kf.keras_version())
        card.detected["keras_version"] = kf.keras_version()
        specs, outputs = layers_from_config(config, kf.layer_weights)
        return build_keras_network(specs, outputs, card=card, keras_version=version, states=states,
                                   name=str(config.get("config", {}).get("name") or "keras"))
    finally:
        kf.close()


def keras_checkpoint_network(source: Any, *, card: ModelCard, states: bool | None = None,
                             activation: str | None = None, reset_after: bool | None = None,
                             keras_version: int | None = None) -> Any:
    """Network of a Keras model saved as a TF2 object-based checkpoint."""
    specs = layers_from_checkpoint(source, card, activation, reset_after)
    return build_keras_network(specs, [(specs[-1].name, 0)], card=card, keras_version=keras_version or 3,
                               states=states)


def _saved_model_network(path: Path, *, card: ModelCard, states: bool | None, activation: str | None,
                         reset_after: bool | None, keras_version: int | None) -> Any:
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
                                            reset_after=reset_after, keras_version=keras_version)
        by_layer = _checkpoint_weights_by_layer(source)
        specs, outputs = layers_from_config(config, lambda n: by_layer.get(n, []))
        card.detected["keras_version"] = "2 (tf.keras SavedModel)"
        return build_keras_network(specs, outputs, card=card, keras_version=keras_version or 2, states=states,
                                   name=str(config["config"].get("name") or "keras"))
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

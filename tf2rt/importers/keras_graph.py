"""The Keras model walker: a model config (any Keras generation) -> Network, one layer at a time.

`normalize_config` turns every way Keras has written a model config into one form:

* Keras 2.0/2.1 `Sequential` whose `config` is a bare list of layers, Keras 2.2+ and
  Keras 3 `Sequential` (`{"layers": [...]}`), the input shape on the first layer
  (`batch_input_shape`, `batch_shape`) or on an `InputLayer`;
* Functional models (`Model` / `Functional`) with Keras 2 inbound nodes
  (`[[layer, node, tensor, kwargs], ...]`) or Keras 3 ones (`{"args": [...], "kwargs": {}}`).

`KerasConverter` walks the layers in order and calls the handler of each class from the
layer table (`keras_layers.LAYERS`, filled by keras_layers, keras_conv and
keras_rnn_layers); custom classes come from `register_layer` or `custom_layers=`.
Keras masks (Embedding(mask_zero=True), Masking) travel beside the tensors as float
[N, S] masks; recurrent layers turn them into sequence lengths.
"""

from __future__ import annotations

import inspect
from collections import Counter
from typing import Any, Callable, Optional

import numpy as np

from ..errors import FormatError, MissingTensorError, UnsupportedError
from .graphdef import TV, LayoutBuilder

Ref = tuple  # (layer name, node index, tensor index)

#: class name -> handler(cv, name, config, args, ref) -> TV | list[TV]
LAYERS: dict[str, Callable] = {}
#: class name -> check(config) -> list of problems (found before anything is built)
CHECKS: dict[str, Callable[[dict], list[str]]] = {}
#: classes whose output keeps the mask of their input (Keras `supports_masking` pass-through)
MASK_PASS: set[str] = set()
#: custom layer converters registered with `register_layer`
CUSTOM: dict[str, Callable] = {}
_UNSET = object()


def layer(*names: str, mask: bool = False) -> Callable[[Callable], Callable]:
    """Register a handler for Keras layer classes (mask=True: the output keeps the input's mask)."""
    def deco(fn: Callable) -> Callable:
        for n in names:
            LAYERS[n] = fn
            if mask:
                MASK_PASS.add(n)
        return fn
    return deco


def check(*names: str) -> Callable[[Callable], Callable]:
    def deco(fn: Callable) -> Callable:
        for n in names:
            CHECKS[n] = fn
        return fn
    return deco


# --- config normalisation --------------------------------------------------------------
def tensor_refs(obj: Any) -> list[Ref]:
    """(layer, node, tensor) refs in an inbound-node entry (Keras 3 dicts or Keras 2 lists)."""
    out: list[Ref] = []
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__":
            h = obj["config"]["keras_history"]
            return [(str(h[0]), int(h[1]), int(h[2]))]
        for v in obj.values():
            out += tensor_refs(v)
        return out
    if isinstance(obj, (list, tuple)):
        if len(obj) >= 3 and isinstance(obj[0], str) and isinstance(obj[1], int) and isinstance(obj[2], int):
            return [(obj[0], int(obj[1]), int(obj[2]))]
        for v in obj:
            out += tensor_refs(v)
    return out


def node_masks(node: Any) -> list[Ref]:
    """Masks a Keras 3 node passes explicitly (`mask=` keyword: refs to NotEqual/Any op layers)."""
    if isinstance(node, dict) and isinstance(node.get("kwargs"), dict):
        return tensor_refs(node["kwargs"].get("mask"))
    return []


def node_args(node: Any, lname: str) -> list[Any]:
    """The inputs of one inbound node in order: refs, or constants (Keras 3 op layers such as
    `x + 3.0` keep their non-tensor operands in `args`). Tensors passed as keyword arguments
    (initial_state=..., constants=...) are refused; `mask=` is read by `node_masks`."""
    if isinstance(node, dict) and "args" in node:
        kwargs = node.get("kwargs") or {}
        extra = {k: tensor_refs(v) for k, v in kwargs.items() if k not in ("training", "mask")}
        extra = {k: v for k, v in extra.items() if v}
        if extra:
            raise UnsupportedError(f"layer {lname!r} is called with tensor keyword arguments "
                                   f"{sorted(extra)}; only positional tensor inputs are supported")
        out: list[Any] = []
        for a in node["args"]:
            if isinstance(a, (int, float)) and not isinstance(a, bool):
                out.append(float(a))
            else:
                out += tensor_refs(a)
        return out
    refs: list[Ref] = []
    for entry in node if isinstance(node, list) else [node]:
        if isinstance(entry, list) and len(entry) >= 4 and isinstance(entry[3], dict) and tensor_refs(entry[3]):
            raise UnsupportedError(f"layer {lname!r} is called with tensor keyword arguments "
                                   f"{sorted(entry[3])}; only positional tensor inputs are supported")
        refs += tensor_refs(entry[:3] if isinstance(entry, list) and len(entry) >= 3 else entry)
    return refs


def _untuple(obj: Any, depth: int = 0) -> Any:
    """tf.keras SavedModel metadata writes tuples as {"class_name": "__tuple__", "items": [...]}."""
    if depth > 64:
        raise FormatError("the Keras model config is nested too deeply")
    if isinstance(obj, dict):
        if obj.get("class_name") == "__tuple__" and isinstance(obj.get("items"), list):
            return [_untuple(v, depth + 1) for v in obj["items"]]
        return {k: _untuple(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_untuple(v, depth + 1) for v in obj]
    return obj


def _shape_of(cfg: dict) -> Optional[list]:
    shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
    if shape is None and cfg.get("input_shape") is not None:
        shape = [None] + list(cfg["input_shape"])
    return list(shape) if shape is not None else None


MODEL_CLASSES = ("Sequential", "Functional", "Model")


def normalize_config(config: Any, weights_of: Callable[[str], list] | None = None,
                     depth: int = 0) -> tuple[list[dict], list[Ref], list[Ref]]:
    """(layers, input refs, output refs) of any Keras model config; every layer is
    {"class_name", "name", "config", "inbound_nodes": [[arg, ...] per call], "node_masks"};
    models used as layers are inlined (their layers keep their names; a second call of
    the same model adds `_<model><call>` to them)."""
    if not isinstance(config, dict):
        raise FormatError("the Keras model config is not a JSON object")
    if depth > 8:
        raise FormatError("Keras models nested more than 8 deep")
    layers, ins, outs = _flat(_untuple(config), weights_of, depth)
    layers, outs = _inline_nested(layers, outs, weights_of, depth)
    seen: set[str] = set()
    for lc in layers:
        if lc["name"] in seen:
            raise FormatError(f"two layers are named {lc['name']!r} (a nested model reuses an outer layer's name)")
        seen.add(lc["name"])
    return layers, ins, outs


def _node_offsets(lc: dict, cfg: dict, raw_nodes: list) -> tuple[int, int]:
    """How refs to a model used as a layer number its calls: (in other layers' inputs, in
    the model outputs). A functional model owns a node 0 of its own; Keras 2 counts it
    everywhere (a Sequential only when it starts with an InputLayer), Keras 3 only in the
    output list."""
    if lc["class_name"] not in MODEL_CLASSES:
        return 0, 0
    functional = lc["class_name"] in ("Functional", "Model")
    if raw_nodes and isinstance(raw_nodes[0], dict):  # Keras 3
        return 0, int(functional)
    inner = cfg.get("layers") if isinstance(cfg, dict) else cfg
    starts_with_input = bool(inner) and isinstance(inner[0], dict) and inner[0].get("class_name") == "InputLayer"
    off = int(functional or starts_with_input)
    return off, off


def _is_model(lc: dict) -> bool:
    cfg = lc.get("config")
    return lc["class_name"] in MODEL_CLASSES and (isinstance(cfg, list) or
                                                  (isinstance(cfg, dict) and isinstance(cfg.get("layers"), list)))


def _inline_nested(layers: list[dict], outs: list[Ref], weights_of: Any, depth: int) -> tuple[list[dict], list[Ref]]:
    alias: dict[Ref, Ref] = {}  # refs in layer inputs
    out_alias: dict[Ref, Ref] = {}  # refs in the model's output list

    def remap(nodes: list[list]) -> list[list]:
        return [[alias.get(a, a) if isinstance(a, tuple) else a for a in n] for n in nodes]

    result: list[dict] = []
    for lc in layers:
        if not _is_model(lc):
            result.append(dict(lc, inbound_nodes=remap(lc["inbound_nodes"]),
                               node_masks=remap(lc.get("node_masks", []))))
            continue
        inner, inner_ins, inner_outs = normalize_config({"class_name": lc["class_name"], "config": lc["config"]},
                                                        weights_of, depth + 1)
        for k, node in enumerate(remap(lc["inbound_nodes"])):
            if len(node) != len(inner_ins):
                raise FormatError(f"nested model {lc['name']!r} takes {len(inner_ins)} inputs, is given {len(node)}")
            suffix = "" if k == 0 else f"_{lc['name']}{k}"
            feed = {r: node[j] for j, r in enumerate(inner_ins)}

            def ren(a: Any) -> Any:
                return feed.get(a, (a[0] + suffix, a[1], a[2])) if isinstance(a, tuple) else a

            for il in inner:
                if il["class_name"] == "InputLayer":
                    continue
                result.append(dict(il, name=il["name"] + suffix, weights_name=il.get("weights_name", il["name"]),
                                   inbound_nodes=[[ren(a) for a in n] for n in il["inbound_nodes"]],
                                   node_masks=[[ren(a) for a in n] for n in il.get("node_masks", [])]))
            arg_off, out_off = lc.get("node_offsets", (0, 0))
            for i, r in enumerate(inner_outs):
                alias[(lc["name"], k + arg_off, i)] = ren(r)
                out_alias[(lc["name"], k + out_off, i)] = ren(r)
    return result, [out_alias.get(r, alias.get(r, r)) for r in outs]


def _flat(config: dict, weights_of: Any, depth: int) -> tuple[list[dict], list[Ref], list[Ref]]:
    cls, cfg = config.get("class_name"), config.get("config")
    if cls == "Sequential":
        raw = cfg if isinstance(cfg, list) else (cfg.get("layers") if isinstance(cfg, dict) else None)
        if not isinstance(raw, list) or not raw:
            raise FormatError("the Keras config of class 'Sequential' lists no layers")
        return _sequential(raw, weights_of, nested=depth > 0)
    if cls in ("Functional", "Model"):
        if not isinstance(cfg, dict) or not isinstance(cfg.get("layers"), list):
            raise FormatError(f"the Keras config of class {cls!r} lists no layers")
        layers = []
        for i, lc in enumerate(cfg["layers"]):
            if not isinstance(lc, dict) or not isinstance(lc.get("class_name"), str):
                raise FormatError(f"layer {i} of the Keras config is not a layer object")
            lcfg = lc.get("config") if isinstance(lc.get("config"), dict) else {}
            name = str(lc.get("name") or lcfg.get("name") or f"layer_{i}")
            raw_nodes = lc.get("inbound_nodes") or []
            layers.append({"class_name": lc["class_name"], "name": name, "config": lcfg,
                           "inbound_nodes": [node_args(n, name) for n in raw_nodes],
                           "node_masks": [node_masks(n) for n in raw_nodes],
                           "node_offsets": _node_offsets(lc, lcfg, raw_nodes)})
        ins = tensor_refs(cfg.get("input_layers", []))
        outs = tensor_refs(cfg.get("output_layers", []))
        if not outs:
            raise FormatError("the Keras config names no output layers")
        return layers, ins, outs
    raise UnsupportedError(f"Keras model class {cls!r}; only Sequential and Functional models are supported "
                           "(a subclassed model has no config: rebuild it functionally, or export it as a "
                           "SavedModel and convert that)")


def _sequential(raw: list, weights_of: Callable[[str], list] | None,
                nested: bool = False) -> tuple[list[dict], list[Ref], list[Ref]]:
    layers: list[dict] = []
    prev: Optional[str] = None
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("class_name"), str):
            raise FormatError(f"layer {i} of the Sequential config is not a layer object")
        lcfg = dict(item.get("config") or {})
        name = str(lcfg.get("name") or item.get("name") or f"layer_{i}")
        if prev is None and item["class_name"] != "InputLayer":
            # the input shape is given on the first layer; tf.keras names the input '<layer>_input'
            shape = _shape_of(lcfg) or ([None] if nested else _guess_shape(item["class_name"], lcfg, name, weights_of))
            dtype = "int32" if item["class_name"] == "Embedding" else lcfg.get("dtype", "float32")
            inp = f"{name}_input"
            layers.append({"class_name": "InputLayer", "name": inp, "inbound_nodes": [],
                           "config": {"batch_shape": shape, "name": inp, "dtype": dtype}})
            prev = inp
        layers.append({"class_name": item["class_name"], "name": name, "config": lcfg,
                       "inbound_nodes": [[(prev, 0, 0)]] if prev is not None else [], "node_masks": [[]]})
        prev = name
    return layers, [(layers[0]["name"], 0, 0)], [(prev, 0, 0)]


def _guess_shape(cls: str, cfg: dict, name: str, weights_of: Callable[[str], list] | None) -> list:
    """Input shape of a Sequential model that records none (TF2 checkpoints): from the first
    layer's weights; sequence length and batch stay dynamic."""
    if cls == "Embedding":
        return [None, None]
    w = weights_of(name) if weights_of is not None else []
    if cls in ("LSTM", "GRU", "SimpleRNN", "Bidirectional", "CuDNNLSTM", "CuDNNGRU") and w:
        return [None, None, int(np.shape(w[0])[0])]
    raise FormatError(f"the Sequential model gives no input shape (first layer {name!r} has no "
                      "batch_input_shape); pass an architecture with an input shape")


# --- the walker --------------------------------------------------------------------------
class KerasConverter(LayoutBuilder):
    """Walks normalised layers and adds one group of Network layers per Keras layer."""

    def __init__(self, config: dict, weights: Callable[[str], list[np.ndarray]], keras_version: int,
                 *, custom_layers: Optional[dict[str, Callable]] = None, states: Optional[bool] = None):
        super().__init__()
        self.config = config
        self.get_weights = weights
        self.keras_version = keras_version
        self.keras3 = keras_version >= 3
        self.custom = {**CUSTOM, **(custom_layers or {})}
        self.states = states
        self.values: dict[Ref, TV] = {}
        self.masks: dict[Ref, Any] = {}
        self.in_masks: list[Any] = []
        self.mask_out: Any = _UNSET
        self.consumers: Counter = Counter()
        self.rnn_cards: list[dict[str, Any]] = []
        self.state_names: list[str] = []
        self.layers: list[dict] = []
        self.current: Optional[dict] = None  # the layer being converted
        self.cache: dict[tuple, Any] = {}  # tensors derived once per mask (lengths, compaction)

    def convert(self, name: str) -> Any:
        from ..network import Network

        layers, ins, outs = normalize_config(self.config, self.get_weights)
        self.layers = layers
        self._check(layers)
        readers: dict[str, list[str]] = {}
        for lc in layers:
            for node in lc["inbound_nodes"]:
                for ref in node:
                    if isinstance(ref, tuple):
                        self.consumers[ref] += 1
                        readers.setdefault(ref[0], []).append(lc["class_name"])
        for ref in outs:
            self.consumers[ref] += 1
        if self.states is None:  # streaming states by default for plain unidirectional recurrent models
            rnns = [lc for lc in layers if lc["class_name"] in RECURRENT]
            self.states = bool(rnns) and all(lc["class_name"] != "Bidirectional" and
                                             not lc["config"].get("go_backwards") for lc in rnns)
        self.net = Network(name)
        self.net.metadata["source_format"] = "keras"
        for lc in layers:
            cls, lname, cfg = lc["class_name"], lc["name"], lc["config"]
            if cls == "InputLayer":
                self._input(lname, cfg, readers.get(lname, []))
                continue
            for k, node in enumerate(lc["inbound_nodes"]):
                missing = [a for a in node if isinstance(a, tuple) and a not in self.values]
                if missing:
                    raise FormatError(f"layer {lname!r} reads {missing[0][0]!r}, which comes later or not at all")
                args = [self.values[a] if isinstance(a, tuple) else np.float32(a) for a in node]
                explicit = (lc.get("node_masks") or [[]] * (k + 1))[k]
                if explicit:  # Keras 3 passes masks as tensors (mask=...): they are float [N, S] here
                    self.in_masks = [self.plain(self.values[m]) for m in explicit]
                else:
                    self.in_masks = [self.masks.get(a) if isinstance(a, tuple) else None for a in node]
                self.mask_out = _UNSET
                self.current = lc
                ref = (lname, k, 0)
                try:
                    out = self._handler(cls)(self, lname if k == 0 else f"{lname}_{k}", cfg, args, ref)
                except (UnsupportedError, FormatError) as exc:
                    raise type(exc)(f"layer {lname!r} ({cls}): {exc}") from None
                outs_k = out if isinstance(out, list) else [out]
                for i, v in enumerate(outs_k):
                    self.values[(lname, k, i)] = v
                mask = self.mask_out
                if mask is _UNSET:
                    known = [m for m in self.in_masks if m is not None]
                    mask = self.combine_masks(known, f"{lname}/mask") if cls in MASK_PASS and known else None
                if mask is not None:
                    self.masks[(lname, k, 0)] = mask
        marked: list[Any] = []
        for ref in outs:
            if ref not in self.values:
                raise FormatError(f"the model output {ref[0]!r} is not produced by any layer")
            t = self.plain(self.values[ref])
            if t.producer is None or t.is_network_output or t in marked:
                t = self.net.add_identity(t, name=f"{ref[0]}/identity").output
            self.mark_output(t, ref[0] if ref[2] == 0 else f"{ref[0]}/state_{ref[2]}")
            marked.append(t)
        return self.net

    def _handler(self, cls: str) -> Callable:
        if cls in self.custom:
            return custom_handler(self.custom[cls])
        return LAYERS[cls]

    def _input(self, lname: str, cfg: dict, readers: list[str]) -> None:
        shape = _shape_of(cfg)
        if shape is None:
            raise FormatError(f"input {lname!r} has no shape")
        dt = cfg.get("dtype", "float32")
        dt = dt if isinstance(dt, str) else (dt.get("config", {}).get("name", "float32") if isinstance(dt, dict)
                                             else "float32")
        if readers and all(r == "Embedding" for r in readers):
            dt = "int32"  # token ids (Keras 2 configs often say float32 for them)
        shape = [None] + [None if d is None else int(d) for d in shape[1:]]
        self.values[(lname, 0, 0)] = TV(self.net.add_input(lname, dt, shape))

    def _check(self, layers: list[dict]) -> None:
        """Every unsupported layer and setting, listed at once, before anything is built."""
        from .keras_layers import ACTIVATIONS, act_name

        bad: Counter = Counter()
        problems: list[str] = []
        for lc in layers:
            cls, cfg = lc["class_name"], lc["config"]
            if cls == "InputLayer" or cls in self.custom:
                continue
            if cls not in LAYERS:
                bad[cls] += 1
                continue
            act = cfg.get("activation")
            if "activation" in cfg and cls not in RECURRENT and act_name(act) not in ACTIVATIONS:
                problems.append(f"layer {lc['name']!r}: activation {act_name(act)!r}")
            if cls in CHECKS:
                problems += [f"layer {lc['name']!r} ({cls}): {p}" for p in CHECKS[cls](cfg)]
        if bad or problems:
            parts = []
            if bad:
                listed = ", ".join(f"{k} x{n}" for k, n in sorted(bad.items()))
                parts.append(f"unsupported Keras layers: {listed} (supported: {', '.join(sorted(LAYERS))}; "
                             "convert others with register_layer / custom_layers=, see docs/convert.md)")
            parts += problems
            raise UnsupportedError("cannot convert this Keras model:\n" + "\n".join(f"  - {p}" for p in parts))

    # --- helpers for handlers ------------------------------------------------------------
    def weights(self, lname: str, n_min: int) -> list[np.ndarray]:
        w = self.layer_arrays(lname)
        if len(w) < n_min:
            raise FormatError(f"layer {lname!r} has {len(w)} weight arrays in the file, expected {n_min}")
        return w

    def layer_arrays(self, lname: str) -> list[np.ndarray]:
        """The weights (float32) of the layer being converted (`lname` names it in messages
        only: a layer's second call is named `<layer>_1`, a nested model's layers keep
        their own weight names)."""
        lc = self.current or {}
        stored = lc.get("weights_name", lc.get("name", lname))
        return [np.asarray(a, dtype=np.float32) for a in self.get_weights(stored)]

    def fusable_out(self, t: Any, ref: tuple) -> TV:
        if self.consumers[ref] == 1:
            self.fusable.add(id(t))
        return TV(t, nchw=True)

    def combine_masks(self, masks: list[Any], name: str) -> Any:
        """The AND of float [N, S] masks."""
        acc = masks[0]
        for i, m in enumerate(masks[1:]):
            if m is not acc:
                acc = self.net.add_elementwise(acc, m, "prod", name=f"{name}/{i}").output
        return acc


RECURRENT = {"LSTM", "GRU", "SimpleRNN", "CuDNNLSTM", "CuDNNGRU", "Bidirectional"}


def custom_handler(fn: Callable) -> Callable:
    """Adapt a user converter fn(network, config, inputs, weights[, masks]) to a layer handler."""
    takes_masks = "masks" in inspect.signature(fn).parameters

    def handler(cv: KerasConverter, name: str, cfg: dict, args: list, ref: tuple) -> Any:
        ins = [cv.plain(a) if isinstance(a, TV) else
               cv.net.add_constant((), np.float32(a), name=f"{name}/const{i}").output for i, a in enumerate(args)]
        try:
            weights = cv.layer_arrays(ref[0])
        except MissingTensorError:  # a layer without weights has no group in a Keras 3 file
            weights = []
        kwargs = {"masks": list(cv.in_masks)} if takes_masks else {}
        out = fn(cv.net, dict(cfg, name=name), ins, weights, **kwargs)
        if isinstance(out, (list, tuple)):
            return [TV(t) for t in out]
        if out is None:
            raise UnsupportedError("the custom layer converter returned no tensor")
        return TV(out)

    return handler

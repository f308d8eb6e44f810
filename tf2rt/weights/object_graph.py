"""Readable names and kinds for checkpoint keys.

TF2 object-based checkpoints store a `TrackableObjectGraph` proto under
`_CHECKPOINTABLE_OBJECT_GRAPH`; it maps keys such as
`model/layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE` to the variable's TF1-style
`full_name`. TF1 name-based checkpoints already use variable names. Either way each key is
classified as a model variable, an optimizer slot, or bookkeeping.
"""

from __future__ import annotations

import re

from ..errors import FormatError
from ..proto import Message
from .base import BOOKKEEPING, OPTIMIZER_SLOT, VARIABLE

OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
_ATTRIBUTES = "/.ATTRIBUTES/"
_SLOT_MARK = "/.OPTIMIZER_SLOT/"
_VALUE = "VARIABLE_VALUE"

# TrackableObjectGraph field numbers (tensorflow/core/protobuf/trackable_object_graph.proto)
_NODES = 1
_CHILDREN, _ATTRS, _SLOTS = 1, 2, 3
_REF_NODE_ID, _REF_LOCAL_NAME = 1, 2
_ATTR_NAME, _ATTR_FULL_NAME, _ATTR_KEY = 1, 2, 3
_SLOT_ORIGINAL, _SLOT_NAME, _SLOT_NODE = 1, 2, 3

# Last name component of TF1 optimizer slot variables (`dense/kernel/Adam_1`, ...).
_TF1_SLOT = re.compile(
    r"^(Adam|AdamW|Adamax|Nadam|Momentum|RMSProp|Adagrad|AdagradDA|ProximalAdagrad|Adadelta|Ftrl|"
    r"LazyAdam|Lamb|LARS)(_\d+)?$"
)
# First component of optimizer-owned variables (Keras: `training/Adam/...`, TF2: `optimizer/...`).
_OPTIMIZER_SCOPES = {"training", "optimizer", "Adam", "SGD", "RMSprop", "Adagrad", "Adadelta", "Adamax", "Nadam", "Ftrl"}
_OPTIMIZER_STATE = re.compile(r"^(beta[12]_power|iter|iterations|decay|learning_rate|lr)(_\d+)?$")
_BOOKKEEPING = {"global_step", "save_counter", OBJECT_GRAPH_KEY, "_OBJECT_GRAPH_PROTO"}


def classify(name: str) -> str:
    """Kind of a TF1-style variable name: "variable", "optimizer_slot" or "bookkeeping"."""
    parts = name.split("/")
    if parts[-1] in _BOOKKEEPING or name in _BOOKKEEPING:
        return BOOKKEEPING
    if len(parts) > 1 and _TF1_SLOT.match(parts[-1]):
        return OPTIMIZER_SLOT
    if parts[0] in _OPTIMIZER_SCOPES and len(parts) > 1:
        return OPTIMIZER_SLOT
    if _OPTIMIZER_STATE.match(parts[-1]) and (len(parts) == 1 or parts[0] in _OPTIMIZER_SCOPES):
        return OPTIMIZER_SLOT
    return VARIABLE


def unescape_local_name(part: str) -> str:
    """Undo TF's escaping of one object-path component (`..` -> `.`, `.S` -> `/`)."""
    if "." not in part:
        return part
    return re.sub(r"\.(.)", lambda m: {".": ".", "S": "/"}.get(m.group(1), m.group(0)), part)


def key_path(key: str) -> tuple[list[str], str]:
    """Split an object-based key into its unescaped object path and attribute name."""
    head, sep, attr = key.partition(_ATTRIBUTES)
    if not sep:
        return [unescape_local_name(p) for p in key.split("/")], ""
    return [unescape_local_name(p) for p in head.split("/")], attr


def is_object_based_key(key: str) -> bool:
    return _ATTRIBUTES in key


def names_from_object_graph(data: bytes, keys: set[str], what: str) -> dict[str, tuple[str, str]]:
    """Map each object-based key in `keys` to (readable name, kind) using the graph proto.

    A key gets its variable's `full_name` when the graph records one (and no other key
    claims the same name), else the object path from the root. A variable reachable from
    the root without passing through an optimizer is a model variable even when its key
    runs through the optimizer (Keras 3 saves model variables under
    `optimizer/_trainable_variables/N` when that path is the shortest).
    """
    graph = Message(data, f"{what} object graph")
    nodes = graph.messages(_NODES)
    children = [[(ref.int(_REF_NODE_ID), ref.str(_REF_LOCAL_NAME)) for ref in n.messages(_CHILDREN)] for n in nodes]
    slot_nodes: set[int] = set()
    optimizers: set[int] = set()
    for i, node in enumerate(nodes):
        for slot in node.messages(_SLOTS):
            slot_nodes.add(slot.int(_SLOT_NODE))
            optimizers.add(i)
    for kids in children:
        optimizers.update(j for j, local in kids if local == "optimizer")
    model_paths = _paths(children, avoid=optimizers | slot_nodes, what=what)

    by_key: dict[str, int] = {}
    full_names: dict[str, str] = {}
    for i, node in enumerate(nodes):
        for attr in node.messages(_ATTRS):
            key = attr.str(_ATTR_KEY)
            if key in keys:
                by_key[key] = i
                full_names[key] = attr.str(_ATTR_FULL_NAME)

    counts: dict[str, int] = {}
    for full in full_names.values():
        if full:
            counts[full] = counts.get(full, 0) + 1
    result: dict[str, tuple[str, str]] = {}
    for key in keys:
        path, attr = key_path(key)
        node = by_key.get(key)
        full = full_names.get(key, "")
        if node is not None and node in model_paths:
            path = model_paths[node]
        if full and counts[full] == 1 and attr in (_VALUE, ""):
            name = full
        else:
            name = "/".join(path) + ("" if attr in (_VALUE, "") else f"/{attr}")
        if node is None:
            kind = _classify_key(key, path, attr)
        elif node in slot_nodes or node not in model_paths:
            kind = OPTIMIZER_SLOT
        else:
            kind = _classify_key(key, path, attr)
        result[key] = (name, kind)
    return result


def _classify_key(key: str, path: list[str], attr: str) -> str:
    if key == OBJECT_GRAPH_KEY:
        return BOOKKEEPING
    if _SLOT_MARK in key:
        return OPTIMIZER_SLOT
    if path and path[-1] in _BOOKKEEPING:
        return BOOKKEEPING
    if attr and attr != _VALUE:
        return BOOKKEEPING  # Python state and other non-variable attributes
    return VARIABLE


_MAX_DEPTH = 256  # Keras models nest objects a few tens deep


def _paths(children: list[list[tuple[int, str]]], avoid: set[int], what: str = "checkpoint") -> dict[int, list[str]]:
    """Breadth-first shortest object paths from the root (node 0), not entering `avoid`."""
    paths: dict[int, list[str]] = {0: []} if children else {}
    frontier = [0] if children else []
    depth = 0
    while frontier:
        depth += 1
        if depth > _MAX_DEPTH:  # each path is copied whole: a long chain would cost depth^2
            raise FormatError(f"{what}: the object graph nests deeper than {_MAX_DEPTH} objects; "
                              "it is hostile or corrupted")
        nxt = []
        for i in frontier:
            for j, local in children[i]:
                if j in paths or j in avoid or not 0 <= j < len(children):
                    continue
                paths[j] = paths[i] + [local]
                nxt.append(j)
        frontier = nxt
    return paths

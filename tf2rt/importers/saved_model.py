"""TensorFlow SavedModel directories read without TensorFlow, imported into a Network.

`saved_model.pb` gives the graph (with its function library, inlined by `Graph`) and the
serving signature; `variables/variables.*` is a TF2 object-based checkpoint. A variable
handle (VarHandleOp) is matched to its checkpoint tensor through the SavedObjectGraph:
a top-level call passes captured handles last, and the called function's
SavedConcreteFunction.bound_inputs names the object-graph nodes they are; the checkpoint's
own object graph (same node numbering) gives each node's checkpoint key.
Field numbers follow tensorflow/core/protobuf/{saved_model,meta_graph,saved_object_graph,
trackable_object_graph}.proto.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FormatError, MissingTensorError, UnsupportedError
from ..proto import Message
from .graphdef import CALL_OPS, Graph, Node, parse_function, parse_node, parse_shape, split_ref


@dataclass
class SignatureTensor:
    """One signature input/output: public key, graph tensor ref, dtype code, shape."""

    key: str
    ref: str
    dtype: int
    shape: tuple[int, ...] | None


@dataclass
class SavedModel:
    """The parts of a SavedModel an importer needs."""

    path: Path
    graph: Graph
    inputs: list[SignatureTensor]
    outputs: list[SignatureTensor]
    variable_keys: dict[str, str]  # VarHandleOp node name -> checkpoint key
    checkpoint: Any  # WeightSource of variables/variables (None if the model has none)

    def read_variable(self, node: Node) -> np.ndarray:
        """Value of the variable a VarHandleOp node stands for."""
        key = self.variable_keys.get(node.name)
        if key is None:
            shared = node.attr("shared_name").s() if node.attr("shared_name") else ""
            raise MissingTensorError(
                f"{self.path}: cannot find the checkpoint value of variable {node.name!r} "
                f"(shared_name {shared!r}); the SavedModel's object graph does not reference it")
        return np.asarray(self.checkpoint.read(key))


def _signature_tensors(sig: Message, field_no: int) -> list[SignatureTensor]:
    out = []
    for entry in sig.messages(field_no):
        info = entry.message(2)
        out.append(SignatureTensor(entry.str(1), info.str(1), info.int(2), parse_shape(info.message(3))))
    return sorted(out, key=lambda t: t.key)


def _checkpoint_keys(ckpt: Any) -> dict[int, str]:
    """Object-graph node id -> checkpoint key of its VARIABLE_VALUE attribute."""
    raw = ckpt.read("_CHECKPOINTABLE_OBJECT_GRAPH")
    data = raw.reshape(-1)[0] if isinstance(raw, np.ndarray) else raw
    graph = Message(bytes(data), "checkpoint object graph")
    keys = {}
    for i, obj in enumerate(graph.messages(1)):
        for attr in obj.messages(2):
            if attr.str(1) == "VARIABLE_VALUE":
                keys[i] = attr.str(3)
    return keys


def _full_names(ckpt: Any) -> dict[str, str]:
    """Variable full name -> checkpoint key, for handles the object graph does not bind."""
    raw = ckpt.read("_CHECKPOINTABLE_OBJECT_GRAPH")
    data = raw.reshape(-1)[0] if isinstance(raw, np.ndarray) else raw
    out = {}
    for obj in Message(bytes(data), "checkpoint object graph").messages(1):
        for attr in obj.messages(2):
            if attr.str(1) == "VARIABLE_VALUE" and attr.str(2):
                out[attr.str(2)] = attr.str(3)
    return out


def read_saved_model(path: str | Path, signature: str = "serving_default", tag: str = "serve") -> SavedModel:
    """Parse a SavedModel directory (graph, signature, variable bindings)."""
    root = Path(path)
    pb = root / "saved_model.pb"
    if not pb.is_file():
        raise FormatError(f"{root}: not a SavedModel directory (no saved_model.pb)")
    msg = Message(pb.read_bytes(), str(pb))
    metas = msg.messages(2)
    if not metas:
        raise FormatError(f"{pb}: no meta graphs")
    chosen = None
    tags_seen = []
    for mg in metas:
        tags = mg.message(1).strs(4)
        tags_seen.append(tags)
        if tag in tags:
            chosen = mg
            break
    if chosen is None:
        raise FormatError(f"{pb}: no meta graph tagged {tag!r} (has {tags_seen})")
    sigs = {k: e.message(2) for k, e in ((e.str(1), e) for e in chosen.messages(5))}
    if signature not in sigs:
        usable = sorted(k for k in sigs if not k.startswith("__"))
        raise FormatError(f"{root}: no signature {signature!r}; choose one of {usable}")
    sig = sigs[signature]
    gd = chosen.message(2)
    nodes = [parse_node(n) for n in gd.messages(1)]
    functions = {f.name: f for f in (parse_function(m) for m in gd.message(2).messages(1))}

    ckpt = None
    var_keys: dict[str, str] = {}
    if any(n.op in ("VarHandleOp", "VariableV2") for n in nodes):
        from ..weights.tf_checkpoint import open_checkpoint

        prefix = root / "variables" / "variables"
        if not Path(str(prefix) + ".index").is_file():
            raise FormatError(f"{root}: the model has variables but {prefix}.index is missing")
        ckpt = open_checkpoint(prefix)
        stored = {i.key or i.name for i in ckpt.infos()}
        object_based = "_CHECKPOINTABLE_OBJECT_GRAPH" in stored
        by_node = _checkpoint_keys(ckpt) if object_based else {}
        bound: dict[str, list[int]] = {}
        for k, e in ((e.str(1), e) for e in chosen.message(7).messages(2)):
            bound[k] = e.message(2).packed_varints(2)
        ops = {n.name: n.op for n in nodes}
        for n in nodes:
            if n.op not in CALL_OPS or n.attr("f") is None:
                continue
            ids = bound.get(n.attr("f").func(), [])  # type: ignore[union-attr]
            captured = n.inputs[len(n.inputs) - len(ids):] if ids else []
            for ref, oid in zip(captured, ids):
                src = split_ref(ref)[0]
                if ops.get(src) == "VarHandleOp" and oid in by_node:
                    var_keys.setdefault(src, by_node[oid])
        names = _full_names(ckpt) if object_based else {}
        for n in nodes:  # variables not bound through a call: match by name (TF1: name = key)
            if n.op not in ("VarHandleOp", "VariableV2") or n.name in var_keys:
                continue
            shared = n.attr("shared_name").s() if n.attr("shared_name") else ""  # type: ignore[union-attr]
            for cand in (names.get(shared), names.get(n.name), shared, n.name):
                if cand and cand in stored:
                    var_keys[n.name] = cand
                    break
    # only the signature's call matters; saver/restore calls are dropped before inlining
    keep = _reachable(nodes, [split_ref(t.ref)[0] for t in _signature_tensors(sig, 2)])
    graph = Graph([n for n in nodes if n.name in keep], functions)
    return SavedModel(root, graph, _signature_tensors(sig, 1), _signature_tensors(sig, 2), var_keys, ckpt)


def _reachable(nodes: list[Node], roots: list[str]) -> set[str]:
    by_name = {n.name: n for n in nodes}
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name not in by_name:
            continue
        seen.add(name)
        todo.extend(split_ref(r)[0] for r in by_name[name].inputs)
    return seen


def import_saved_model(path: str | Path, signature: str = "serving_default", tag: str = "serve",
                       name: str | None = None, inputs: list[str] | None = None, outputs: list[str] | None = None,
                       input_shapes: dict[str, list] | None = None) -> Any:
    """Import a SavedModel's serving signature into a `Network`; engine inputs and outputs
    are named after the signature's keys. inputs/outputs (signature keys or graph node
    names) cut out a subgraph; input_shapes: name -> dims (None or -1 = dynamic)."""
    from .graphdef import split_ref
    from .graphdef_ops import GraphConverter

    sm = read_saved_model(path, signature, tag)
    if not sm.outputs:
        raise UnsupportedError(f"{path}: signature {signature!r} has no outputs")
    conv = GraphConverter(sm.graph, resolve_variable=sm.read_variable)

    def pick(names: list[str] | None, sig: list) -> dict[str, str]:
        keys = {t.key: t.ref for t in sig}
        if names is None:
            return keys
        return {n: keys[n] if n in keys else n for n in ((split_ref(x)[0] if x not in keys and split_ref(x)[1] == 0
                                                           else x) for x in names)}

    ins, outs = pick(inputs, sm.inputs), pick(outputs, sm.outputs)
    outs = {k.replace(":", "_"): r for k, r in outs.items()}
    conv.input_shapes = {split_ref(ins.get(k, k))[0]: list(v) for k, v in (input_shapes or {}).items()}
    return conv.convert_named(ins, outs, name or Path(path).name)

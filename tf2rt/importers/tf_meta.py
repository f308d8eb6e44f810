"""A TF1 checkpoint with its `.meta` graph -> Network, through the one TF graph front end.

The graph decides what the model is: the inference subgraph between its inputs (the
placeholders the outputs depend on, or `inputs=`) and its outputs (its Softmax nodes, or
`outputs=`) is converted op by op; RNN while loops on that path become native RNN layers
(tf_loops.py); the variables it reads are bound from the checkpoint. Variables off the path
(learning rates, global_step, loss monitors, optimizer slots) are ignored and counted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FormatError, ShapeError, UnsupportedError
from ..limits import read_capped
from ..proto import Message
from .graphdef import Graph, Node, parse_graphdef, split_ref

_MAX_META_BYTES = 1 << 30
_NOT_OUTPUTS = ("gradients", "save/", "train", "Adam", "GradientDescent", "RMSProp", "Momentum", "Adagrad")


def read_meta_graphdef(path: str | Path) -> tuple[Graph, Message]:
    """The main graph of a `.meta` MetaGraphDef (functions inlined lazily) and the message itself."""
    data = read_capped(path, _MAX_META_BYTES, "MetaGraphDef")
    try:
        mg = Message(data, Path(path).name)
        graph = parse_graphdef(mg.bytes(2), f"{Path(path).name} graph_def")
    except FormatError as exc:
        raise FormatError(f"{path} is not a readable MetaGraphDef ({exc}); pass --no-meta to ignore it") from None
    if not graph.nodes:
        raise FormatError(f"{path} holds no graph nodes; is it a MetaGraphDef? Pass --no-meta to ignore it")
    return graph, mg


def default_outputs(graph: Graph) -> list[str]:
    """Softmax nodes of the inference graph (not of loss or gradient computations)."""
    used_by_loss = set()
    for n in graph.nodes.values():
        if "SoftmaxCrossEntropy" in n.op:
            used_by_loss.update(split_ref(r)[0] for r in n.inputs)
    outs = []
    for n in graph.nodes.values():
        if n.op == "Softmax" and n.name not in used_by_loss and not n.name.startswith(_NOT_OUTPUTS):
            logits = split_ref(n.inputs[0])[0] if n.inputs else ""
            if logits in graph.nodes and graph.nodes[logits].op not in ("Identity", "Reshape") and logits not in outs:
                outs.append(logits)  # the logits too: generation samples from them
            outs.append(n.name)
    return outs


def _reachable_placeholders(graph: Graph, outputs: list[str]) -> list[str]:
    seen, todo, found = set(), [split_ref(o)[0] for o in outputs], []
    while todo:
        name = todo.pop()
        if name in seen or name not in graph.nodes:
            continue
        seen.add(name)
        n = graph.nodes[name]
        if n.op == "Placeholder":
            found.append(name)
            continue
        todo += [split_ref(r)[0] for r in n.inputs]
    order = {name: i for i, name in enumerate(graph.nodes)}
    return sorted(found, key=order.get)


def _describe_stack(rec: Any) -> str:
    """'3x rnn tanh(16)' / 'lstm(8) + gru(5)' for the cells of one recurrence."""
    parts: list[list] = []
    for c in rec.layers:
        label = f"{c.kind}{' ' + c.activation if c.kind == 'rnn' else ''}({getattr(c, 'hidden', '?')})"
        if parts and parts[-1][0] == label:
            parts[-1][1] += 1
        else:
            parts.append([label, 1])
    return " + ".join(f"{n}x {label}" if n > 1 else label for label, n in parts)


def _relaxed(graph: Graph, inputs: list[str]) -> dict[str, list]:
    """Placeholder shapes with every dimension but the last dynamic (rank 1: all dynamic)."""
    out = {}
    for name in inputs:
        node = graph.nodes.get(split_ref(name)[0])
        attr = node.attr("shape") if node is not None else None
        shape = attr.shape() if attr is not None else None
        if shape:
            out[split_ref(name)[0]] = [-1] * (len(shape) - 1) + ([shape[-1]] if len(shape) >= 3 else [-1])
    return out


class CheckpointVariables:
    """Resolves the graph's variable nodes to checkpoint tensors, remembering which were used."""

    def __init__(self, source: Any):
        self.source = source
        self.used: dict[str, tuple[int, ...]] = {}

    def __call__(self, node: Node) -> np.ndarray:
        shared = node.attr("shared_name")
        key = shared.s() if shared is not None and shared.s() else node.name
        if key not in self.source:
            raise UnsupportedError(f"variable {key!r} (node {node.name!r}) is not in the checkpoint")
        value = np.asarray(self.source.read(key))
        self.used[key] = tuple(value.shape)
        return value


def import_meta_checkpoint(source: Any, meta_path: str | Path, *, inputs: list[str] | None = None,
                           outputs: list[str] | None = None, name: str | None = None,
                           card: Any = None, input_shapes: dict[str, list] | None = None) -> Any:
    """Convert the inference part of a `.meta` graph, variables bound from `source`."""
    from .graphdef_ops import GraphConverter
    from .tf_loops import ensure_recurrences

    graph, _mg = read_meta_graphdef(meta_path)
    recs = ensure_recurrences(graph, inputs)
    if outputs is None:
        outputs = default_outputs(graph)
        if not outputs:
            raise UnsupportedError(f"{meta_path}: the graph has no Softmax output to convert to; name the "
                                   "outputs with --outputs NODE[,NODE...]")
    if inputs is None:
        inputs = _reachable_placeholders(graph, outputs)
    resolver = CheckpointVariables(source)
    # A checkpoint's graph is its training graph: its batch and time sizes are training choices.
    # Unless shapes are given, every dimension but the last (features) is tried as dynamic first,
    # then the placeholders as saved.
    attempts = [input_shapes] if input_shapes else [_relaxed(graph, inputs), None]
    for k, shapes in enumerate(attempts):
        cv = GraphConverter(graph, resolve_variable=resolver)
        cv.input_shapes = {key: list(v) for key, v in (shapes or {}).items()}
        try:
            net = cv.convert(inputs, outputs, name or "model")
            break
        except (UnsupportedError, FormatError, ShapeError):
            if k == len(attempts) - 1:
                raise
    if card is not None:
        for info in getattr(cv, "recurrence_info", []):
            for key, value in info.items():
                card.setting(key, value, ".meta graph")
        infos = [i for i in source.infos()]
        ignored = [i.name for i in infos if i.name not in resolver.used]
        card.ignored = len(ignored)
        card.detected["graph"] = {
            "inputs": list(inputs), "outputs": list(outputs),
            "recurrences": [{"loop": r.name, "cells": [f"{c.kind}({c.name})" for c in r.layers]} for r in recs],
            "variables_used": sorted(resolver.used),
            "variables_ignored": sorted(ignored)[:50],
        }
        stacks = [_describe_stack(r) for r in recs]
        card.summary = " -> ".join([", ".join(inputs), *stacks, ", ".join(outputs)])
    return net

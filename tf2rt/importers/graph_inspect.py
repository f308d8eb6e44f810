"""What a frozen GraphDef (.pb) or SavedModel holds, for `tf2rt inspect`: its inputs (dtype,
shape), candidate outputs, an op histogram, and the ops the converter does not handle (with
node names), so that a user can choose --inputs/--outputs/--input-shape before converting."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from .graphdef import DTYPE_NAMES, Graph, Node, split_ref

_NOT_OUTPUTS = ("NoOp", "Const", "Placeholder", "PlaceholderWithDefault", "Assert", "SaveV2", "RestoreV2",
                "VarHandleOp", "VariableV2", "AssignVariableOp", "MergeV2Checkpoints", "ShardedFilename",
                "StringJoin", "Identity_checkpoint")
MAX_EXAMPLES = 5


def is_graph_file(path: str | Path) -> bool:
    """A frozen .pb, a SavedModel directory or a checkpoint's .meta graph."""
    p = Path(path)
    return (p.is_file() and p.suffix.lower() in (".pb", ".meta")) or \
        (p.is_dir() and (p / "saved_model.pb").is_file())


def _dtype(node: Node) -> str:
    a = node.attr("dtype")
    code = a.type() if a is not None else 1
    return DTYPE_NAMES.get(code % 100 if code > 100 else code, f"DataType {code}")


def _shape(node: Node) -> list | None:
    a = node.attr("shape")
    s = a.shape() if a is not None else None
    return None if s is None else [None if d < 0 else d for d in s]


def inlined_argument(graph: Graph, node: Node) -> bool:
    """An Identity the graph reader made for an argument of an inlined function call (not a model output)."""
    call = graph.nodes.get(node.name.rpartition("/")[0])
    return node.op == "Identity" and call is not None and call.op == "IdentityN"


def _reachable(graph: Graph, roots: list[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name not in graph.nodes:
            continue
        seen.add(name)
        todo.extend(split_ref(r)[0] for r in graph.nodes[name].inputs)
    return seen


_IF_OPS = ("_Cond", "If", "StatelessIf", "Case", "StatelessCase")


def _parts(graph: Graph, node: Node) -> list[tuple[str, Graph, list[str]]]:
    """The sub-graphs a conditional or loop node runs (branches, body): (label, graph, result refs)."""
    plan = getattr(node, "plan", None)
    if node.op == "_Cond":
        return [(which, g, roots) for which, (g, _args, roots) in zip(("then", "else"), plan.branches)]
    if node.op == "_WhileLoop":
        return [("body", plan.body, [plan.cond, *plan.nexts.values(), *plan.items.values()])]
    keys = ("then_branch", "else_branch") if node.op.endswith("If") else ()
    fnames = [node.attr(k).func() for k in keys if node.attr(k) is not None]
    if node.attr("branches") is not None:
        fnames = [f.str(1) for f in node.attr("branches").msg.message(1).messages(9)]  # type: ignore[union-attr]
    labels = ("then", "else") if keys else [f"branch_{i}" for i in range(len(fnames))]
    out = []
    for label, fname in zip(labels, fnames):
        g = Graph([], graph.functions)
        args = [f"{node.name}/{label}/arg_{k}" for k in range(len(node.inputs) - 1)]
        for a in args:
            g.nodes[a] = Node(a, "_LoopArg", [])
        out.append((label, g, g.inline_function(fname, f"{node.name}/{label}", [f"{a}:0" for a in args])))
    return out


def control_flow(graph: Graph, roots: list[str]) -> dict[str, list[str]]:
    """Conditionals and while loops on the path to `roots` that stay in the engine as ONNX If /
    Loop, nested ones too (named under the one they are in, unless their own name says so); a
    Case is one conditional (a chain of Ifs)."""
    from .tf_loops import ensure_recurrences

    found: dict[str, list[str]] = {"conditionals": [], "while_loops": []}
    todo: list[tuple[Graph, list[str], tuple[str, ...]]] = [(graph, roots, ("",))]
    while todo:
        g, rs, scopes = todo.pop(0)
        try:
            ensure_recurrences(g)
        except Exception:  # noqa: BLE001 - a part that does not convert is reported by the converter
            continue
        for name in sorted(_reachable(g, [split_ref(r)[0] for r in rs])):
            node = g.nodes[name]
            if node.op not in _IF_OPS and node.op != "_WhileLoop":
                continue
            shown = name if name.startswith(scopes) else scopes[-1] + name
            found["while_loops" if node.op == "_WhileLoop" else "conditionals"].append(shown)
            try:
                parts = _parts(g, node)
            except Exception:  # noqa: BLE001 - as above
                continue
            own = (shown + "/", shown.rpartition("/")[0] + "/") if node.op == "_WhileLoop" else (shown + "/",)
            todo.extend((pg, proots, (*own, f"{shown}/{label}/")) for label, pg, proots in parts)
    return found


def _op_counts(graph: Graph) -> Counter:
    """Ops of the graph as read (function calls inlined), before loops and conds are rewritten."""
    return Counter(n.op for n in graph.nodes.values())


def describe_graph(path: str | Path) -> dict[str, Any]:
    """A JSON-able description of a .pb or SavedModel: inputs, outputs, op counts, unsupported ops."""
    from .graphdef_ops import HANDLERS

    p = Path(path)
    if p.is_dir():
        from .saved_model import read_saved_model

        sm = read_saved_model(p)
        graph, fmt = sm.graph, "saved-model"
        ops = _op_counts(graph)
        inputs = [{"name": t.key, "node": split_ref(t.ref)[0], "dtype": DTYPE_NAMES.get(t.dtype, str(t.dtype)),
                   "shape": None if t.shape is None else [None if d < 0 else d for d in t.shape]} for t in sm.inputs]
        outputs = [{"name": t.key, "node": t.ref} for t in sm.outputs]
    elif p.suffix.lower() == ".meta":
        from .tf_loops import ensure_recurrences
        from .tf_meta import _reachable_placeholders, default_outputs, read_meta_graphdef

        graph, _mg = read_meta_graphdef(p)
        fmt = "meta-graph"
        ops = _op_counts(graph)
        ensure_recurrences(graph)
        outs = default_outputs(graph)
        inputs = [{"name": n, "node": n, "dtype": _dtype(graph.nodes[n]), "shape": _shape(graph.nodes[n])}
                  for n in _reachable_placeholders(graph, outs)]
        outputs = [{"name": o, "node": o, "op": graph.nodes[o].op} for o in outs]
    else:
        from .graphdef import read_graphdef

        from .graphdef import sink_nodes
        from .tf_loops import ensure_recurrences

        graph, fmt = read_graphdef(p), "graphdef"
        ops = _op_counts(graph)
        inputs = [{"name": n.name, "node": n.name, "dtype": _dtype(n), "shape": _shape(n),
                   **({"default": True} if n.op == "PlaceholderWithDefault" else {})}
                  for n in graph.nodes.values() if n.op in ("Placeholder", "PlaceholderWithDefault")]
        ensure_recurrences(graph)
        outputs = [{"name": o, "node": o, "op": graph.nodes[o].op} for o in sink_nodes(graph, _NOT_OUTPUTS)]
    from .tf_loops import ensure_recurrences

    recs = ensure_recurrences(graph)
    stop = {i["node"] for i in inputs if not i.get("default")}
    live = _reachable(graph, [split_ref(o["node"])[0] for o in outputs])
    variables = [n.attr("shared_name").s() if n.attr("shared_name") is not None and n.attr("shared_name").s()
                 else n.name for n in graph.nodes.values() if n.op in ("VariableV2", "VarHandleOp")]
    used_vars = sorted(n.attr("shared_name").s() if n.attr("shared_name") is not None and n.attr("shared_name").s()
                       else n.name for n in (graph.nodes[k] for k in live) if n.op in ("VariableV2", "VarHandleOp"))
    unsupported: dict[str, dict[str, Any]] = {}
    for name in sorted(live):
        op = graph.nodes[name].op
        if name not in stop and op not in HANDLERS:
            entry = unsupported.setdefault(op, {"count": 0, "nodes": []})
            entry["count"] += 1
            if len(entry["nodes"]) < MAX_EXAMPLES:
                entry["nodes"].append(name)
    return {
        "path": str(p),
        "format": fmt,
        "nodes": len(graph.nodes),
        "inputs": inputs,
        "outputs": outputs,
        "ops": dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))),
        "unsupported": dict(sorted(unsupported.items())),
        "recurrences": [{"loop": r.name, "cells": [f"{c.kind}({c.name})" for c in r.layers],
                         "sequence_length": r.seq_len} for r in recs],
        "unrecognised_loops": dict(getattr(graph, "loop_errors", {})),
        **control_flow(graph, [o["node"] for o in outputs]),
        "variables_used": used_vars,
        "variables_ignored": sorted(set(variables) - set(used_vars)),
        "convertible": not unsupported and all(i["shape"] is not None for i in inputs),
    }


def format_graph_report(report: dict[str, Any]) -> str:
    """The text `tf2rt inspect` prints for a graph."""
    def dims(s: Any) -> str:
        return "unknown rank" if s is None else "[" + ", ".join("?" if d is None else str(d) for d in s) + "]"

    out = [f"{report['path']}: {report['format']}, {report['nodes']} nodes", "inputs:"]
    for i in report["inputs"]:
        extra = " (has a default)" if i.get("default") else ""
        node = f"  (node {i['node']})" if i["node"] != i["name"] else ""
        out.append(f"  {i['name']}  {i['dtype']} {dims(i['shape'])}{extra}{node}")
    out.append("candidate outputs:" if report["format"] == "graphdef" else "outputs:")
    for o in report["outputs"]:
        out.append(f"  {o['name']}" + (f"  ({o['op']})" if "op" in o else f"  ({o['node']})"))
    out.append("ops: " + ", ".join(f"{op} {n}" for op, n in report["ops"].items()))
    if report["unsupported"]:
        out.append("unsupported ops (on the path to the outputs):")
        for op, e in report["unsupported"].items():
            more = ", ..." if e["count"] > len(e["nodes"]) else ""
            out.append(f"  {op} x{e['count']}: {', '.join(e['nodes'])}{more}")
    else:
        out.append("unsupported ops: none")
    for r in report.get("recurrences", []):
        seq = f", sequence lengths from {r['sequence_length']}" if r.get("sequence_length") else ""
        out.append(f"recurrent stack {r['loop']}: {' -> '.join(r['cells'])}{seq}")
    for key, what in (("conditionals", "conditionals (ONNX If)"), ("while_loops", "while loops (ONNX Loop)")):
        names = report.get(key) or []
        if names:
            more = ", ..." if len(names) > MAX_EXAMPLES else ""
            out.append(f"{what} x{len(names)}: {', '.join(names[:MAX_EXAMPLES])}{more}")
    for loop, why in report.get("unrecognised_loops", {}).items():
        if not loop.startswith("gradients"):
            out.append(f"loop {loop}: not an RNN tf2rt recognises ({why})")
    if report.get("variables_used") or report.get("variables_ignored"):
        out.append(f"variables: {len(report['variables_used'])} on the path to the outputs, "
                   f"{len(report['variables_ignored'])} ignored (learning rates, step counters, monitors, "
                   "optimizer slots: off the path)")
    shapeless = [i["name"] for i in report["inputs"] if i["shape"] is None]
    if shapeless:
        out.append("inputs of unknown rank (give --input-shape NAME=D0,D1,...): " + ", ".join(shapeless))
    return "\n".join(out) + "\n"

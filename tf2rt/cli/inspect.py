"""`tf2rt inspect PATH`: the tensors of a weight file, its RNN cells, or an engine's model card."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import FormatError
from .jsonout import add_json_option, check_json_target, emit_json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "inspect",
        help="list the tensors and RNN cells of a weight file (or describe an engine)",
        description="List the tensors of a checkpoint, .wts, npz, safetensors or Keras file "
        "(name, dtype, shape, size), the RNN cells recognised in it with their storage "
        "format, and its optimizer slots. For a tf2rt engine (.onnx), print its model card.",
    )
    p.add_argument("path", help="weight file, checkpoint prefix/.index/directory, engine .onnx, or a frozen "
                   ".pb / SavedModel directory (inputs, outputs, op histogram, unsupported ops)")
    add_json_option(p, "the report")
    p.add_argument("--all", action="store_true", help="also list optimizer slots and bookkeeping tensors")
    p.add_argument("--format", help="read as this format instead of detecting it")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path = Path(args.path)
    check_json_target(args, [path])
    if args.format is None and is_engine(path):
        return _engine(path, args)
    from ..importers.graph_inspect import describe_graph, format_graph_report, is_graph_file

    if args.format is None and is_graph_file(path):  # a frozen .pb or a SavedModel: its graph
        graph = describe_graph(path)
        emit_json(args, graph, [path])
        if args.json != "-":
            sys.stdout.write(format_graph_report(graph))
        return 0
    from ..weights.api import open_weights

    try:
        src = open_weights(path, args.format)
    except FormatError:
        if args.format is None and _onnx_kind(path):  # an engine or ONNX model under any name
            return _engine(path, args)
        raise
    with src:
        report = weights_report(src, include_all=args.all)
    if args.json:
        emit_json(args, report, [path])
    if args.json != "-":
        sys.stdout.write(format_report(report))
    return 0


def weights_report(src, include_all: bool = False) -> dict:
    """A JSON-able summary of a weight source: tensors, counts, detected cells."""
    from ..weights.base import OPTIMIZER_SLOT, VARIABLE
    from ..weights.detect import detect_cells

    infos = src.infos()
    counts = {"variables": 0, "optimizer_slots": 0, "bookkeeping": 0}
    rows = []
    for i in infos:
        key = {VARIABLE: "variables", OPTIMIZER_SLOT: "optimizer_slots"}.get(i.kind, "bookkeeping")
        counts[key] += 1
        if include_all or i.kind == VARIABLE:
            row = {"name": i.name, "dtype": str(i.dtype) if isinstance(i.dtype, str) else i.dtype.name,
                   "shape": list(i.shape), "size": i.size, "nbytes": i.nbytes, "kind": i.kind}
            if i.key and i.key != i.name:
                row["key"] = i.key
            rows.append(row)
    cells = detect_cells(src)
    storages = sorted({c.storage for c in cells})
    return {
        "path": str(src.path),
        "format": src.format,
        "counts": counts,
        "variable_bytes": sum(i.nbytes for i in infos if i.kind == VARIABLE),
        "tensors": rows,
        "rnn_cells": [c.to_dict() for c in cells],
        "storage": storages[0] if len(storages) == 1 else ("mixed" if storages else None),
        "cell_summaries": [c.describe() for c in cells],
        "meta_graph": _meta_graph_of(src),
    }


def _meta_graph_of(src) -> str | None:
    """The .meta graph saved next to a TF1 checkpoint (what `convert` reads the model from)."""
    if not str(getattr(src, "format", "")).startswith("tf"):
        return None
    from ..importers.meta_graph import find_meta
    from ..importers.tf1_rnn import checkpoint_prefix

    try:
        meta = find_meta(checkpoint_prefix(src.path))
    except Exception:  # noqa: BLE001 - a hint only; the weights report stands without it
        return None
    return str(meta) if meta is not None else None


def format_report(report: dict) -> str:
    """The human-readable table `tf2rt inspect` prints."""
    c = report["counts"]
    lines = [
        f"{report['path']}: {report['format']}, {c['variables']} variables "
        f"({_human(report['variable_bytes'])}), {c['optimizer_slots']} optimizer slots, "
        f"{c['bookkeeping']} other tensors",
        "",
    ]
    rows = [("name", "dtype", "shape", "size", "bytes")]
    for t in report["tensors"]:
        name = t["name"] + ("" if t["kind"] == "variable" else f"  [{t['kind']}]")
        rows.append((name, t["dtype"], str(tuple(t["shape"])), str(t["size"]), _human(t["nbytes"])))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        lines.append("  ".join(v.ljust(w) if i < 3 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))).rstrip())
    lines.append("")
    if report["rnn_cells"]:
        lines.append(f"RNN cells ({len(report['rnn_cells'])}; storage: {report['storage']}):")
        lines.extend("  " + s for s in report["cell_summaries"])
    else:
        lines.append("RNN cells: none recognised")
    if c["optimizer_slots"] and not any(t["kind"] != "variable" for t in report["tensors"]):
        lines.append(f"Optimizer slots: {c['optimizer_slots']} (not listed; use --all)")
    if report.get("meta_graph"):
        lines.append(f"Graph: {report['meta_graph']} - convert reads the model from it; "
                     f"`tf2rt inspect {report['meta_graph']}` shows its inputs, outputs, recurrent stacks "
                     "and the variables it uses")
    return "\n".join(lines) + "\n"


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def is_engine(path: Path) -> bool:
    """True for an engine file named .onnx/.engine (a tf2rt engine or any ONNX model; checked by content)."""
    if path.suffix.lower() not in (".onnx", ".engine") or not path.is_file():
        return False
    if _onnx_kind(path) is None:
        raise FormatError(f"{path}: not an ONNX model (its bytes are not an ONNX ModelProto); "
                          "check the path, or pass --format for a weight file")
    return True


def _onnx_kind(path: Path) -> str | None:
    from ..engine.sniff import onnx_kind

    return onnx_kind(path)


def _engine(path: Path, args: argparse.Namespace) -> int:
    from ..engine import describe

    card = describe(path)
    if args.json:
        emit_json(args, card, [path])
    if args.json != "-":
        sys.stdout.write("\n".join(engine_lines(path, card)) + "\n")
    return 0


def engine_lines(path: Path, card: dict) -> list[str]:
    """A readable view of `tf2rt.engine.describe()`: model card, tensors, states, ops."""
    from ..importers.card import card_lines

    card = dict(card)
    head = ", ".join(f"{k} {card.pop(k)}" for k in ("precision", "opset") if k in card)
    if card.pop("foreign", False):
        producer = card.pop("producer", None)
        out = [f"{path}: foreign ONNX model, not built by tf2rt ({head}; graph {card.pop('network', '?')!r}"
               + (f", produced by {producer}" if producer else "") + "); inputs and outputs read from its graph"]
        card.pop("tf2rt_version", None)
    else:
        card.pop("producer", None)
        out = [f"{path}: tf2rt engine ({head}; network {card.pop('network', '?')!r}, "
               f"built by tf2rt {card.pop('tf2rt_version', '?')})"]
    for key in ("format", "version"):
        card.pop(key, None)
    model = card.pop("model", None)
    if model:
        out += card_lines(model)
        shown = {"summary", "source", "format", "settings", "streaming_state", "ignored_tensors", "assumptions"}
        if model.get("summary"):
            shown.add("detected")  # the summary says it in one line; --json has the details
        out += [f"model {k}: {v}" for k, v in model.items() if k not in shown and v not in (None, "", [], {})]
    elif card.get("source") is not None:
        out.append(f"source: {card.pop('source')}")
    card.pop("source", None)
    optional = {s["input"] for s in card.get("states", []) if s.get("optional", True)}
    for key in ("inputs", "outputs"):
        specs = card.pop(key, [])
        out.append(f"{key}:")
        width = max((len(s["name"]) for s in specs), default=0)
        for spec in specs:
            dims = ", ".join("?" if d is None else str(d) for d in spec.get("shape") or [])
            note = "  optional (zeros)" if key == "inputs" and spec["name"] in optional else ""
            out.append(f"  {spec['name']:<{width}}  {spec.get('dtype', '?'):<8} [{dims}]{note}".rstrip())
    states = card.pop("states", [])
    if states:
        out.append("states (feed each output back to its input to stream; optional inputs default to zeros): "
                   + ", ".join(f"{s['output']} -> {s['input']}" + (" (optional)" if s.get("optional", True) else "")
                               for s in states))
    ops = card.pop("ops", {})
    if ops:
        out.append(f"ops ({card.pop('nodes', sum(ops.values()))} nodes): "
                   + ", ".join(f"{op} {n}" for op, n in sorted(ops.items())))
    for key, value in card.items():  # anything else describe() reports
        if isinstance(value, dict) and value:
            out.append(f"{key}: " + ", ".join(f"{k}={v}" for k, v in value.items()))
        elif isinstance(value, list) and value:
            out.append(f"{key}: " + ", ".join(str(v) for v in value))
        elif value not in (None, "", [], {}):
            out.append(f"{key}: {value}")
    return out

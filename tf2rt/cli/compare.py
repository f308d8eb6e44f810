"""`tf2rt compare ENGINE --backends onnxruntime,reference`: run on several backends, report differences."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .argtypes import nonneg_finite_float, nonneg_int, positive_int
from .jsonout import add_json_option, check_json_target, emit_json, report_stream

# --against KIND: what computes the reference outputs from the original model
AGAINST_KINDS = {"tf": "the original TensorFlow/Keras model run by TensorFlow"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compare", help="compare an engine's outputs across backends",
        description="Run the engine on each backend (random inputs unless --inputs is given) and "
                    "compare every output with the first backend's: max abs / rel error and the "
                    "smallest atol and rtol that would have passed. Optional state inputs left out "
                    "of --inputs are zeros. Exit status 1 on a mismatch, 2 on an error.")
    p.add_argument("engine", help="engine file")
    p.add_argument("--backends", default="onnxruntime,reference",
                   help="comma-separated; the first is the reference (default: onnxruntime,reference)")
    p.add_argument("--against", metavar="KIND:PATH",
                   help="compare with outputs computed from the original model instead, e.g. tf:CKPT")
    p.add_argument("--inputs", help=".npz with inputs keyed by tensor name (default: random)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of the random inputs")
    p.add_argument("--batch", type=positive_int, default=None,
                   help="size of a dynamic first dimension in random inputs")
    p.add_argument("--atol", type=nonneg_finite_float, default=1e-5,
                   help="absolute tolerance: pass when |a - b| <= atol + rtol * |reference| (default 1e-5)")
    p.add_argument("--rtol", type=nonneg_finite_float, default=1e-5, help="relative tolerance (default 1e-5)")
    add_json_option(p, "the comparison (per output: max_abs, max_rel, min_atol, min_rtol, passed)")
    p.add_argument("--trust-model", action="store_true",
                   help="--against: let TensorFlow/Keras run code the model file carries (Lambda layers, "
                        "py_func ops); only for models from a source you trust")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine import compare_outputs, format_comparison, load_engine
    from ..engine.inputs import check_names, load_npz, random_inputs
    from ..errors import Tf2rtError
    from ..outputs import input_files

    inputs = {args.engine, *([args.inputs] if args.inputs else [])}
    if args.against:
        inputs |= input_files(args.against.partition(":")[2] or args.against)
    check_json_target(args, inputs)  # refuse a bad output path (or an input) before running anything
    engine = load_engine(args.engine)
    fixed = _model_input_shapes(args.against) if args.against and not args.inputs else None
    feeds = load_npz(args.inputs) if args.inputs else random_inputs(engine, args.seed, args.batch, fixed)
    if args.against and not args.inputs:
        # the original model starts from zero state: random streaming states have no counterpart
        for state in engine.metadata.get("states", []):
            if state.get("optional", True):
                feeds.pop(state["input"], None)  # zeros, with the batch size of the other inputs
            else:
                feeds[state["input"]] = np.zeros_like(feeds[state["input"]])
    check_names(engine, feeds)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if args.against:
        ref_label = args.against
        reference = against_outputs(args.against, engine, feeds, trust_model=args.trust_model)
    else:
        if len(backends) < 2:
            raise Tf2rtError("--backends needs at least two backends (or use --against)")
        ref_label = backends.pop(0)
        reference = engine.run(feeds, backend=ref_label)
    ok = True
    out = report_stream(args)
    report = {"engine": args.engine, "reference": ref_label, "atol": args.atol, "rtol": args.rtol, "results": {}}
    for b in backends:
        rows = compare_outputs(reference, engine.run(feeds, backend=b), args.atol, args.rtol)
        ok &= all(r.passed for r in rows)
        print(format_comparison(rows, ref_label, b), file=out)
        report["results"][b] = [r.to_json() for r in rows]
    report["passed"] = ok
    emit_json(args, report, inputs)
    print("OK: all outputs match" if ok else f"MISMATCH (atol={args.atol}, rtol={args.rtol})", file=out)
    return 0 if ok else 1


def _model_input_shapes(spec: str) -> dict[str, Any] | None:
    """The input sizes a TF graph fixes (a training graph's [batch, seq] placeholders), read
    without TensorFlow; None when there is no graph to read."""
    from ..errors import Tf2rtError
    from ..importers.graph_inspect import describe_graph, is_graph_file
    from ..importers.meta_graph import find_meta

    kind, _, path = spec.partition(":")
    p = Path(path)
    if kind != "tf":
        return None
    if not is_graph_file(p):
        from ..importers.tf1_rnn import checkpoint_prefix

        meta = find_meta(checkpoint_prefix(p)) if p.suffix.lower() not in (".keras", ".h5", ".hdf5") else None
        if meta is None:
            return None
        p = meta
    try:
        report = describe_graph(p)
    except Tf2rtError:
        return None
    return {i["name"]: i["shape"] for i in report["inputs"] if i.get("shape") is not None}


def against_outputs(spec: str, engine: Any, feeds: Mapping[str, Any], trust_model: bool = False) -> dict[str, Any]:
    """Reference outputs from the original model named by `spec` ("KIND:PATH"); the model may run
    code it carries (Keras Lambda layers, py_func ops) only with `trust_model`."""
    from ..errors import Tf2rtError

    kind, sep, path = spec.partition(":")
    if not sep or not path:
        raise Tf2rtError(f"--against takes KIND:PATH (e.g. tf:model.ckpt), got {spec!r}")
    if kind not in AGAINST_KINDS:
        raise Tf2rtError(f"unknown --against kind {kind!r}; known: {', '.join(AGAINST_KINDS)}")
    from ..importers.oracle import tf_outputs

    return tf_outputs(path, engine, feeds, trust_model=trust_model)

"""`tf2rt compare ENGINE --backends onnxruntime,reference`: run on several backends, report differences."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from .argtypes import nonneg_finite_float, nonneg_int, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compare", help="compare an engine's outputs across backends",
        description="Run the engine on each backend (random inputs unless --inputs is given) and "
                    "compare every output with the first backend's: max abs / rel error and the "
                    "smallest atol that would have passed. Exit status 1 on a mismatch.")
    p.add_argument("engine", help="engine file")
    p.add_argument("--backends", default="onnxruntime,reference",
                   help="comma-separated; the first is the reference (default: onnxruntime,reference)")
    p.add_argument("--against", metavar="KIND:PATH",
                   help="compare with outputs computed from the original model instead, e.g. tf:CKPT")
    p.add_argument("--inputs", help=".npz with inputs keyed by tensor name (default: random)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of the random inputs")
    p.add_argument("--batch", type=positive_int, default=None,
                   help="size of a dynamic first dimension in random inputs")
    p.add_argument("--atol", type=nonneg_finite_float, default=1e-5)
    p.add_argument("--rtol", type=nonneg_finite_float, default=1e-5)
    p.add_argument("--json", metavar="OUT", help="also write the comparison as JSON")
    p.add_argument("--trust-model", action="store_true",
                   help="--against: let TensorFlow/Keras run code the model file carries (Lambda layers, "
                        "py_func ops); only for models from a source you trust")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine import compare_outputs, format_comparison, load_engine
    from ..engine.compare import against_outputs
    from ..engine.inputs import check_names, load_npz, random_inputs
    from ..errors import Tf2rtError

    from ..outputs import check_not_input, check_writable, input_files

    inputs = {args.engine, *([args.inputs] if args.inputs else [])}
    if args.against:
        inputs |= input_files(args.against.partition(":")[2] or args.against)
    if args.json:  # refuse a bad output path (or an input) before running anything
        check_not_input(check_writable(args.json, "--json"), inputs, "--json")
    engine = load_engine(args.engine)
    feeds = load_npz(args.inputs) if args.inputs else random_inputs(engine, args.seed, args.batch)
    if args.against and not args.inputs:
        # the original model starts from zero state: random streaming states have no counterpart
        for state in engine.metadata.get("states", []):
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
    report = {"engine": args.engine, "reference": ref_label, "atol": args.atol, "rtol": args.rtol, "results": {}}
    for b in backends:
        rows = compare_outputs(reference, engine.run(feeds, backend=b), args.atol, args.rtol)
        ok &= all(r.passed for r in rows)
        print(format_comparison(rows, ref_label, b))
        report["results"][b] = [r.to_json() for r in rows]
    report["passed"] = ok
    if args.json:
        from ..outputs import write_text

        write_text(args.json, json.dumps(report, indent=2), inputs, "--json")
    print("OK: all outputs match" if ok else f"MISMATCH (atol={args.atol}, rtol={args.rtol})", file=sys.stdout)
    return 0 if ok else 1

"""`tf2rt run ENGINE --inputs in.npz --outputs out.npz`: run an engine on arrays from a file."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run", help="run an engine on inputs from an .npz file",
        description="Run a tf2rt engine. Inputs and outputs are .npz files keyed by tensor name "
                    "(numpy.savez(path, **{name: array})).")
    p.add_argument("engine", help="engine file (.onnx written by tf2rt)")
    p.add_argument("--inputs", required=True, help=".npz with one array per engine input")
    p.add_argument("--outputs", help=".npz to write the outputs to (default: print a summary only)")
    p.add_argument("--backend", default="onnxruntime", help="onnxruntime (default), reference, cuda")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine import load_engine
    from ..engine.inputs import check_names, load_npz, save_npz

    from ..outputs import check_not_input, check_writable

    inputs = [args.engine, args.inputs]
    if args.outputs:  # refuse a bad output path (or an input) before running anything
        check_not_input(check_writable(args.outputs, "--outputs"), inputs, "--outputs")
    engine = load_engine(args.engine)
    feeds = load_npz(args.inputs)
    check_names(engine, feeds)
    outputs = engine.run(feeds, backend=args.backend)
    if args.outputs:
        save_npz(args.outputs, outputs, inputs)
    for name, arr in outputs.items():
        print(f"{name}: {arr.dtype}{list(arr.shape)}", file=sys.stdout)
    return 0

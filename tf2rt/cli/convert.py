"""`tf2rt convert SRC -o ENGINE`: a trained TensorFlow model -> engine file."""

from __future__ import annotations

import argparse

from .jsonout import add_json_option, check_json_target, emit_json, report_stream


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "convert",
        help="convert a TF checkpoint, SavedModel, frozen .pb or Keras file to an engine",
        description="Recognise a TensorFlow model (recurrent: TF1 checkpoint + .meta, TF2 checkpoint or "
        "SavedModel of a Keras model, .keras/.h5 file; feed-forward: .keras/.h5, SavedModel, frozen .pb) "
        "and build an engine (.onnx with tf2rt metadata). "
        "Settings the source does not store are read from the .meta graph or Keras config; otherwise "
        "the flags below set them, or the TensorFlow default is used and the assumption is printed.",
    )
    p.add_argument("src", help="checkpoint prefix/.index/.meta/directory, SavedModel directory, .keras/.h5 file or frozen .pb")
    p.add_argument("-o", "--output", required=True, help="engine file to write (.onnx)")
    p.add_argument("--precision", choices=["fp32", "fp16"], default="fp32", help="engine precision (default fp32)")
    p.add_argument("--forget-bias", type=float, default=None,
                   help="forget_bias of TF1 LSTM cells (default: from the .meta graph, else 1.0)")
    p.add_argument("--activation", choices=["tanh", "relu", "sigmoid"], default=None,
                   help="activation of TF1 cells (default: from the .meta graph, else tanh)")
    p.add_argument("--reset-after", choices=["true", "false"], default=None,
                   help="Keras GRU reset_after when the source has no config (TF2 checkpoints)")
    p.add_argument("--keras-version", type=int, choices=[2, 3], default=None,
                   help="Keras major version for hard_sigmoid semantics when the file does not say")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--meta", default=None, help="read this .meta graph instead of the one next to the checkpoint")
    g.add_argument("--no-meta", action="store_true", help="ignore the checkpoint's .meta graph")
    s = p.add_mutually_exclusive_group()
    s.add_argument("--states", dest="states", action="store_true", default=None,
                   help="expose initial/final recurrent states as inputs/outputs (streaming)")
    s.add_argument("--no-states", dest="states", action="store_false", help="no state inputs/outputs")
    p.add_argument("--no-optimize", action="store_true", help="skip engine graph optimizations")
    p.add_argument("--ignore", nargs="+", default=None, metavar="NAME",
                   help="TF1 checkpoints read without a graph: leave these variables out (others that no cell, "
                        "embedding or head uses are left out with a warning)")
    p.add_argument("--architecture", default=None, metavar="JSON",
                   help="Keras model config (model.to_json() saved as a .json file) for a weights-only "
                   ".h5 / .weights.h5 file written by save_weights")
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME=D0,D1,...",
                   help="shape of an input (-1 or ? for a dynamic dim); repeatable; needed for placeholders "
                   "of unknown rank (.pb / SavedModel)")
    p.add_argument("--inputs", default=None, metavar="NAME,...",
                   help="graph inputs: convert from these nodes on (.pb / SavedModel; default: the placeholders)")
    p.add_argument("--outputs", default=None, metavar="NAME,...",
                   help="graph outputs: convert up to these nodes, e.g. a detector's box and class heads "
                   "without its decoder (.pb / SavedModel)")
    add_json_option(p, "the model card, inputs and outputs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging

    from ..importers import convert
    from ..importers.card import card_lines

    logging.getLogger("tf2rt.convert").setLevel(logging.ERROR)  # assumptions are printed below
    check_json_target(args, [args.src, args.output])
    meta = False if args.no_meta else (args.meta if args.meta else True)
    reset_after = None if args.reset_after is None else args.reset_after == "true"
    engine = convert(
        args.src, args.output, precision=args.precision, optimize=not args.no_optimize, meta=meta,
        forget_bias=args.forget_bias, activation=args.activation, states=args.states,
        reset_after=reset_after, keras_version=args.keras_version, architecture=args.architecture,
        ignore=args.ignore, **_graph_options(args),
    )
    card = engine.metadata.get("model") or {}
    emit_json(args, {"engine": str(args.output), "precision": engine.precision, "model": card,
                     "inputs": [s.to_json() for s in engine.inputs], "outputs": [s.to_json() for s in engine.outputs],
                     "states": engine.metadata.get("states", [])}, [args.src])
    out = report_stream(args)
    for line in card_lines(card):
        print(line, file=out)
    print("inputs:  " + ", ".join(f"{s.name} {s.dtype}{_shape(s.shape)}" for s in engine.inputs), file=out)
    print("outputs: " + ", ".join(f"{s.name} {s.dtype}{_shape(s.shape)}" for s in engine.outputs), file=out)
    print(f"wrote {args.output} ({engine.precision})", file=out)
    return 0


def _graph_options(args: argparse.Namespace) -> dict:
    """--inputs/--outputs/--input-shape as keyword arguments of tf2rt.convert (only those given)."""
    from ..importers.graph_problems import parse_shape_arg

    opts: dict = {}
    for key in ("inputs", "outputs"):
        value = getattr(args, key, None)
        if value:
            opts[key] = [n.strip() for n in value.split(",") if n.strip()]
    if getattr(args, "input_shape", None):
        opts["input_shapes"] = dict(parse_shape_arg(s) for s in args.input_shape)
    return opts


def _shape(shape: object) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"  # type: ignore[union-attr]

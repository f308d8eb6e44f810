"""`tf2rt dump PATH -o OUT`: convert weights to .wts (v1/v2), npz or safetensors."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "dump",
        help="write the weights of a checkpoint/weight file as .wts, .wts2, npz or safetensors",
        description="Dump model weights (what TensorRT's dumpTFWts.py does, without TensorFlow). "
        "The output format comes from --format or OUT's suffix (.wts = v1 hex text, .wts2 = v2 "
        "binary, .npz, .safetensors). Optimizer slots are left out unless --include-optimizer.",
    )
    p.add_argument("path", help="weight file, checkpoint prefix/.index/directory")
    p.add_argument("-o", "--output", required=True, help="output file")
    p.add_argument("--format", choices=["wts", "wts2", "npz", "safetensors"], help="output format")
    p.add_argument("--names", nargs="+", metavar="NAME", help="dump only these tensors")
    p.add_argument("--exclude", nargs="+", metavar="NAME", default=[], help="leave these tensors out")
    p.add_argument("--keep-names", action="store_true", help="keep '/' in .wts names (default: '/' -> '_')")
    p.add_argument("--include-optimizer", action="store_true", help="also dump optimizer slots")
    p.add_argument("--convert", action="store_true",
                   help=".wts2: store dtypes TensorRT lacks as float32 (floating) or int32 (integer/bool)")
    p.add_argument("--input-format", help="read PATH as this format instead of detecting it")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..weights.api import dump_weights, open_weights

    with open_weights(args.path, args.input_format) as src:
        out = dump_weights(src, args.output, format=args.format, names=args.names,
                           include_optimizer=args.include_optimizer, keep_names=args.keep_names,
                           convert=args.convert, exclude=args.exclude)
    from ..progress import info

    info(f"wrote {out}")
    return 0

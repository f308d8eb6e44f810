"""The `tf2rt` command line: a thin shell over the Python API.

Each sub-command lives in its own module `tf2rt.cli.<name>` exposing
`register(subparsers) -> None`, which adds its parser and sets `func(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Sub-command modules, in the order `tf2rt --help` lists them.
COMMANDS: list[str] = [
    "inspect",
    "dump",
    "convert",
    "charrnn",
    "demo",
    "run",
    "compare",
    "bench",
    "faces",
    "classify",
]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="tf2rt",
        description="TensorFlow models to fast inference engines, without TensorFlow at run time.",
    )
    parser.add_argument("--version", action="version", version=f"tf2rt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ..errors import Tf2rtError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except Tf2rtError as exc:
        print(f"tf2rt {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `tf2rt inspect ... | head`
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

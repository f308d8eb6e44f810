"""One JSON convention for every command: `--json` prints JSON to stdout, `--json FILE` writes FILE.

Keys are identifiers (snake_case). When the JSON goes to stdout, the human-readable report
goes to stderr instead, so `tf2rt CMD --json | jq` always reads clean JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Iterable, TextIO

STDOUT = "-"


def add_json_option(parser: argparse.ArgumentParser, what: str) -> None:
    """Add `--json [FILE]` to a sub-command; `what` says what the JSON holds."""
    parser.add_argument("--json", nargs="?", const=STDOUT, default=None, metavar="FILE",
                        help=f"{what} as JSON: to stdout with --json alone (the table then goes to stderr), "
                             "or to FILE")


def json_to_stdout(args: argparse.Namespace) -> bool:
    return getattr(args, "json", None) == STDOUT


def report_stream(args: argparse.Namespace) -> TextIO:
    """Where the human-readable report goes: stderr when stdout carries the JSON (nowhere with -q)."""
    if not json_to_stdout(args):
        return sys.stdout
    from ..progress import verbosity

    return sys.stderr if verbosity() >= 0 else _Null()


class _Null:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def check_json_target(args: argparse.Namespace, inputs: Iterable[Any] = ()) -> None:
    """Refuse an unwritable --json FILE (or one that is an input) before any work is done."""
    target = getattr(args, "json", None)
    if target and target != STDOUT:
        from ..outputs import check_not_input, check_writable

        check_not_input(check_writable(target, "--json"), list(inputs), "--json")


def emit_json(args: argparse.Namespace, data: Any, inputs: Iterable[Any] = ()) -> None:
    """Write `data` where --json says (nothing when --json was not given)."""
    target = getattr(args, "json", None)
    if not target:
        return
    text = json.dumps(data, indent=2, default=_default)
    if target == STDOUT:
        sys.stdout.write(text + "\n")
        return
    from ..outputs import write_text

    write_text(target, text + "\n", list(inputs), "--json")


def _default(value: Any) -> Any:
    """numpy scalars and arrays, paths and other objects as plain JSON values."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


__all__ = ["STDOUT", "add_json_option", "check_json_target", "emit_json", "json_to_stdout", "report_stream"]

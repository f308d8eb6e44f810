"""The `tf2rt` command line: a thin shell over the Python API.

Each sub-command lives in its own module `tf2rt.cli.<name>` exposing
`register(subparsers) -> None`, which adds its parser and sets `func(args) -> int`.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
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


EPILOG = """\
exit status:
  0  success
  1  mismatch (compare: an output outside the tolerances; demo: text differs from TensorFlow's)
  2  error (a one-line message on stderr says what is wrong and what to do)

output: results go to stdout; progress and info lines go to stderr (-q hides them, -v adds
detail). Commands with --json print JSON to stdout with --json alone, or write it to FILE
with --json FILE.
"""


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="tf2rt",
        description="TensorFlow models to fast inference engines, without TensorFlow at run time.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tf2rt {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more detail on stderr (assumptions, settings); repeat for debug logging")
    parser.add_argument("-q", "--quiet", action="count", default=0,
                        help="no progress or info lines on stderr (errors are still printed)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ..errors import Tf2rtError

    _guard_streams()
    parser = build_parser()
    args = parser.parse_args(argv)
    _set_verbosity(args.verbose - args.quiet)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a full or closed stdout fails here, not at interpreter exit
        return code
    except Tf2rtError as exc:
        return _fail(args.command, str(exc))
    except BrokenPipeError:  # e.g. `tf2rt inspect ... | head`
        _settle_stdout()
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    # Last line of defence: the system said no (a file, memory, nesting); one line, not a traceback.
    except OSError as exc:
        return _fail(args.command, _os_message(exc), exc)
    except MemoryError as exc:
        return _fail(args.command, "out of memory; the input is too large for this machine "
                     "(or damaged); lower TF2RT_MAX_BYTES to refuse such inputs early", exc)
    except RecursionError as exc:
        return _fail(args.command, "the input is nested too deeply to process; the file is damaged or hostile", exc)
    except Exception:
        print(f"tf2rt {args.command}: internal error (a bug in tf2rt; please report it with the command "
              "line and the traceback below)", file=sys.stderr)
        raise


def _set_verbosity(level: int) -> None:
    """-q (< 0): no progress or info lines; -v (> 0): tf2rt's INFO log lines; -vv: DEBUG."""
    import logging

    from ..progress import set_verbosity

    set_verbosity(level)
    logger = logging.getLogger("tf2rt")
    if level > 0 and not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if level > 1 else logging.INFO if level == 1 else
                    logging.WARNING if level == 0 else logging.ERROR)


def _fail(command: str, message: str, exc: BaseException | None = None) -> int:
    import os

    if exc is not None and os.environ.get("TF2RT_DEBUG"):
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    if sys.stderr is not None:
        try:
            print(f"tf2rt {command}: error: {' '.join(message.split())}", file=sys.stderr)
        except OSError:
            pass
    _settle_stdout()
    return 2


def _os_message(exc: OSError) -> str:
    what = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is not None:
        name = os.fsdecode(exc.filename) if isinstance(exc.filename, bytes) else str(exc.filename)
        if len(name) > 200:
            name = name[:100] + "..." + name[-60:]
        return f"{what}: {name!r}"
    return f"cannot write to standard output or read input: {what}"


class _ClosedStream:
    """Stands in for a standard stream the process was started without: writing fails cleanly."""

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "standard output is closed")

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        raise OSError(errno.EBADF, "standard output is closed")


def _guard_streams() -> None:
    """Ignore SIGXFSZ (a file-size limit makes writes fail with EFBIG instead of killing the
    process, so partial outputs are cleaned up) and stand in for a closed stdout."""
    import signal
    import threading

    if hasattr(signal, "SIGXFSZ") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    if sys.stdout is None:
        sys.stdout = _ClosedStream()  # type: ignore[assignment]


def _settle_stdout() -> None:
    """If stdout itself is what failed (full, closed, broken pipe), point it at /dev/null so the
    exit-time flush cannot fail again; a working stdout is left alone."""
    try:
        sys.stdout.flush()
        return
    except (OSError, ValueError, AttributeError):
        pass
    try:
        fd = sys.stdout.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    except (OSError, AttributeError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())

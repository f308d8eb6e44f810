"""A small progress bar on stderr for long reads, writes and dataset loops.

Drawn only when stderr is a terminal (or when forced), so logs and tests stay clean.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")

_VERBOSITY = [0]  # < 0: quiet (no progress bars or info lines); > 0: verbose


def set_verbosity(level: int) -> None:
    """The command line's -q/-v: below 0 hides progress bars and info lines on stderr."""
    _VERBOSITY[0] = int(level)


def verbosity() -> int:
    return _VERBOSITY[0]


def info(text: str) -> None:
    """An info line on stderr (e.g. "wrote model.wts"), unless quiet."""
    if _VERBOSITY[0] >= 0:
        print(text, file=sys.stderr, flush=True)


class Progress:
    """Counts work done out of a known total and redraws at most ~10 times a second."""

    def __init__(self, total: float, desc: str = "", unit: str = "", enabled: bool | None = None):
        self.total = max(float(total), 0.0)
        self.desc = desc
        self.unit = unit
        self.done = 0.0
        if enabled is None:
            enabled = sys.stderr.isatty() and not os.environ.get("TF2RT_NO_PROGRESS") and _VERBOSITY[0] >= 0
        self.enabled = enabled
        self._start = time.perf_counter()
        self._last = 0.0

    def update(self, amount: float = 1) -> None:
        self.done += amount
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last >= 0.1 or self.done >= self.total:
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        frac = self.done / self.total if self.total else 1.0
        width = 28
        filled = int(width * min(frac, 1.0))
        elapsed = now - self._start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        sys.stderr.write(
            f"\r{self.desc} [{'#' * filled}{'.' * (width - filled)}] {frac * 100:5.1f}% "
            f"{_human(self.done)}/{_human(self.total)}{self.unit} {_human(rate)}{self.unit}/s "
        )
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(time.perf_counter())
            sys.stderr.write("\n")
            sys.stderr.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(items: Iterable[T], total: int | None = None, desc: str = "") -> Iterator[T]:
    """Iterate over `items`, showing a progress bar when stderr is a terminal."""
    if total is None:
        total = len(items) if hasattr(items, "__len__") else 0  # type: ignore[arg-type]
    with Progress(total, desc) as bar:
        for item in items:
            yield item
            bar.update(1)


def _human(x: float) -> str:
    for unit in ("", "k", "M", "G", "T"):
        if abs(x) < 1000:
            return f"{x:.0f}{unit}" if unit == "" else f"{x:.1f}{unit}"
        x /= 1000.0
    return f"{x:.1f}P"

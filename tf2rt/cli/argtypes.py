"""argparse `type=` functions shared by the sub-commands: bad option values are refused by
the parser, with a message naming the value and what is allowed, before anything runs."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Callable

MAX_LENGTH = 10_000_000  # characters one `charrnn` run may generate

# Extensions OpenCV's imwrite can always encode (it picks the encoder from the suffix).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".dib", ".tif", ".tiff", ".webp",
                  ".pbm", ".pgm", ".ppm", ".pnm", ".pxm", ".sr", ".ras")
PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".svgz", ".eps", ".ps", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def int_range(low: int, high: int | None = None) -> Callable[[str], int]:
    """An integer in [low, high] (no upper bound when high is None)."""
    def parse(text: str) -> int:
        value = _int(text)
        if value < low or (high is not None and value > high):
            allowed = f"at least {low}" if high is None else f"between {low} and {high}"
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text}")
        return value

    parse.__name__ = "integer"
    return parse


positive_int = int_range(1)
nonneg_int = int_range(0)
positive_int.__name__ = "positive integer"
nonneg_int.__name__ = "non-negative integer"


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def finite_float(text: str) -> float:
    return _float(text)


def nonneg_finite_float(text: str) -> float:
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def positive_finite_float(text: str) -> float:
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def image_path(text: str) -> str:
    """An output image path whose suffix OpenCV can encode."""
    if Path(text).suffix.lower() not in IMAGE_SUFFIXES:
        raise argparse.ArgumentTypeError(f"cannot write an image as {text!r}: use one of "
                                         f"{', '.join(IMAGE_SUFFIXES[:6])}, ...")
    return text


def png_path(text: str) -> str:
    """An output plot path (matplotlib, formats it always has)."""
    if Path(text).suffix.lower() not in PLOT_SUFFIXES:
        raise argparse.ArgumentTypeError(f"cannot write a plot as {text!r}: use .png, .pdf, .svg or .jpg")
    return text

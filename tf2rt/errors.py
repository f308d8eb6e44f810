"""Errors raised by tf2rt.

Every error says what is wrong and what to do about it; callers (the CLI, scripts) can
catch `Tf2rtError` and print the message without a traceback.
"""

from __future__ import annotations


class Tf2rtError(Exception):
    """Base class of every error tf2rt raises on purpose."""


class FormatError(Tf2rtError):
    """A file is not in the format it claims, or is truncated or corrupted."""


class ChecksumError(FormatError):
    """A stored CRC does not match the bytes read."""


class MissingTensorError(Tf2rtError, KeyError):
    """A requested tensor name is not in the source; the message lists close matches."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class UnsupportedError(Tf2rtError):
    """The input is valid but uses something tf2rt cannot express (yet)."""


class ShapeError(Tf2rtError):
    """Shapes or dtypes do not fit together; the message names the layer or tensor."""

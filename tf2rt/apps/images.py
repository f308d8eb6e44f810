"""One image loader for the apps (classify, faces): RGB uint8 [H, W, 3], with a decompression-bomb guard.

A small compressed file can claim a huge image; the size in the header is checked (with
Pillow, without decoding) against `max_pixels` before any pixel is decoded. Decoding uses
Pillow or OpenCV, in the order the caller prefers (faces: OpenCV, whose JPEG decoder the
mtcnn package uses too; classify: Pillow).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import FormatError

# Decoded size cap: a small compressed file can claim a huge image ("decompression bomb").
MAX_PIXELS = 100_000_000
DECODERS = ("pil", "cv2")


def claimed_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) from the file header without decoding, when Pillow is installed."""
    try:
        from PIL import Image
    except ImportError:
        return None
    try:
        with warnings.catch_warnings():  # Pillow warns above ~89 Mpx; our own limit decides
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                return im.size
    except Image.DecompressionBombError as exc:  # Pillow's own cap, lower than ours
        raise FormatError(f"image {path} is too large to decode safely ({exc})") from None
    except Exception:  # noqa: BLE001 - not an image Pillow knows; the decoder gets to say so
        return None


def _decoder(prefer: Sequence[str], extra: str) -> str:
    import importlib.util

    for name in prefer:
        if name not in DECODERS:
            raise ValueError(f"unknown image decoder {name!r}; use {', '.join(DECODERS)}")
        if importlib.util.find_spec("PIL" if name == "pil" else "cv2") is not None:
            return name
    from .._optional import MissingDependencyError

    raise MissingDependencyError(f"decoding images needs Pillow or OpenCV, neither is installed: "
                                 f"pip install 'tf2rt[{extra}]'")


def load_image(path: str | Path, max_pixels: int = MAX_PIXELS, prefer: Sequence[str] = DECODERS,
               extra: str = "classify") -> np.ndarray:
    """An image file as RGB uint8 [H, W, 3]; refuses images that claim more than max_pixels pixels.

    prefer: decoders to try in order ("pil", "cv2"); extra: the pip extra named when none is installed.
    """
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"image {path} not found (no such file)")
    size = claimed_size(path)
    if size is not None and size[0] * size[1] > max_pixels:
        raise FormatError(f"image {path} claims {size[0]}x{size[1]} pixels, over the {max_pixels} pixel limit; "
                          "shrink it first or pass max_pixels=")
    if _decoder(prefer, extra) == "cv2":
        import cv2

        data = np.fromfile(str(path), dtype=np.uint8)
        try:
            img = cv2.imdecode(data, cv2.IMREAD_COLOR)
        except cv2.error as exc:  # e.g. OpenCV's own size limit
            raise FormatError(f"cannot decode image {path}: {str(exc).strip().splitlines()[-1]}") from None
        if img is None:
            raise FormatError(f"cannot decode image {path}; expected a JPEG/PNG/BMP/... file")
        return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.ascontiguousarray(np.asarray(im.convert("RGB")))
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bad files
        raise FormatError(f"cannot decode image {path} ({exc}); expected a JPEG/PNG/BMP/... file") from None


__all__ = ["MAX_PIXELS", "claimed_size", "load_image"]

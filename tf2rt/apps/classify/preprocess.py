"""Image loading and the usual classification preprocessing schemes.

vgg and inception are the two schemes of the TF-slim models (RGB minus the ImageNet means;
2*(x/255 - 0.5)); caffe (BGR minus means) and torch (x/255 standardised) are those of
keras.applications' `preprocess_input`; none passes raw 0..255 RGB pixels (models that
rescale inside, e.g. EfficientNet, MobileNetV3).
Images are resized straight to the model's input size (no crop), as the TF-slim tools do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ...errors import FormatError, Tf2rtError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
VGG_MEANS_RGB = np.array([123.68, 116.78, 103.94], np.float32)
CAFFE_MEANS_BGR = np.array([103.939, 116.779, 123.68], np.float32)
TORCH_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
TORCH_STD = np.array([0.229, 0.224, 0.225], np.float32)


def _vgg(x: np.ndarray) -> np.ndarray:
    return x - VGG_MEANS_RGB


def _inception(x: np.ndarray) -> np.ndarray:
    return 2.0 * (x / 255.0 - 0.5)


def _caffe(x: np.ndarray) -> np.ndarray:
    return x[..., ::-1] - CAFFE_MEANS_BGR


def _torch(x: np.ndarray) -> np.ndarray:
    return (x / 255.0 - TORCH_MEAN) / TORCH_STD


PREPROCESSING = {"vgg": _vgg, "inception": _inception, "caffe": _caffe, "torch": _torch, "none": lambda x: x}


def preprocess(images: np.ndarray, scheme: str) -> np.ndarray:
    """RGB pixels (0..255, [..., H, W, 3]) -> float32 model input for `scheme`."""
    if scheme not in PREPROCESSING:
        raise Tf2rtError(f"unknown preprocessing {scheme!r}; use one of {', '.join(PREPROCESSING)}")
    x = np.asarray(images, dtype=np.float32)
    if x.shape[-1] != 3:
        raise Tf2rtError(f"expected RGB images [..., H, W, 3], got shape {x.shape}")
    return np.ascontiguousarray(PREPROCESSING[scheme](x), dtype=np.float32)


def load_image(path: str | Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """An image file as RGB uint8 [H, W, 3] (Pillow first, else OpenCV; decompression bombs refused),
    resized to size=(H, W) if given (bilinear)."""
    from ..images import load_image as read_image

    rgb = read_image(path, prefer=("pil", "cv2"), extra="classify")
    if size is not None and tuple(rgb.shape[:2]) != tuple(size):
        rgb = resize(rgb, size)
    return np.ascontiguousarray(rgb)


def resize(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of an [H, W, 3] uint8 image to size=(H, W)."""
    try:
        import cv2

        return cv2.resize(rgb, (int(size[1]), int(size[0])), interpolation=cv2.INTER_LINEAR)
    except ImportError:
        from PIL import Image

        return np.asarray(Image.fromarray(rgb).resize((int(size[1]), int(size[0])), Image.BILINEAR))


def list_images(paths: Sequence[str | Path]) -> list[Path]:
    """Image files named directly, plus those found (sorted) in the named directories."""
    out: list[Path] = []
    for item in paths:
        p = Path(item)
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            out.append(p)
        else:
            raise FormatError(f"{p}: no such image file or directory")
    if not out:
        raise FormatError(f"no images found in {', '.join(str(p) for p in paths)} "
                          f"(looked for {', '.join(IMAGE_SUFFIXES)})")
    return out

"""Image resampling with TensorFlow's semantics, in numpy.

MTCNN's reference implementation (the `mtcnn` package) builds its pyramid with
`tf.image.resize(method="area")` and cuts R-Net/O-Net inputs with
`tf.image.crop_and_resize` (bilinear, zero outside the image). Matching its detections
needs the same sampling grid, so both are reproduced here: area resizing as two
separable weighted sums over a few input rows/columns per output, and crop-and-resize
as four gathers per crop.
"""

from __future__ import annotations

import numpy as np

from ...errors import ShapeError


def _area_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Input indices [out, K] and weights [out, K] of TF's area resize along one axis.

    Output cell o covers input span [o*s, (o+1)*s) with s = in/out; each input cell
    contributes the length of its overlap with that span (float32, as TF computes it).
    """
    s = np.float32(in_size) / np.float32(out_size)
    o = np.arange(out_size, dtype=np.float32)
    lo = o * s
    hi = (o + np.float32(1)) * s
    start = np.floor(lo).astype(np.int64)
    end = np.ceil(hi).astype(np.int64)
    k = int((end - start).max()) if out_size else 0
    idx = start[:, None] + np.arange(k)[None, :]
    i = idx.astype(np.float32)
    # overlap of [i, i+1) with [lo, hi): the four cases TF spells out
    w = np.where(
        i < lo[:, None],
        np.where(i + 1 > hi[:, None], s, i + 1 - lo[:, None]),
        np.where(i + 1 > hi[:, None], hi[:, None] - i, np.float32(1)),
    ).astype(np.float32)
    w[idx >= end[:, None]] = 0
    return np.clip(idx, 0, in_size - 1), w


def resize_area(image: np.ndarray, out_h: int, out_w: int, fast: bool = False) -> np.ndarray:
    """Area-resize an [H, W, C] image to [out_h, out_w, C] like `tf.image.resize(..., "area")`.

    fast=True uses OpenCV's INTER_AREA when installed and shrinking: the same box
    averaging, several times faster, equal to TensorFlow's within ~1e-4 (float rounding).
    """
    if image.ndim != 3:
        raise ShapeError(f"resize_area expects an [H, W, C] image, got shape {image.shape}")
    h, w, _ = image.shape
    if out_h < 1 or out_w < 1:
        raise ShapeError(f"resize_area: output size {out_h}x{out_w} must be at least 1x1")
    img = np.asarray(image, dtype=np.float32)
    if fast and out_h <= h and out_w <= w and img.shape[2] <= 4:
        cv2 = _cv2()
        if cv2 is not None:
            out = cv2.resize(img, (out_w, out_h), interpolation=cv2.INTER_AREA)
            return out.reshape(out_h, out_w, img.shape[2])
    yi, yw = _area_taps(h, out_h)
    xi, xw = _area_taps(w, out_w)
    rows = np.zeros((out_h, w, img.shape[2]), np.float32)
    for k in range(yi.shape[1]):
        rows += yw[:, k, None, None] * img[yi[:, k]]
    out = np.zeros((out_h, out_w, img.shape[2]), np.float32)
    for k in range(xi.shape[1]):
        out += xw[None, :, k, None] * rows[:, xi[:, k]]
    scale = np.float32(1.0) / ((np.float32(h) / np.float32(out_h)) * (np.float32(w) / np.float32(out_w)))
    return out * scale


_CV2: list = []


def _cv2():
    """OpenCV if installed (imported once), else None."""
    if not _CV2:
        try:
            import cv2
        except ImportError:
            cv2 = None
        _CV2.append(cv2)
    return _CV2[0]


def crop_and_resize(image: np.ndarray, boxes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear crops like `tf.image.crop_and_resize(image[None], boxes, 0, size)`.

    boxes: [N, 4] as (y1, x1, y2, x2) normalised so that 0 and 1 are the first and last
    pixel centres scaled by (H-1, W-1); samples outside the image are 0.
    Returns [N, size[0], size[1], C] float32.
    """
    if image.ndim != 3:
        raise ShapeError(f"crop_and_resize expects an [H, W, C] image, got shape {image.shape}")
    img = np.asarray(image, dtype=np.float32)
    h, w, c = img.shape
    ch, cw = size
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    n = b.shape[0]
    if n == 0:
        return np.zeros((0, ch, cw, c), np.float32)
    in_y = _sample_positions(b[:, 0:1], b[:, 2:3], h, ch)
    in_x = _sample_positions(b[:, 1:2], b[:, 3:4], w, cw)
    fy, fx = np.floor(in_y), np.floor(in_x)
    ty = np.clip(fy, 0, h - 1).astype(np.intp)
    by = np.clip(np.ceil(in_y), 0, h - 1).astype(np.intp)
    lx = np.clip(fx, 0, w - 1).astype(np.intp)[:, None, :]
    rx = np.clip(np.ceil(in_x), 0, w - 1).astype(np.intp)[:, None, :]
    # gathers on the flattened image (one index array each) are about twice as fast as
    # two-axis fancy indexing
    flat = img.reshape(h * w, c)
    ty_w, by_w = (ty * w)[:, :, None], (by * w)[:, :, None]
    tl, tr = flat.take(ty_w + lx, axis=0), flat.take(ty_w + rx, axis=0)
    bl, br = flat.take(by_w + lx, axis=0), flat.take(by_w + rx, axis=0)
    xlerp = (in_x - fx)[:, None, :, None]
    top = tl + (tr - tl) * xlerp
    bottom = bl + (br - bl) * xlerp
    out = top + (bottom - top) * (in_y - fy)[:, :, None, None]
    inside = ((in_y >= 0) & (in_y <= h - 1))[:, :, None] & ((in_x >= 0) & (in_x <= w - 1))[:, None, :]
    out[~inside] = 0.0  # TensorFlow's extrapolation value
    return out.astype(np.float32, copy=False)


def _sample_positions(lo: np.ndarray, hi: np.ndarray, size: int, n: int) -> np.ndarray:
    """Pixel positions TF samples along one axis for each crop: [N, n] float32."""
    span = np.float32(size - 1)
    if n > 1:
        step = (hi - lo) * span / np.float32(n - 1)
        return lo * span + np.arange(n, dtype=np.float32)[None, :] * step
    return np.repeat(np.float32(0.5) * (lo + hi) * span, 1, axis=1)

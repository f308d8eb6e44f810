"""The MTCNN cascade in numpy: pyramid, P-Net proposals, R-Net refinement, O-Net boxes + landmarks.

The three nets are plain callables on NHWC float32 batches, so the same pipeline runs
with tf2rt engines, with the `mtcnn` package's Keras models (for testing) or with
anything else that computes the same function:

    pnet(x [1, H, W, 3]) -> (offsets [1, h, w, 4], probs [1, h, w, 2])
    rnet(x [N, 24, 24, 3]) -> (offsets [N, 4], probs [N, 2])
    onet(x [N, 48, 48, 3]) -> (offsets [N, 4], landmarks [N, 10], probs [N, 2])

Every step follows the `mtcnn` package (v1.0) so that detections match it: pixels are
normalised as (v - 127.5) / 128, the pyramid uses TensorFlow's area resize, crops use
TensorFlow's crop-and-resize, and suppression uses the package's rule (see boxes.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, Callable, Sequence

import numpy as np

from ...errors import ShapeError, Tf2rtError
from . import boxes as bx
from .imageops import crop_and_resize, resize_area

Net = Callable[[np.ndarray], Sequence[Any]]

# P-Net slides a 12x12 window with stride 2 over each pyramid level.
PNET_CELL = 12
PNET_STRIDE = 2
RNET_SIZE = 24
ONET_SIZE = 48

# Landmark order of O-Net's outputs (x1..x5 then y1..y5).
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True)
class MtcnnParams:
    """The usual MTCNN knobs, with the `mtcnn` package's defaults."""

    min_face_size: float = 20.0
    scale_factor: float = 0.709
    threshold_pnet: float = 0.6
    threshold_rnet: float = 0.7
    threshold_onet: float = 0.8
    nms_pnet_scale: float = 0.5   # within one pyramid level (union)
    nms_pnet: float = 0.7         # across levels (union)
    nms_rnet: float = 0.7         # union
    nms_onet: float = 0.7         # over the smaller box ("min")

    def __post_init__(self) -> None:
        if not 0 < self.scale_factor < 1:
            raise Tf2rtError(f"scale_factor must be in (0, 1), got {self.scale_factor}")
        if not self.min_face_size > 0:
            raise Tf2rtError(f"min_face_size must be positive, got {self.min_face_size}")
        for f in fields(self):
            if f.name.startswith(("threshold_", "nms_")) and not 0 <= getattr(self, f.name) <= 1:
                raise Tf2rtError(f"{f.name} must be in [0, 1], got {getattr(self, f.name)}")

    def with_(self, **changes: Any) -> "MtcnnParams":
        """A copy with some knobs changed; unknown names are an error listing the known ones."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise Tf2rtError(f"unknown MTCNN setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return replace(self, **changes)


def pyramid_scales(height: int, width: int, min_face_size: float, scale_factor: float) -> np.ndarray:
    """Scales of the image pyramid, as the package computes them.

    The first scale maps a min_face_size face onto P-Net's 12 px window; the count
    comes from the image's short side (the package's formula, kept as is).
    """
    if not 0 < scale_factor < 1:
        raise ValueError(f"scale_factor must be in (0, 1), got {scale_factor}")
    if min_face_size <= 0:
        raise ValueError(f"min_face_size must be positive, got {min_face_size}")
    min_dim = min(width, height)
    count = round(-((np.log(min_dim / PNET_CELL) / np.log(scale_factor)) + 1))
    m = PNET_CELL / min_face_size
    return m * scale_factor ** np.arange(max(count, 0))


def normalize(image: np.ndarray) -> np.ndarray:
    """[H, W, 3] RGB in 0..255 (uint8 or float) -> float32 in [-1, 1]; gray and RGBA are accepted."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ShapeError(f"expected an RGB image [H, W, 3] (or gray [H, W], RGBA [H, W, 4]), got shape {img.shape}")
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise ShapeError(f"empty image of shape {img.shape}")
    if img.dtype.kind == "f":
        hi = float(np.max(img[:, :, :3]))
        if not np.isfinite(hi) or not np.isfinite(img[:, :, :3]).all():
            raise ShapeError("the image has NaN or infinite pixels")
        if 0 < hi <= 1.0:  # almost surely a [0, 1] image: MTCNN's weights expect 0..255
            raise ShapeError("the image looks scaled to [0, 1] (largest value "
                             f"{hi:.3g}); MTCNN expects 0..255 - multiply by 255 first")
    elif img.dtype.kind not in "uib":
        raise ShapeError(f"unsupported image dtype {img.dtype}; use uint8 (or floats in 0..255)")
    # (v - 127.5) / 128 is exact in float32 for 0..255, so no float64 detour is needed
    return (img[:, :, :3].astype(np.float32) - np.float32(127.5)) * np.float32(1 / 128)


class MtcnnPipeline:
    """MTCNN face detection over three nets; `detect` returns [n, 15] rows.

    Row layout: x1, y1, x2, y2, score, landmark x1..x5, landmark y1..y5 (image pixels).
    """

    def __init__(self, pnet: Net, rnet: Net, onet: Net, params: MtcnnParams | None = None,
                 exact_resize: bool = False, workers: int = 1) -> None:
        self.pnet, self.rnet, self.onet = pnet, rnet, onet
        self.params = params or MtcnnParams()
        # exact_resize: TensorFlow's area resize bit for bit (numpy); otherwise OpenCV's
        # equivalent when installed (faster, equal within float rounding)
        self.exact_resize = exact_resize
        # workers > 1: pyramid levels and R-Net/O-Net batches run in that many threads (the
        # nets and OpenCV release the GIL); results are identical, gathered in order. The
        # nets must then be safe to call from several threads (onnxruntime sessions are).
        self.workers = max(1, int(workers))
        self._pool: Any = None

    def _map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """fn over items, in order; on the thread pool when workers > 1."""
        if self.workers == 1 or len(items) < 2:
            return [fn(it) for it in items]
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="mtcnn")
        return list(self._pool.map(fn, items))

    def _run_batched(self, net: Net, x: np.ndarray) -> list[np.ndarray]:
        """A net over a batch, split into one chunk per worker; outputs concatenated in order."""
        if self.workers == 1 or len(x) < 2 * 16:  # small batches are not worth splitting
            return [np.asarray(o) for o in net(x)]
        chunks = np.array_split(x, self.workers)
        parts = self._map(lambda c: [np.asarray(o) for o in net(c)], chunks)
        return [np.concatenate([p[k] for p in parts], axis=0) for k in range(len(parts[0]))]

    # -- stages ---------------------------------------------------------------------
    def proposals(self, img: np.ndarray, p: MtcnnParams) -> np.ndarray:
        """P-Net over the pyramid: squared candidate boxes [n, 5]."""
        h, w = img.shape[:2]
        # levels whose size truncates (as tf.image.resize does) below P-Net's window are skipped
        scales = [s for s in pyramid_scales(h, w, p.min_face_size, p.scale_factor)
                  if min(int(h * s), int(w * s)) >= PNET_CELL]

        def level(scale: float) -> np.ndarray:
            sh, sw = int(h * scale), int(w * scale)
            x = resize_area(img, sh, sw, fast=not self.exact_resize)[None]
            offsets, probs = (np.asarray(o) for o in self.pnet(x)[:2])
            found = _pnet_boxes(offsets[0], probs[0, :, :, 1], p.threshold_pnet)
            found[:, :4] /= scale
            return bx.suppress(found, p.nms_pnet_scale, "union", presorted=True)

        per_scale = self._map(level, scales)
        if not per_scale:
            return np.zeros((0, 5))
        cands = bx.suppress(np.concatenate(per_scale, axis=0), p.nms_pnet, "union")
        return bx.to_square(cands)

    def refine(self, img: np.ndarray, cands: np.ndarray, p: MtcnnParams) -> np.ndarray:
        """R-Net: rescored, regressed, suppressed, squared boxes [n, 5]."""
        if len(cands) == 0:
            return cands
        offsets, probs = self._run_batched(self.rnet, _crops(img, cands, RNET_SIZE))[:2]
        out = cands.copy()
        out[:, bx.SCORE] = probs[:, -1]
        out = bx.apply_offsets(out, offsets)
        out = out[out[:, bx.SCORE] > p.threshold_rnet]
        out = bx.suppress(out, p.nms_rnet, "union")
        return bx.to_square(out)

    def output(self, img: np.ndarray, cands: np.ndarray, p: MtcnnParams) -> np.ndarray:
        """O-Net: final boxes with landmarks [n, 15]."""
        if len(cands) == 0:
            return np.zeros((0, 15))
        offsets, rel_landmarks, probs = self._run_batched(self.onet, _crops(img, cands, ONET_SIZE))[:3]
        landmarks = bx.place_landmarks(rel_landmarks, cands)
        out = cands[:, :5].copy()
        out[:, bx.SCORE] = probs[:, -1]
        out = bx.apply_offsets(out, offsets)
        out = np.concatenate([out, landmarks], axis=1)
        out = out[out[:, bx.SCORE] > p.threshold_onet]
        return bx.suppress(out, p.nms_onet, "min")

    # -- whole cascade -----------------------------------------------------------------
    def detect(self, image: np.ndarray, **params: Any) -> np.ndarray:
        """Faces in an RGB image as [n, 15] rows (see class doc); keyword args override MtcnnParams."""
        p = self.params.with_(**params) if params else self.params
        img = normalize(image)
        cands = self.proposals(img, p)
        cands = self.refine(img, cands, p)
        faces = self.output(img, cands, p)
        return bx.clip_to_image(faces, img.shape[0], img.shape[1])

    def face_probability(self, patches: np.ndarray, stage: str = "onet") -> np.ndarray:
        """Face probability of R-Net or O-Net on whole RGB patches [N, h, w, 3] (resized to the net's input)."""
        size = ONET_SIZE if stage == "onet" else RNET_SIZE
        net = self.onet if stage == "onet" else self.rnet
        out = []
        for patch in patches:
            img = normalize(patch)
            h, w = img.shape[:2]
            whole = np.array([[0, 0, w, h, 0.0]])  # the package's crop convention, whole patch
            out.append(_crops(img, whole, size))
        probs = np.asarray(net(np.concatenate(out, axis=0))[-1])
        return probs[:, -1].astype(np.float64)


def _pnet_boxes(offsets: np.ndarray, face_prob: np.ndarray, threshold: float) -> np.ndarray:
    """Boxes [n, 5] (level pixels) where P-Net's face probability exceeds the threshold, best first."""
    ys, xs = np.nonzero(face_prob > threshold)
    reg = offsets[ys, xs].astype(np.float64)
    # The package's window spans (2i + 1, 2i + 12): 11 px wide, offsets scale by 11.
    x0 = (xs * PNET_STRIDE + 1).astype(np.float64)
    y0 = (ys * PNET_STRIDE + 1).astype(np.float64)
    side = PNET_CELL - 1
    out = np.stack([
        x0 + reg[:, 0] * side,
        y0 + reg[:, 1] * side,
        x0 + side + reg[:, 2] * side,
        y0 + side + reg[:, 3] * side,
        face_prob[ys, xs].astype(np.float64),
    ], axis=1)
    return bx.sort_by_score(out)


def _crops(img: np.ndarray, cands: np.ndarray, size: int) -> np.ndarray:
    """Net inputs cut from the normalised image; corners are divided by (H, W) as the package does."""
    h, w = img.shape[:2]
    norm = cands[:, [bx.Y1, bx.X1, bx.Y2, bx.X2]] / np.array([h, w, h, w], np.float64)
    return crop_and_resize(img, norm, (size, size))


def pnet_output_size(height: int, width: int) -> tuple[int, int]:
    """P-Net's output grid for an input of this size (conv3 valid, pool 2 'same', conv3, conv3)."""
    def one(n: int) -> int:
        return math.ceil((n - 2) / 2) - 4
    return one(height), one(width)

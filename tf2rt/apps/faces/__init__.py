"""Face detection: MTCNN converted to tf2rt engines, baselines, and FDDB/WIDER/LFW evaluation.

    from tf2rt.apps.faces import detect
    faces = detect(rgb_image)            # [Face(box=(x, y, w, h), score, landmarks), ...]

Heavy pieces (engines, OpenCV, TensorFlow for the mtcnn-tf baseline) load on first use.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .detectors import MTCNN, Detector, Face, Haar, MtcnnTF, make_detector
from .pipeline import MtcnnParams, MtcnnPipeline

_default: MTCNN | None = None


def detect(image: np.ndarray, **params: Any) -> list[Face]:
    """Faces in an RGB image [H, W, 3] (0..255) with tf2rt's MTCNN; keyword args are MtcnnParams knobs."""
    global _default
    if _default is None:
        _default = MTCNN()
    return _default.detect(image, **params)


__all__ = ["detect", "Face", "Detector", "MTCNN", "Haar", "MtcnnTF", "make_detector", "MtcnnParams", "MtcnnPipeline"]

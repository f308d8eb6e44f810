"""Face detectors behind one interface: tf2rt's MTCNN on engines, OpenCV's Haar cascade, the mtcnn package.

Every detector takes an RGB image [H, W, 3] (uint8, 0..255) and returns `Face`s, best
score first; `face_scores` rates whole patches as face / non-face with the detector's
classifier stage (used for the LFW-subset ROC).
"""

from __future__ import annotations

import importlib.util

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from ...errors import Tf2rtError
from .pipeline import LANDMARK_NAMES, MtcnnParams, MtcnnPipeline, normalize


@dataclass(frozen=True)
class Face:
    """A detected face: box (x, y, w, h) in pixels, a score (higher = more face-like), optional landmarks."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: dict[str, tuple[float, float]] | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"box": [round(float(v), 3) for v in self.box], "score": float(self.score)}
        if self.landmarks is not None:
            out["landmarks"] = {k: [round(float(x), 3), round(float(y), 3)] for k, (x, y) in self.landmarks.items()}
        return out

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        x, y, w, h = self.box
        return (x, y, x + w, y + h)


class Detector(Protocol):
    """What the evaluator and the CLI need from a detector."""

    name: str

    def detect(self, image: np.ndarray) -> list[Face]: ...

    def face_scores(self, patches: np.ndarray) -> np.ndarray: ...


def faces_from_rows(rows: np.ndarray) -> list[Face]:
    """[n, 15] MTCNN rows (x1, y1, x2, y2, score, 5 landmark xs, 5 landmark ys) -> Faces, best first."""
    out = []
    for r in rows[np.argsort(-rows[:, 4], kind="stable")] if len(rows) else rows:
        lm = None
        if len(r) >= 15:
            lm = {name: (float(r[5 + k]), float(r[10 + k])) for k, name in enumerate(LANDMARK_NAMES)}
        out.append(Face(box=(float(r[0]), float(r[1]), float(r[2] - r[0]), float(r[3] - r[1])),
                        score=float(r[4]), landmarks=lm))
    return out


def faces_to_array(faces: Sequence[Face]) -> np.ndarray:
    """Faces -> [k, 5] (x, y, w, h, score), the evaluator's detection format."""
    return np.array([list(f.box) + [f.score] for f in faces], np.float64).reshape(-1, 5)


class MTCNN:
    """MTCNN on tf2rt engines (P/R/O-Net built with the Network API, the mtcnn package's weights).

    Keyword arguments are MtcnnParams knobs (min_face_size, scale_factor, threshold_*, nms_*).
    One runner per net is kept for the detector's lifetime. exact_resize=True builds the
    pyramid with TensorFlow's area resize bit for bit (numpy) instead of OpenCV's.
    workers: threads running pyramid levels and crop batches side by side (default: up to
    4, one per core); each net call uses one onnxruntime thread unless runner_options say
    otherwise.
    """

    name = "mtcnn"

    def __init__(self, backend: str = "onnxruntime", precision: str = "fp32",
                 weights_dir: str | Path | None = None, engines: dict[str, Any] | None = None,
                 runner_options: dict[str, Any] | None = None, exact_resize: bool = False,
                 workers: int | None = None, **params: Any) -> None:
        from .mtcnn_nets import EngineNet, build_engines

        self.engines = engines if engines is not None else build_engines(precision, weights_dir)
        # The nets are small and run between numpy steps: onnxruntime's spinning worker
        # threads would fight the numpy code for the cores, so one intra-op thread by default.
        opts = {"threads": 1} if runner_options is None and backend == "onnxruntime" else (runner_options or {})
        nets = [EngineNet(self.engines[n], n, backend, **opts) for n in ("pnet", "rnet", "onet")]
        self._nets = nets
        if workers is None:  # pyramid levels / crop batches in parallel, one net thread each
            workers = min(4, os.cpu_count() or 1)
        self.pipeline = MtcnnPipeline(*nets, params=MtcnnParams().with_(**params), exact_resize=exact_resize,
                                      workers=workers)

    def detect_rows(self, image: np.ndarray, **params: Any) -> np.ndarray:
        """[n, 15] rows: x1, y1, x2, y2, score, landmark xs, landmark ys."""
        return self.pipeline.detect(image, **params)

    def detect(self, image: np.ndarray, **params: Any) -> list[Face]:
        return faces_from_rows(self.detect_rows(image, **params))

    def face_scores(self, patches: np.ndarray, stage: str = "onet") -> np.ndarray:
        """O-Net (or R-Net) face probability of each whole patch."""
        return self.pipeline.face_probability(np.asarray(patches), stage)

    def save(self, folder: str | Path) -> None:
        """Write pnet/rnet/onet engine files (valid .onnx models) to a folder."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, engine in self.engines.items():
            engine.save(folder / f"mtcnn_{name}.engine")

    @classmethod
    def load(cls, folder: str | Path, **kwargs: Any) -> "MTCNN":
        """An MTCNN from engine files written by `save`."""
        from ...engine import load_engine

        folder = Path(folder)
        engines = {n: load_engine(folder / f"mtcnn_{n}.engine") for n in ("pnet", "rnet", "onet")}
        return cls(engines=engines, **kwargs)

    def close(self) -> None:
        for net in self._nets:
            net.close()


class Haar:
    """OpenCV's Viola-Jones cascade, as hall-of-faces runs it (gray + equalised, scale 1.1,
    3 neighbours, 30 px minimum); the score is the cascade's last-stage weight from
    detectMultiScale3(outputRejectLevels=True), so it has a ROC curve."""

    name = "haar"

    def __init__(self, cascade: str | Path | None = None, scale_factor: float = 1.1, min_neighbors: int = 3,
                 min_size: int = 30) -> None:
        from ..._optional import require

        cv2 = require("cv2", "faces", "the Haar cascade detector")

        path = Path(cascade) if cascade else Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self.classifier = cv2.CascadeClassifier(str(path))
        if self.classifier.empty():
            raise Tf2rtError(f"cannot load the Haar cascade {path}")
        self.scale_factor, self.min_neighbors, self.min_size = scale_factor, min_neighbors, min_size

    def _gray(self, image: np.ndarray) -> np.ndarray:
        import cv2

        img = np.asarray(image)
        if img.ndim == 3:
            img = cv2.cvtColor(np.ascontiguousarray(img[:, :, :3]).astype(np.uint8), cv2.COLOR_RGB2GRAY)
        return cv2.equalizeHist(img.astype(np.uint8))

    def _run(self, gray: np.ndarray, min_neighbors: int, min_size: int) -> tuple[np.ndarray, np.ndarray]:
        rects, _, weights = self.classifier.detectMultiScale3(
            gray, scaleFactor=self.scale_factor, minNeighbors=min_neighbors, minSize=(min_size, min_size),
            outputRejectLevels=True)
        return np.asarray(rects, np.float64).reshape(-1, 4), np.asarray(weights, np.float64).reshape(-1)

    def detect(self, image: np.ndarray) -> list[Face]:
        rects, weights = self._run(self._gray(image), self.min_neighbors, self.min_size)
        order = np.argsort(-weights, kind="stable")
        return [Face(box=tuple(float(v) for v in rects[i]), score=float(weights[i])) for i in order]  # type: ignore[arg-type]

    def face_scores(self, patches: np.ndarray, upscale: int = 4) -> np.ndarray:
        """Best cascade weight over windows covering at least half of each (upscaled) patch; -inf if none."""
        import cv2

        out = []
        for patch in np.asarray(patches):
            gray = self._gray(patch)
            big = cv2.resize(gray, (gray.shape[1] * upscale, gray.shape[0] * upscale), interpolation=cv2.INTER_LINEAR)
            side = min(big.shape[:2])
            rects, weights = self._run(big, 0, side // 2)
            out.append(float(weights.max()) if len(weights) else -np.inf)
        return np.array(out)


class MtcnnTF:
    """The `mtcnn` package itself, on TensorFlow (a baseline; needs tensorflow and mtcnn installed)."""

    name = "mtcnn-tf"

    def __init__(self, **params: Any) -> None:
        from ..._optional import MissingDependencyError, require

        if importlib.util.find_spec("tensorflow") is None:
            raise MissingDependencyError("the mtcnn-tf detector runs the mtcnn package on TensorFlow, which is "
                                         "not installed: pip install 'tf2rt[faces]' tensorflow")
        mtcnn = require("mtcnn", "faces", "the mtcnn-tf detector")
        self.detector = mtcnn.MTCNN()
        self.params = _package_kwargs(params)

    def detect_rows(self, image: np.ndarray) -> np.ndarray:
        out = self.detector.detect_faces(np.asarray(image), output_type="numpy", box_format="xyxy", **self.params)
        return np.asarray(out, np.float64).reshape(-1, 16)[:, 1:]

    def detect(self, image: np.ndarray) -> list[Face]:
        return faces_from_rows(self.detect_rows(image))

    def face_scores(self, patches: np.ndarray) -> np.ndarray:
        """The package's O-Net on each whole patch (same crop as tf2rt's MTCNN.face_scores)."""
        onet = self.detector.stages[2].model
        pipe = MtcnnPipeline(None, None, lambda x: [o.numpy() for o in onet(x)])  # type: ignore[arg-type]
        return pipe.face_probability(np.asarray(patches), "onet")


def _package_kwargs(params: dict[str, Any]) -> dict[str, Any]:
    """MtcnnParams names -> the mtcnn package's keyword names."""
    rename = {"nms_pnet_scale": "nms_pnet1", "nms_pnet": "nms_pnet2"}
    return {rename.get(k, k): v for k, v in params.items()}


DETECTORS = {"mtcnn": MTCNN, "haar": Haar, "mtcnn-tf": MtcnnTF}


def make_detector(name: str, **kwargs: Any) -> Detector:
    """A detector by name: mtcnn (tf2rt engines), haar (OpenCV), mtcnn-tf (the mtcnn package)."""
    if name not in DETECTORS:
        raise Tf2rtError(f"unknown detector {name!r}; choose from {', '.join(DETECTORS)}")
    return DETECTORS[name](**kwargs)  # type: ignore[return-value]


__all__ = ["Face", "Detector", "MTCNN", "Haar", "MtcnnTF", "make_detector", "faces_from_rows", "faces_to_array",
           "normalize"]

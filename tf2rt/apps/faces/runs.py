"""Run detectors over datasets and collect the numbers: ROC/AUC (FDDB), AP (WIDER), face/non-face AUC (LFW subset).

Results come back as table rows in hall-of-faces' style (detector, speed ms, AUC/AP) plus
the curves for plot.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ...errors import FormatError, Tf2rtError
from ...progress import progress
from ..images import MAX_PIXELS
from ..images import load_image as read_image
from .datasets import Annotation, lfw_subset, read_fddb, read_wider, write_fddb_detections
from .detectors import Detector, faces_to_array, make_detector
from .evaluate import binary_auc, binary_roc, fddb_roc, roc_auc, wider_ap, write_roc_files

DATASETS = ("fddb", "wider", "lfw-subset")


def load_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """An image file as RGB uint8 [H, W, 3] (OpenCV's decoder first); refuses images over max_pixels."""
    return read_image(path, max_pixels, prefer=("cv2", "pil"), extra="faces")


@dataclass
class EvalResult:
    """Table rows (one per detector) and curves (detector -> arrays) of one evaluation."""

    dataset: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    curves: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)

    # The headline metric of each dataset's rows.
    METRICS = {"fddb": "auc_discrete", "wider": "ap", "lfw-subset": "roc_auc"}

    def titles(self) -> dict[str, str]:
        """Column titles for the table (row keys are identifiers; titles say the protocol)."""
        max_fp = f"{float(self.notes.get('max_fp', 1000)):g}"
        return {"detector": "detector", "speed_ms": "speed ms",
                "auc_discrete": f"AUC disc. (0-{max_fp} FP)", "auc_continuous": f"AUC cont. (0-{max_fp} FP)",
                "tpr_at_max_fp": f"TPR@{max_fp}FP", "ap": f"AP ({self.notes.get('setting', 'all')})",
                "roc_auc": "ROC AUC"}

    @property
    def metric(self) -> str:
        return self.METRICS.get(self.dataset, "")

    def to_json(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "results": self.rows, "notes": self.notes,
                "curves": {d: {k: np.asarray(v).tolist() for k, v in c.items()} for d, c in self.curves.items()}}


def detect_all(detector: Detector, annotations: Sequence[Annotation], root: str | Path,
               desc: str = "") -> tuple[dict[str, np.ndarray], float]:
    """Detections {image: [k, 5]} for every annotated image, and the median ms per image."""
    root = Path(root)
    dets: dict[str, np.ndarray] = {}
    times = []
    for ann in progress(annotations, desc=desc or detector.name):
        image = load_image(root / ann.image)
        t0 = time.perf_counter()
        faces = detector.detect(image)
        times.append((time.perf_counter() - t0) * 1000)
        dets[ann.image] = faces_to_array(faces)
    return dets, float(np.median(times)) if times else 0.0


def evaluate(dataset: str, path: str | Path | None, detectors: Sequence[str | Detector], max_fp: float = 1000.0,
             setting: str = "all", region: str = "ellipse", limit: int | None = None,
             folds: Sequence[int] = tuple(range(1, 11)),
             external: Mapping[str, Mapping[str, np.ndarray]] | None = None,
             save_dir: str | Path | None = None) -> EvalResult:
    """Evaluate detectors (names or objects) on fddb (ROC + normalised AUC), wider (AP) or lfw-subset (ROC AUC).

    external: precomputed detections {label: {image: [k, 5]}} scored alongside (e.g. read
    with read_fddb_detections from published FDDB result files); save_dir: write each
    detector's FDDB detections there (save_dir/<detector>/fold-XX-out.txt).
    """
    if dataset not in DATASETS:
        raise Tf2rtError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")
    dets = [make_detector(d) if isinstance(d, str) else d for d in detectors]
    if dataset == "lfw-subset":
        return _eval_lfw(dets)
    if path is None:
        raise Tf2rtError(f"the {dataset} dataset is not downloaded by tf2rt; pass the folder that holds it")
    anns = read_fddb(path, tuple(folds)) if dataset == "fddb" else read_wider(path, setting)
    if limit is not None:
        anns = anns[:limit]
    result = EvalResult(dataset, notes={"images": len(anns), "faces": int(sum(a.num_faces for a in anns))})
    if dataset == "fddb":
        result.notes.update(max_fp=max_fp, region=region, min_overlap=0.5)
    else:
        result.notes.update(setting=setting, iou=0.5)
    runs: list[tuple[str, Any, Any]] = [(d.name, d, None) for d in dets]
    runs += [(label, None, found) for label, found in (external or {}).items()]
    for name, det, found in runs:
        if det is not None:
            found, ms = detect_all(det, anns, path, desc=f"{name} on {dataset}")  # type: ignore[assignment]
        else:
            found, ms = dict(found), None  # precomputed: no speed to report
        if save_dir is not None and dataset == "fddb" and det is not None:
            write_fddb_detections(anns, found, Path(save_dir) / name)
        if dataset == "fddb":
            roc = fddb_roc(anns, found, region=region)
            if save_dir is not None:
                write_roc_files(roc, Path(save_dir), name)
            result.rows.append({
                "detector": name, "speed_ms": ms,
                "auc_discrete": roc_auc(roc, max_fp, "discrete"),
                "auc_continuous": roc_auc(roc, max_fp, "continuous"),
                "tpr_at_max_fp": roc.tpr_at(max_fp)})
            result.curves[name] = {"false_positives": roc.false_positives, "tpr_discrete": roc.tpr_discrete,
                                       "tpr_continuous": roc.tpr_continuous}
        else:
            ap, precision, recall = wider_ap(anns, found)
            result.rows.append({"detector": name, "speed_ms": ms, "ap": ap})
            result.curves[name] = {"precision": precision, "recall": recall}
    return result


def _eval_lfw(dets: Sequence[Detector]) -> EvalResult:
    patches, labels = lfw_subset()
    result = EvalResult("lfw-subset", notes={"faces": int(labels.sum()), "non_faces": int((1 - labels).sum()),
                                             "patch": list(patches.shape[1:3])})
    for det in dets:
        det.face_scores(patches[:2])  # warm-up (first-run allocations)
        t0 = time.perf_counter()
        scores = det.face_scores(patches)
        ms = (time.perf_counter() - t0) * 1000 / len(patches)
        fpr, tpr, _ = binary_roc(scores, labels)
        result.rows.append({"detector": det.name, "speed_ms": ms, "roc_auc": binary_auc(scores, labels)})
        result.curves[det.name] = {"fpr": fpr, "tpr": tpr}
    return result

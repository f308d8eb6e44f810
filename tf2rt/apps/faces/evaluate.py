"""Detector evaluation: FDDB discrete/continuous ROC, normalised AUC, WIDER AP, face/non-face ROC AUC.

Detections per image are arrays [k, 5]: x, y, w, h, score (pixels; any real scores, only
their order matters).

FDDB protocol (as implemented here; see docs/faces.md):
- overlap of a detection and a face is the intersection over union of their regions; the
  face region is FDDB's ellipse, rasterised on the pixel grid (region="ellipse"), or its
  bounding box (region="bbox");
- for every score threshold, detections at or above it are matched one-to-one to faces
  (Hungarian algorithm) maximising the summed overlap, as FDDB's evaluation code does;
- discrete: a matched pair with overlap > 0.5 is a true positive; continuous: every matched
  pair adds its overlap. False positives = detections minus discrete true positives, for
  both curves (FDDB's Results.cpp). TPR = true positives / faces; one curve over all
  images (all folds).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ...errors import ShapeError, Tf2rtError
from ...outputs import write_text
from .boxes import iou_matrix
from .datasets import Annotation

MIN_OVERLAP = 0.5


# -- overlaps ------------------------------------------------------------------------------
def _xyxy(xywh: np.ndarray) -> np.ndarray:
    b = np.asarray(xywh, np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def ellipse_rect_iou(ellipse: np.ndarray, rect_xywh: np.ndarray) -> float:
    """IoU of a filled ellipse and a rectangle, counting pixel centres (x + 0.5, y + 0.5) inside each."""
    a, b, t, cx, cy = (float(v) for v in ellipse)
    x, y, w, h = (float(v) for v in rect_xywh)
    hw = np.hypot(a * np.cos(t), b * np.sin(t))
    hh = np.hypot(a * np.sin(t), b * np.cos(t))
    x0 = int(np.floor(min(cx - hw, x)))
    y0 = int(np.floor(min(cy - hh, y)))
    x1 = int(np.ceil(max(cx + hw, x + w)))
    y1 = int(np.ceil(max(cy + hh, y + h)))
    if x1 <= x0 or y1 <= y0:
        return 0.0
    px = np.arange(x0, x1) + 0.5
    py = np.arange(y0, y1) + 0.5
    dx = px[None, :] - cx
    dy = py[:, None] - cy
    u = dx * np.cos(t) + dy * np.sin(t)
    v = -dx * np.sin(t) + dy * np.cos(t)
    in_e = (u / max(a, 1e-9)) ** 2 + (v / max(b, 1e-9)) ** 2 <= 1.0
    in_r = (px[None, :] >= x) & (px[None, :] < x + w) & (py[:, None] >= y) & (py[:, None] < y + h)
    union = np.count_nonzero(in_e | in_r)
    return float(np.count_nonzero(in_e & in_r)) / union if union else 0.0


def overlaps(ann: Annotation, dets: np.ndarray, region: str = "ellipse") -> np.ndarray:
    """[k detections, n faces] overlap ratios."""
    if region == "ellipse" and ann.ellipses is not None:
        out = np.zeros((len(dets), len(ann.ellipses)))
        coarse = iou_matrix(_xyxy(dets[:, :4]), _xyxy(ann.boxes))  # skip pairs that cannot touch
        for i, j in zip(*np.nonzero(coarse > 0)):
            out[i, j] = ellipse_rect_iou(ann.ellipses[j], dets[i, :4])
        return out
    if region not in ("ellipse", "bbox"):
        raise Tf2rtError(f"unknown overlap region {region!r}; use 'ellipse' or 'bbox'")
    return iou_matrix(_xyxy(dets[:, :4]), _xyxy(ann.boxes))


def match(iou: np.ndarray, min_overlap: float = MIN_OVERLAP) -> tuple[int, float]:
    """One-to-one matching of detections (rows) to faces (columns) with the largest summed overlap.

    Returns (pairs with overlap > min_overlap: discrete true positives,
    summed overlap of all matched pairs: continuous true positives).
    """
    ok = iou > 0
    if not ok.any():
        return 0, 0.0
    rows = np.nonzero(ok.any(axis=1))[0]
    cols = np.nonzero(ok.any(axis=0))[0]
    sub = iou[np.ix_(rows, cols)]
    from ..._optional import require

    linear_sum_assignment = require("scipy.optimize", "faces", "FDDB matching").linear_sum_assignment

    r, c = linear_sum_assignment(sub, maximize=True)
    pairs = sub[r, c]
    return int((pairs > min_overlap).sum()), float(pairs.sum())


# -- FDDB ROC ------------------------------------------------------------------------------
@dataclass
class Roc:
    """ROC points, one per distinct score threshold (descending): FP count and TP rates."""

    thresholds: np.ndarray
    false_positives: np.ndarray
    tpr_discrete: np.ndarray
    tpr_continuous: np.ndarray
    num_faces: int
    num_images: int

    def tpr_at(self, fp: float, kind: str = "discrete") -> float:
        """Best true positive rate with at most `fp` false positives."""
        tpr = self.tpr_discrete if kind == "discrete" else self.tpr_continuous
        ok = self.false_positives <= fp
        return float(tpr[ok].max()) if ok.any() else 0.0


def _check_dets(dets: np.ndarray, image: str) -> np.ndarray:
    d = np.asarray(dets, np.float64)
    if d.size == 0:
        return np.zeros((0, 5))
    if d.ndim != 2 or d.shape[1] < 5:
        raise ShapeError(f"detections of {image} must be [k, 5] (x, y, w, h, score), got shape {d.shape}")
    return d[:, :5]


def fddb_roc(annotations: Sequence[Annotation], detections: Mapping[str, np.ndarray],
             region: str = "ellipse", min_overlap: float = MIN_OVERLAP) -> Roc:
    """Discrete and continuous ROC over all images (see module doc); images without detections count as misses."""
    events = []  # (score, d_detections, d_discrete_tp, d_continuous_tp)
    n_faces = 0
    for ann in annotations:
        n_faces += ann.num_faces
        dets = _check_dets(detections.get(ann.image, np.zeros((0, 5))), ann.image)
        if len(dets) == 0:
            continue
        dets = dets[np.argsort(-dets[:, 4], kind="stable")]
        faces = ~ann.ignore  # type: ignore[operator]
        ov = overlaps(ann, dets, region)[:, faces]
        prev: tuple[int, float] = (0, 0.0)
        for j in range(1, len(dets) + 1):
            if j > 1 and not (ov[j - 1] > 0).any():
                cur = prev  # a detection that overlaps no face cannot change the matching
            else:
                cur = match(ov[:j], min_overlap)
            events.append((dets[j - 1, 4], 1, cur[0] - prev[0], cur[1] - prev[1]))
            prev = cur
    if not events:
        z = np.zeros(0)
        return Roc(z, z, z, z, n_faces, len(annotations))
    ev = np.array(events, np.float64)
    ev = ev[np.argsort(-ev[:, 0], kind="stable")]
    cum = np.cumsum(ev[:, 1:], axis=0)
    last = np.r_[np.nonzero(ev[1:, 0] != ev[:-1, 0])[0], len(ev) - 1]  # state after all events at each score
    ndet, tp_disc, tp_cont = cum[last].T
    denom = max(n_faces, 1)
    return Roc(thresholds=ev[last, 0], false_positives=np.round(ndet - tp_disc), tpr_discrete=tp_disc / denom,
               tpr_continuous=tp_cont / denom, num_faces=n_faces, num_images=len(annotations))


def write_roc_files(roc: Roc, folder: str | Path, prefix: str) -> list[Path]:
    """FDDB-style `<prefix>DiscROC.txt` / `<prefix>ContROC.txt`: one "TPR FP" line per threshold,
    the format FDDB's evaluation program writes and published result pages share."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for kind, tpr in (("Disc", roc.tpr_discrete), ("Cont", roc.tpr_continuous)):
        path = folder / f"{prefix}{kind}ROC.txt"
        write_text(path, "".join(f"{t:.6f} {int(f)}\n" for t, f in zip(tpr, roc.false_positives)))  # atomic
        out.append(path)
    return out


def roc_auc(roc: Roc, max_fp: float = 1000.0, kind: str = "discrete") -> float:
    """Area under TPR(FP) for FP in [0, max_fp], divided by max_fp (1.0 = every face found with no FP).

    TPR(x) is the best rate reachable with at most x false positives (a step function).
    """
    if max_fp <= 0:
        raise ValueError("max_fp must be positive")
    tpr = roc.tpr_discrete if kind == "discrete" else roc.tpr_continuous
    fp = np.asarray(roc.false_positives, np.float64)
    if fp.size == 0:
        return 0.0
    best = np.maximum.accumulate(tpr)  # FP is non-decreasing along the sweep
    xs = np.r_[fp, max_fp]
    area = 0.0
    for k in range(len(fp)):
        lo, hi = min(xs[k], max_fp), min(xs[k + 1], max_fp)
        if hi > lo:
            area += best[k] * (hi - lo)
    return float(area / max_fp)


# -- WIDER FACE AP -------------------------------------------------------------------------
def wider_ap(annotations: Sequence[Annotation], detections: Mapping[str, np.ndarray],
             iou_threshold: float = 0.5, num_thresholds: int = 1000) -> tuple[float, np.ndarray, np.ndarray]:
    """WIDER FACE average precision, following the official evaluation code.

    Scores are min-max normalised over the whole set (as the official code does it, see
    below); per image, each detection (best score first; the official code assumes sorted
    input) takes the face it overlaps most; at IoU >= iou_threshold it recalls that face,
    or is ignored if the face is ignored. Precision/recall are sampled at
    `num_thresholds` score thresholds and AP is the area under the interpolated
    (monotone) precision-recall curve, PASCAL VOC style. Returns (ap, precision, recall).
    """
    all_scores = [(_check_dets(detections.get(a.image, np.zeros((0, 5))), a.image)[:, 4]) for a in annotations]
    flat = np.concatenate(all_scores) if all_scores else np.zeros(0)
    # the official normalisation starts from min 1 and max 0, so the range always covers [s_min, s_max]
    # and, for scores beyond [0, 1], also 1 or 0 (e.g. Haar weights 5..9 map as (s - 1) / (9 - 1))
    lo, hi = (min(float(flat.min()), 1.0), max(float(flat.max()), 0.0)) if flat.size else (0.0, 1.0)
    span = hi - lo if hi > lo else 1.0
    pr = np.zeros((num_thresholds, 2))
    n_faces = 0
    thresholds = 1.0 - np.arange(1, num_thresholds + 1) / num_thresholds
    for a in annotations:
        n_faces += a.num_faces
        dets = _check_dets(detections.get(a.image, np.zeros((0, 5))), a.image)
        if len(dets) == 0 or len(a.boxes) == 0:
            continue  # the official code skips images without faces, detections and all
        dets = dets[np.argsort(-dets[:, 4], kind="stable")]
        s = (dets[:, 4] - lo) / span
        iou = iou_matrix(_xyxy(dets[:, :4]), _xyxy(a.boxes))
        recalled = np.zeros(len(a.boxes), int)  # 1 recalled, -1 ignored face hit
        counts = np.ones(len(dets), int)  # 1 = counts as a proposal, -1 = matched an ignored face
        recall_so_far = np.zeros(len(dets), int)
        for i in range(len(dets)):
            j = int(np.argmax(iou[i]))
            if iou[i, j] >= iou_threshold:
                if a.ignore[j]:  # type: ignore[index]
                    recalled[j] = -1
                    counts[i] = -1
                elif recalled[j] == 0:
                    recalled[j] = 1
            recall_so_far[i] = int((recalled == 1).sum())
        # for each threshold: the last detection scoring >= it (scores are sorted descending)
        last = np.searchsorted(-s, -thresholds, side="right") - 1
        ok = last >= 0
        proposals = np.cumsum(counts == 1)
        pr[ok, 0] += proposals[last[ok]]
        pr[ok, 1] += recall_so_far[last[ok]]
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(pr[:, 0] > 0, pr[:, 1] / np.maximum(pr[:, 0], 1), 0.0)
    recall = pr[:, 1] / max(n_faces, 1)
    return voc_ap(recall, precision), precision, recall


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """PASCAL VOC AP: area under the precision envelope (max precision at >= each recall)."""
    r = np.r_[0.0, recall, 1.0]
    p = np.r_[0.0, precision, 0.0]
    p = np.maximum.accumulate(p[::-1])[::-1]
    idx = np.nonzero(r[1:] != r[:-1])[0]
    return float(np.sum((r[idx + 1] - r[idx]) * p[idx + 1]))


# -- face / non-face classification ---------------------------------------------------------
def binary_roc(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate, thresholds) over distinct scores, from (0, 0) to (1, 1)."""
    s = np.asarray(scores, np.float64).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    if s.shape != y.shape:
        raise ShapeError(f"{s.size} scores for {y.size} labels")
    if y.all() or not y.any():
        raise Tf2rtError("a ROC curve needs both positive and negative examples")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[np.nonzero(s[1:] != s[:-1])[0], len(s) - 1]  # not np.diff: -inf ties would give nan
    tp = np.cumsum(y)[last]
    fp = np.cumsum(~y)[last]
    return np.r_[0.0, fp / (~y).sum()], np.r_[0.0, tp / y.sum()], np.r_[np.inf, s[last]]


def binary_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the face/non-face ROC curve (ties between a face and a non-face count half)."""
    fpr, tpr, _ = binary_roc(scores, labels)
    return float(np.sum((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2))


# -- results table ---------------------------------------------------------------------------
def results_table(rows: Sequence[Mapping[str, object]], columns: Sequence[str] | None = None,
                  titles: Mapping[str, str] | None = None) -> str:
    """A Markdown table (hall-of-faces style: detector, speed ms, AUC/AP ...); `titles` names the columns."""
    if not rows:
        return ""
    cols = list(columns or rows[0].keys())
    names = [(titles or {}).get(c, c) for c in cols]

    def fmt(v: object) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.4f}" if abs(v) < 10 else f"{v:.1f}"
        return str(v)

    lines = ["| " + " | ".join(names) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(cols))) + "|"]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)

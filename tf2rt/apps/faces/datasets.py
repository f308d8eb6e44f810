"""Face detection datasets: FDDB ellipse folds, WIDER FACE ground truth, scikit-image's LFW subset.

Nothing is downloaded: FDDB and WIDER FACE are read from folders the user already has
(FDDB: `FDDB-folds/FDDB-fold-XX-ellipseList.txt` + `originalPics/`; WIDER FACE:
`wider_face_split/wider_face_val_bbx_gt.txt` + `WIDER_val/images/`, and optionally the
official `wider_{easy,medium,hard}_val.mat` split files from the evaluation toolkit).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from ...errors import FormatError, Tf2rtError
from ...limits import max_bytes, read_capped
from ...outputs import write_text

WIDER_SETTINGS = ("easy", "medium", "hard")
# columns of a WIDER FACE ground-truth line after x, y, w, h
WIDER_ATTRIBUTES = ("blur", "expression", "illumination", "invalid", "occlusion", "pose")


@dataclass
class Annotation:
    """Faces of one image. boxes: [n, 4] as x, y, w, h (pixels).

    ellipses: FDDB's [n, 5] (major radius, minor radius, angle in radians, centre x, centre y)
    or None; ignore: [n] bool, faces that neither count as misses nor make a detection a false
    positive (WIDER's faces outside the chosen difficulty setting).
    """

    image: str
    boxes: np.ndarray
    ellipses: np.ndarray | None = None
    ignore: np.ndarray | None = None
    attributes: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, np.float64).reshape(-1, 4)
        if self.ignore is None:
            self.ignore = np.zeros(len(self.boxes), bool)

    @property
    def num_faces(self) -> int:
        return int((~self.ignore).sum())  # type: ignore[operator]


def ellipse_bbox(ellipses: np.ndarray) -> np.ndarray:
    """Axis-aligned bounding boxes [n, 4] (x, y, w, h) of FDDB ellipses (major axis at `angle` from x)."""
    e = np.asarray(ellipses, np.float64).reshape(-1, 5)
    a, b, t, cx, cy = e.T
    hw = np.sqrt((a * np.cos(t)) ** 2 + (b * np.sin(t)) ** 2)
    hh = np.sqrt((a * np.sin(t)) ** 2 + (b * np.cos(t)) ** 2)
    return np.stack([cx - hw, cy - hh, 2 * hw, 2 * hh], axis=1)


# -- FDDB --------------------------------------------------------------------------------
def _lines(path: Path) -> Iterator[tuple[int, str]]:
    # regular files only (a FIFO blocks forever), no larger than the cap
    text = read_capped(path, max_bytes(), "annotation file").decode("utf-8", errors="replace")
    for i, line in enumerate(text.splitlines(), 1):
        if line.strip():
            yield i, line.strip()


def _records(path: Path, item: str, columns: int, hint: str, min_columns: int | None = None,
             note: str = "", zero_placeholder: bool = False) -> Iterator[tuple[str, list[list[float]]]]:
    """The records of an FDDB / WIDER text file: a name line, a count line, then `count` rows
    of numbers. The first `columns` numbers of a row are kept; a row must have exactly
    `columns` fields, or at least `min_columns` numbers when that is given. WIDER writes one
    placeholder row when the count is 0 (`zero_placeholder`)."""
    lines = list(_lines(path))
    i = 0
    while i < len(lines):
        lineno, name = lines[i]
        if i + 1 >= len(lines) or not lines[i + 1][1].isdigit():
            raise FormatError(f"{path}:{lineno}: expected the number of {item} after {name!r}")
        n = int(lines[i + 1][1])
        body = max(n, 1) if zero_placeholder else n
        if i + 2 + body > len(lines):
            raise FormatError(f"{path}:{lineno}: {name!r} announces {n} {item} but the file ends first")
        rows = []
        for ln, text in lines[i + 2: i + 2 + body]:
            parts = text.split()
            try:
                vals = [float(v) for v in parts[:columns]]
            except ValueError:
                vals = []
            if len(vals) < min_columns if min_columns else (len(parts) != columns or len(vals) != columns):
                raise FormatError(f"{path}:{ln}: expected '{hint}', found {text!r}{note}")
            rows.append(vals)
        yield name, rows[:n]
        i += 2 + body


def read_fddb_ellipses(path: str | Path) -> list[Annotation]:
    """One FDDB `FDDB-fold-XX-ellipseList.txt` file: name, count, then one ellipse per face."""
    out: list[Annotation] = []
    for name, rows in _records(Path(path), "faces", 5, "major minor angle cx cy 1", min_columns=5):
        ell = np.array(rows, np.float64).reshape(-1, 5)
        out.append(Annotation(image=name, boxes=ellipse_bbox(ell), ellipses=ell))
    return out


def read_fddb(root: str | Path, folds: tuple[int, ...] = tuple(range(1, 11))) -> list[Annotation]:
    """FDDB annotations of the given folds (1..10), from `root/FDDB-folds/` (or root itself).

    Image paths are relative to root, with `.jpg` (FDDB's `originalPics/` layout is tried first).
    """
    root = Path(root)
    folder = root / "FDDB-folds" if (root / "FDDB-folds").is_dir() else root
    out: list[Annotation] = []
    for k in folds:
        path = folder / f"FDDB-fold-{k:02d}-ellipseList.txt"
        if not path.exists():
            raise Tf2rtError(f"FDDB fold file {path} not found; point at the folder holding FDDB-folds/")
        for ann in read_fddb_ellipses(path):
            ann.extra["fold"] = k
            pics = "originalPics/" if (root / "originalPics").is_dir() else ""
            ann.image = f"{pics}{ann.image}.jpg"
            out.append(ann)
    return out


def _fddb_key(image: str) -> str:
    """FDDB's image id: the path without originalPics/ and the .jpg suffix."""
    key = image[len("originalPics/"):] if image.startswith("originalPics/") else image
    return key[:-4] if key.endswith(".jpg") else key


def write_fddb_detections(annotations: list[Annotation], detections: dict[str, np.ndarray],
                          folder: str | Path) -> list[Path]:
    """Detections in FDDB's submission format, one `fold-XX-out.txt` per fold (image id, count,
    then `left top width height score` lines), for the official evaluation program."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    by_fold: dict[int, list[str]] = {}
    for ann in annotations:
        dets = np.asarray(detections.get(ann.image, np.zeros((0, 5))), np.float64).reshape(-1, 5)
        lines = by_fold.setdefault(int(ann.extra.get("fold", 1)), [])
        lines += [_fddb_key(ann.image), str(len(dets))]
        lines += [" ".join(f"{v:.6f}" for v in d) for d in dets]
    out = []
    for fold, lines in sorted(by_fold.items()):
        path = folder / f"fold-{fold:02d}-out.txt"
        write_text(path, "\n".join(lines) + "\n")  # atomic: an old result file survives a failed write
        out.append(path)
    return out


def read_fddb_detections(paths: list[str | Path], annotations: list[Annotation] | None = None) -> dict[str, np.ndarray]:
    """Detections in FDDB's rectangle format (as written by any FDDB submission) -> {image: [k, 5]}.

    With annotations, keys are mapped to their image paths (originalPics/....jpg)."""
    out: dict[str, np.ndarray] = {}
    for path in paths:
        for name, rows in _records(Path(path), "detections", 5, "left top width height score",
                                   note="; ellipse detections are not supported"):
            out[name] = np.array(rows, np.float64).reshape(-1, 5)
    if annotations is not None:
        keys = {_fddb_key(a.image): a.image for a in annotations}
        out = {keys.get(k, k): v for k, v in out.items()}
    return out


# -- WIDER FACE --------------------------------------------------------------------------
def read_wider_gt(path: str | Path) -> list[Annotation]:
    """WIDER FACE `wider_face_*_bbx_gt.txt`: name, count, then `x y w h` + six attribute columns.

    Faces marked invalid are ignored; images with no face carry one all-zero line, skipped.
    """
    hint = "x y w h blur expression illumination invalid occlusion pose"
    out: list[Annotation] = []
    for name, rows in _records(Path(path), "faces", 10, hint, min_columns=4, zero_placeholder=True):
        arr = np.array([(r + [0.0] * 10)[:10] for r in rows], np.float64).reshape(-1, 10)
        ann = Annotation(image=name, boxes=arr[:, :4], attributes=arr[:, 4:],
                         ignore=arr[:, 4 + WIDER_ATTRIBUTES.index("invalid")] > 0)
        ann.extra["event"] = name.split("/")[0]
        out.append(ann)
    return out


def read_wider_split(mat_path: str | Path) -> dict[str, np.ndarray]:
    """Official WIDER `wider_<setting>_val.mat`: image stem -> 0-based indices of faces to keep."""
    from ..._optional import require

    scipy_io = require("scipy.io", "faces", "reading WIDER .mat split files")
    try:
        mat = scipy_io.loadmat(str(mat_path))
    except (OSError, ValueError, TypeError) as exc:
        raise FormatError(f"cannot read WIDER split file {mat_path}: {exc}") from exc
    if "file_list" not in mat or "gt_list" not in mat:
        raise FormatError(f"{mat_path} lacks file_list/gt_list; expected wider_<easy|medium|hard>_val.mat")
    keep: dict[str, np.ndarray] = {}
    files, gts = mat["file_list"], mat["gt_list"]
    for ev in range(files.shape[0]):
        ev_files, ev_gts = files[ev][0], gts[ev][0]
        for j in range(ev_files.shape[0]):
            stem = str(np.asarray(ev_files[j][0]).ravel()[0])
            idx = np.asarray(ev_gts[j][0], np.int64).ravel() - 1  # MATLAB is 1-based
            keep[stem] = idx
    return keep


def apply_wider_split(anns: list[Annotation], keep: dict[str, np.ndarray]) -> list[Annotation]:
    """Copies of the annotations where faces outside `keep` are ignored (the official protocol)."""
    out = []
    for a in anns:
        stem = re.sub(r"\.[A-Za-z]+$", "", a.image.split("/")[-1])
        idx = keep.get(stem)
        if idx is None:
            continue
        ignore = np.ones(len(a.boxes), bool)
        ignore[idx[(idx >= 0) & (idx < len(a.boxes))]] = False
        out.append(Annotation(image=a.image, boxes=a.boxes, ellipses=a.ellipses, ignore=ignore,
                              attributes=a.attributes, extra=dict(a.extra)))
    return out


def read_wider(root: str | Path, setting: str = "all", split: str = "val") -> list[Annotation]:
    """WIDER FACE annotations from root (the folder with wider_face_split/ and WIDER_val/).

    setting "all" keeps every valid face; "easy"/"medium"/"hard" need the official
    `wider_<setting>_val.mat` from the evaluation toolkit (root or root/eval_tools/ground_truth).
    """
    root = Path(root)
    gt = next((p for p in (root / "wider_face_split" / f"wider_face_{split}_bbx_gt.txt",
                           root / f"wider_face_{split}_bbx_gt.txt") if p.exists()), None)
    if gt is None:
        raise Tf2rtError(f"WIDER FACE ground truth wider_face_{split}_bbx_gt.txt not found under {root}")
    anns = read_wider_gt(gt)
    images = root / f"WIDER_{split}" / "images"
    for a in anns:
        a.image = str(Path(f"WIDER_{split}") / "images" / a.image) if images.is_dir() else a.image
    if setting == "all":
        return anns
    if setting not in WIDER_SETTINGS:
        raise Tf2rtError(f"unknown WIDER setting {setting!r}; use all, easy, medium or hard")
    mat = next((p for p in (root / f"wider_{setting}_{split}.mat",
                            root / "eval_tools" / "ground_truth" / f"wider_{setting}_{split}.mat",
                            root / "ground_truth" / f"wider_{setting}_{split}.mat") if p.exists()), None)
    if mat is None:
        raise Tf2rtError(f"the {setting} setting needs the official wider_{setting}_{split}.mat (WIDER evaluation "
                         f"toolkit, eval_tools/ground_truth/) under {root}; or use setting 'all'")
    return apply_wider_split(anns, read_wider_split(mat))


# -- LFW subset --------------------------------------------------------------------------
def lfw_subset() -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's LFW subset as (RGB uint8 patches [200, 25, 25, 3], labels [200]: 1 face, 0 non-face)."""
    from ..._optional import require

    gray = require("skimage.data", "faces", "the LFW subset").lfw_subset()  # 100 faces then 100 non-faces, floats in [0, 1]
    patches = (np.repeat(gray[..., None], 3, axis=-1) * 255).round().astype(np.uint8)
    labels = np.r_[np.ones(100, np.int64), np.zeros(len(gray) - 100, np.int64)]
    return patches, labels

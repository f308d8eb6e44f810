"""PNG plots of evaluation curves and detections (matplotlib / OpenCV imported on use)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .detectors import Face
from .runs import EvalResult


def plot_curves(result: EvalResult, path: str | Path) -> Path:
    """FDDB: discrete (solid) and continuous (dashed) TPR vs false positives; WIDER: precision-recall;
    LFW subset: ROC. One line per detector, the headline number in the legend."""
    from ..._optional import require

    matplotlib = require("matplotlib", "faces", "plotting curves (`tf2rt faces eval --plot`)")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5), dpi=100)
    for row in result.rows:
        name = str(row["detector"])
        c = result.curves.get(name, {})
        metric = result.metric if result.metric in row else None
        label = f"{name} ({result.titles()[metric]} {row[metric]:.3f})" if metric else name
        if result.dataset == "fddb":
            # "best TPR with at most x false positives", held flat up to max_fp (as the AUC integrates it)
            end = max(float(result.notes.get("max_fp", 0)), float(np.max(c["false_positives"], initial=0)))
            fp = np.r_[0, c["false_positives"], end]
            color = None  # the continuous curve reuses the discrete curve's colour
            for key, style in (("tpr_discrete", "-"), ("tpr_continuous", "--")):
                tpr = np.maximum.accumulate(np.r_[0, c[key]]) if len(c[key]) else np.zeros(1)
                (line,) = ax.step(fp, np.r_[tpr, tpr[-1]], where="post", linestyle=style,
                                  label=label if style == "-" else None, color=color)
                color = line.get_color()
        elif result.dataset == "wider":
            ax.plot(c["recall"], c["precision"], label=label)
        else:
            ax.plot(c["fpr"], c["tpr"], label=label)
    if result.dataset == "fddb":
        max_fp = float(result.notes.get("max_fp", 1000))
        ax.set_xlim(-0.01 * max_fp, max_fp)
        ax.set(xlabel="false positives", ylabel="true positive rate",
               title="FDDB ROC (solid: discrete, dashed: continuous)")
    elif result.dataset == "wider":
        ax.set(xlabel="recall", ylabel="precision", title=f"WIDER FACE ({result.notes.get('setting')})")
    else:
        ax.plot([0, 1], [0, 1], color="0.8", linewidth=1)
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title="LFW subset: face vs non-face")
    ax.set_ylim(0, 1.01)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    path = Path(path)
    from ...outputs import atomic_output

    try:
        with atomic_output(path, what="plot") as tmp:  # the suffix is kept: it picks the format
            fig.savefig(tmp, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def draw_faces(image: np.ndarray, faces: Sequence[Face], path: str | Path, inputs: Sequence[str | Path] = ()) -> Path:
    """Save the RGB image with boxes, scores and landmarks drawn on it (never over one of `inputs`)."""
    from ..._optional import require

    cv2 = require("cv2", "faces", "drawing faces (`tf2rt faces detect --draw`)")

    canvas = cv2.cvtColor(np.ascontiguousarray(image[:, :, :3]).astype(np.uint8), cv2.COLOR_RGB2BGR)
    for f in faces:
        x, y, w, h = (int(round(v)) for v in f.box)
        cv2.rectangle(canvas, (x, y), (x + w, y + h), (0, 200, 0), 2)
        cv2.putText(canvas, f"{f.score:.3f}", (x, max(y - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 200, 0), 1)
        for px, py in (f.landmarks or {}).values():
            cv2.circle(canvas, (int(round(px)), int(round(py))), 2, (0, 0, 255), -1)
    path = Path(path)
    from ...errors import Tf2rtError
    from ...outputs import atomic_output

    with atomic_output(path, inputs, "drawing") as tmp:  # the suffix is kept: OpenCV picks the format from it
        if not cv2.imwrite(str(tmp), canvas):
            raise Tf2rtError(f"cannot write {path}; use a .png or .jpg file name in an existing folder")
    return path

"""Real photos with faces that installed packages ship (no downloads), for detector tests."""

from __future__ import annotations

import numpy as np


def grace_hopper() -> np.ndarray:
    import matplotlib.cbook
    import matplotlib.image

    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return np.asarray(matplotlib.image.imread(path))


def lfw_mosaic(cols: int = 5, rows: int = 2, cell: int = 100) -> np.ndarray:
    """rows x cols faces from scikit-image's LFW subset, each upscaled to cell x cell, as one RGB image."""
    import skimage.data
    import skimage.transform

    faces = skimage.data.lfw_subset()[: rows * cols]
    grid = np.concatenate(
        [np.concatenate([skimage.transform.resize(faces[r * cols + c], (cell, cell)) for c in range(cols)], axis=1)
         for r in range(rows)],
        axis=0,
    )
    return (np.stack([grid] * 3, axis=-1) * 255).round().astype(np.uint8)


def photos() -> dict[str, np.ndarray]:
    """name -> RGB uint8 image; includes photos without faces (coffee, chelsea the cat)."""
    import skimage.data

    import cv2

    astronaut = skimage.data.astronaut()
    return {
        "astronaut": astronaut,
        # odd, non-square size: exercises SAME pooling on odd sizes at every pyramid level
        "astronaut_odd": cv2.resize(astronaut, (389, 611), interpolation=cv2.INTER_AREA),
        "camera": np.stack([skimage.data.camera()] * 3, axis=-1),
        "grace_hopper": grace_hopper(),
        "lfw_mosaic": lfw_mosaic(),
        "coffee": skimage.data.coffee(),
        "chelsea": skimage.data.chelsea(),
    }


def match_faces(ref: np.ndarray, ours: np.ndarray) -> list[tuple[int, int, float]]:
    """Pairs (i_ref, j_ours, IoU) by best IoU, one-to-one; boxes are [x1, y1, x2, y2] rows."""
    from tf2rt.apps.faces.boxes import iou_matrix

    iou = iou_matrix(ref[:, :4], ours[:, :4])
    pairs = []
    used: set[int] = set()
    for i in range(len(ref)):
        order = [j for j in np.argsort(-iou[i]) if j not in used]
        if order:
            j = int(order[0])
            used.add(j)
            pairs.append((i, j, float(iou[i, j])))
    return pairs

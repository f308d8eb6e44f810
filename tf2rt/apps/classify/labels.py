"""Class label files: one label per line, 1000 ImageNet classes or 1001 with "background" first.

TF-slim classifiers (inception, mobilenet, resnet_v2) have 1001 outputs (0 = background);
vgg and resnet_v1 have 1000. Either label file works with either model: indices are shifted
by one where the counts differ, as the TF-slim tools do.
"""

from __future__ import annotations

import re
from pathlib import Path

from ...errors import FormatError

MAX_LABEL_BYTES = 16 << 20
_PREFIX = re.compile(r"^\s*(?:\d+\s*[:\t]\s*|n\d{8}\s+)")  # "12: name", "12\tname", "n01440764 name"


def load_labels(path: str | Path) -> list[str]:
    """Labels from a text file (one per line; "index: label" and synset-id prefixes are stripped)."""
    p = Path(path)
    if not p.is_file():
        raise FormatError(f"{p}: no such label file")
    if p.stat().st_size > MAX_LABEL_BYTES:
        raise FormatError(f"{p}: {p.stat().st_size} bytes is too large for a label file")
    text = p.read_bytes().decode("utf-8", "replace")
    labels = [_PREFIX.sub("", line).strip().strip("'\",") for line in text.splitlines()]
    while labels and not labels[-1]:
        labels.pop()
    if not labels:
        raise FormatError(f"{p}: the label file is empty")
    return labels


def label_for(index: int, labels: list[str] | None, num_classes: int) -> str:
    """The label of output `index` of a model with `num_classes` outputs."""
    if not labels:
        return str(index)
    offset = 0
    if len(labels) == num_classes + 1:  # 1001 labels (background first), 1000-class model
        offset = 1
    elif len(labels) + 1 == num_classes:  # 1000 labels, 1001-class model: 0 is background
        offset = -1
    i = index + offset
    if i < 0:
        return "background"
    return labels[i] if i < len(labels) else str(index)

"""Optional dependencies: import them where a feature needs them, or say in one line what to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import Tf2rtError

# extra -> what it installs (for messages; pyproject.toml is the source of truth)
EXTRAS = {
    "keras": "h5py",
    "faces": "OpenCV, SciPy, lz4, mtcnn (its weight files), matplotlib, scikit-image",
    "classify": "Pillow",
    "cuda": "PyTorch with CUDA and CuPy",
}


class MissingDependencyError(Tf2rtError, ImportError):
    """An optional package a feature needs is not installed; the message names the extra to install."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import `module` for `feature`, or raise MissingDependencyError naming the pip extra that installs it.

    >>> plt = require("matplotlib.pyplot", "faces", "`tf2rt faces eval --plot`")
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or module.split(".")[0]
        raise MissingDependencyError(
            f"{feature} needs the {missing.split('.')[0]!r} package, which is not installed: "
            f"pip install 'tf2rt[{extra}]'") from None


def available(module: str) -> bool:
    """True when `module` can be imported (without importing anything else on failure)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


__all__ = ["EXTRAS", "MissingDependencyError", "available", "require"]

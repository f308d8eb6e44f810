"""Imports of the independent implementations tests compare against.

A missing oracle is a test failure with a message saying how to install it, never a skip.
"""

from __future__ import annotations

import importlib

import pytest

_INSTALL = "install the test dependencies: pip install -e '.[test]' (see README)"


def _require(module: str):
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - only on a broken test setup
        pytest.fail(f"test oracle {module!r} is not installed ({exc}); {_INSTALL}", pytrace=False)


def tf():
    tf = _require("tensorflow")
    tf.get_logger().setLevel("ERROR")
    return tf


def keras():
    """Keras 3 (the `keras` package), as TF 2.16+ users have it."""
    return _require("keras")


def tf_keras():
    """Keras 2 (`tf_keras`), for models saved by older TensorFlow versions."""
    return _require("tf_keras")


def torch():
    return _require("torch")


def onnxruntime():
    return _require("onnxruntime")

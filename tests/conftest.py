"""Shared test setup.

TensorFlow is the oracle: tests that need it use the `tf` fixture (or `oracles.tf()`),
which FAILS when TensorFlow is missing instead of skipping, so a green run always means
the outputs were compared with real TensorFlow.
"""

from __future__ import annotations

import os
import sys

# TF1 cells (tf.compat.v1.nn.rnn_cell.*) live in tf_keras; Keras 3 stays importable as `keras`.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF2RT_NO_PROGRESS", "1")

sys.path.insert(0, os.path.dirname(__file__))

import pytest  # noqa: E402

import oracles  # noqa: E402


@pytest.fixture(scope="session")
def tf():
    return oracles.tf()


@pytest.fixture(scope="session")
def tf1(tf):
    """TensorFlow with the TF1 API (graphs, sessions) available as `tf.compat.v1`."""
    return tf.compat.v1


@pytest.fixture(scope="session")
def torch():
    return oracles.torch()

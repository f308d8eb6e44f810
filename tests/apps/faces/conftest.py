"""Fixtures for the face tests: the `mtcnn` package (on TensorFlow) is the oracle."""

from __future__ import annotations

import pytest

import oracles


@pytest.fixture(scope="session")
def mtcnn_pkg(tf):
    """The mtcnn package's detector (P/R/O-Net Keras models with its pretrained weights)."""
    mtcnn = oracles._require("mtcnn")
    return mtcnn.MTCNN()


@pytest.fixture(scope="session")
def keras_nets(mtcnn_pkg):
    """The package's three Keras models as plain callables returning numpy arrays."""
    pn, rn, on = (stage.model for stage in mtcnn_pkg.stages)

    def wrap(model):
        return lambda x: [o.numpy() for o in model(x)]

    return wrap(pn), wrap(rn), wrap(on)


@pytest.fixture(scope="session")
def photos():
    from photos import photos as load

    return load()

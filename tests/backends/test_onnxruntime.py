"""The onnxruntime backend: options, providers, io_binding, the fast path, lifecycle."""

from __future__ import annotations

import numpy as np
import pytest

from tf2rt.backends import BACKENDS, available_backends, get_backend, load
from tf2rt.engine import build_engine
from tf2rt.errors import Tf2rtError, UnsupportedError
from tf2rt.network import Network


@pytest.fixture(scope="module")
def engine():
    net = Network("fc")
    x = net.add_input("x", "float32", (None, 3))
    k = np.arange(6, dtype=np.float32).reshape(3, 2) / 7
    fc = net.add_fully_connected(x, 2, k, np.array([0.5, -0.5], np.float32), name="fc")
    net.mark_output(net.add_activation(fc.output, "tanh", name="y").output)
    return build_engine(net)


def _want(x):
    return np.tanh(x @ (np.arange(6).reshape(3, 2) / 7) + [0.5, -0.5])


def test_registry():
    assert set(BACKENDS) >= {"onnxruntime", "reference", "cuda"}
    assert {"onnxruntime", "reference"} <= set(available_backends())
    with pytest.raises(Tf2rtError, match="unknown backend 'tvm'"):
        get_backend("tvm")


@pytest.mark.parametrize("opts", [{}, {"threads": 1}, {"io_binding": True}, {"optimization": "none"},
                                  {"providers": "cpu"}, {"providers": ["CPUExecutionProvider"], "inter_op_threads": 1},
                                  {"threads": 2, "spinning": False}])
def test_options(engine, opts):
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    with load(engine, "onnxruntime", **opts) as r:
        np.testing.assert_allclose(r.run({"x": x})["y"], _want(x), atol=1e-6)
        np.testing.assert_allclose(r.run_list({"x": x})[0], _want(x), atol=1e-6)
        np.testing.assert_allclose(r(x), _want(x), atol=1e-6)
        assert "CPUExecutionProvider" in r.providers


def test_bad_options(engine):
    with pytest.raises(Tf2rtError, match="unknown onnxruntime backend option"):
        load(engine, "onnxruntime", thread=2)
    with pytest.raises(UnsupportedError, match="not available here"):
        load(engine, "onnxruntime", providers="FooExecutionProvider")
    with pytest.raises(Tf2rtError, match="optimization must be one of"):
        load(engine, "onnxruntime", optimization="max")


def test_closed_runner(engine):
    r = load(engine, "onnxruntime")
    r.close()
    with pytest.raises(Tf2rtError, match="closed"):
        r.run({"x": np.zeros((1, 3), np.float32)})


def test_lists_and_ints_are_accepted_losslessly(engine):
    out = engine.run({"x": [[0.0, 1.0, 2.0]]})["y"]
    np.testing.assert_allclose(out, _want(np.array([[0.0, 1.0, 2.0]])), atol=1e-6)


@pytest.mark.parametrize("backend", ["onnxruntime", "reference"])
def test_runtime_failure_is_a_tf2rt_error(backend):
    net = Network("g")
    i = net.add_input("i", "int32", (2,))
    table = net.add_constant((3, 2), np.arange(6, dtype=np.float32).reshape(3, 2))
    net.mark_output(net.add_gather(table.output, i, name="embed").output)
    engine = build_engine(net)
    with pytest.raises(Tf2rtError, match="embed|out of"):
        engine.run({"i": np.array([0, 5], np.int32)}, backend=backend)

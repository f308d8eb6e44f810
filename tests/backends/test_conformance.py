"""Every layer type on every CPU backend, against an independent oracle.

Oracles: torch.nn.LSTM/GRU/RNN (weights converted per gate to torch's layout by hand,
here in the test), numpy formulas for the simple layers, and an independent numpy
LSTM/GRU step for the features torch lacks (peepholes, hard_sigmoid, clip, reset-before GRU).
Every gate and bias has distinct random values.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

import oracles
from tf2rt.engine import build_engine
from tf2rt.errors import ShapeError, UnsupportedError
from tf2rt.network import Network
from tf2rt.network.layers_rnn import CellOptions
from helpers.rnn_networks import GATES, TORCH_ORDER, build_rnn, rnn_feeds, torch_rnn  # noqa: F401
from helpers.rnn_networks import rand as _rand

# The cuda backend joins every backend test; it is skipped where no GPU (or no PyTorch/CuPy) is found.
BACKENDS = ["onnxruntime", "reference", pytest.param("cuda", marks=pytest.mark.gpu)]


def _cuda_available() -> bool:
    try:
        from tf2rt.backends import get_backend

        return bool(get_backend("cuda").available())
    except Exception:  # noqa: BLE001 - a probe: a backend that cannot be imported is unavailable
        return False


@pytest.fixture(autouse=True)
def _gpu_backend_needs_a_gpu(request):
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("backend") == "cuda" and not _cuda_available():
        pytest.skip("the cuda backend needs an NVIDIA GPU with PyTorch (CUDA) and CuPy")
CASES = [(op, layers, bidir, seq, states)
         for op in ("lstm", "gru", "relu", "tanh")
         for layers, bidir in ((1, False), (2, True), (3, False))
         for seq, states in ((False, False), (True, True))]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op,layers,bidir,seq,states", CASES)
def test_rnn_matches_torch(torch, backend, op, layers, bidir, seq, states):
    H, E, N, S = 6, 4, 3, 5
    seed = zlib.crc32(repr((op, layers, bidir, seq, states)).encode()) % 1000  # stable across runs
    engine, w = build_rnn(op, layers, bidir, H, E, N, S, seed, seq=seq, states=states)
    feeds = rnn_feeds(op, layers, bidir, H, E, N, S, seed, seq, states)
    want = torch_rnn(torch, op, layers, bidir, H, E, w, feeds)
    runner = engine.runner(backend)
    got = runner.run(feeds)
    assert set(got) == set(want)
    # cuDNN's fp32 recurrent kernels differ from exact fp32 by up to ~2e-5 here (H100, all
    # cells); every other path - onnxruntime, the reference, the persistent kernel, the step
    # loop - stays within 1e-5.
    on_cudnn = backend == "cuda" and any(d.get("engine") == "cudnn" for d in runner.describe()["recurrent"])
    for k in want:
        np.testing.assert_allclose(got[k], want[k], atol=1e-4 if on_cudnn else 1e-5, rtol=0, err_msg=k)
    if seq:  # outputs past each sequence's length are zero
        for b, n in enumerate(feeds["lens"]):
            assert not got["y"][b, n:].any()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", ["lstm", "gru"])
def test_rnn_fp16_within_2e2(torch, backend, op):
    H, E, N, S = 8, 5, 2, 6
    engine, w = build_rnn(op, 2, True, H, E, N, S, 7, states=True, precision="fp16")
    feeds = rnn_feeds(op, 2, True, H, E, N, S, 7, False, True)
    want = torch_rnn(torch, op, 2, True, H, E, w, feeds)
    got = engine.run(feeds, backend=backend)
    for k in want:
        assert got[k].dtype == np.float32
        np.testing.assert_allclose(got[k], want[k], atol=2e-2, rtol=0, err_msg=k)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rnn_skip_input_mode(torch, backend):
    H, N, S = 5, 2, 4
    engine, w = build_rnn("lstm", 2, False, H, H, N, S, 3, input_mode="skip")
    feeds = rnn_feeds("lstm", 2, False, H, H, N, S, 3, False, False)
    want = torch_rnn(torch, "lstm", 2, False, H, H, w, feeds)  # identity W in torch for layer 0
    got = engine.run(feeds, backend=backend)
    np.testing.assert_allclose(got["y"], want["y"], atol=1e-5, rtol=0)


# --- features torch lacks: an independent numpy step -------------------------------------
def _sig(x):
    return 1 / (1 + np.exp(-x))


def np_lstm_dir(x, W, R, Wb, Rb, P, reverse, gate_fn, clip, h, c):
    """One direction of a peephole LSTM over x [N, S, E]; W etc. dicts by gate name."""
    S = x.shape[1]
    ys = np.zeros(x.shape[:2] + (h.shape[-1],), np.float64)
    cl = (lambda v: np.clip(v, -clip, clip)) if clip else (lambda v: v)
    for t in (range(S - 1, -1, -1) if reverse else range(S)):
        pre = {g: x[:, t] @ W[g].T + h @ R[g].T + Wb[g] + Rb[g] for g in W}
        i = gate_fn(cl(pre["input"] + (P["input"] * c if P else 0)))
        f = gate_fn(cl(pre["forget"] + (P["forget"] * c if P else 0)))
        c = f * c + i * np.tanh(cl(pre["cell"]))
        o = gate_fn(cl(pre["output"] + (P["output"] * c if P else 0)))
        h = o * np.tanh(c)
        ys[:, t] = h
    return ys, h, c


def np_gru_dir(x, W, R, Wb, Rb, reverse, act, h):
    """Reset-before GRU (TF GRUCell form): h' = act(W_h x + R_h (r*h) + Wb_h + Rb_h)."""
    S = x.shape[1]
    ys = np.zeros(x.shape[:2] + (h.shape[-1],), np.float64)
    for t in (range(S - 1, -1, -1) if reverse else range(S)):
        xt = x[:, t]
        z = _sig(xt @ W["update"].T + h @ R["update"].T + Wb["update"] + Rb["update"])
        r = _sig(xt @ W["reset"].T + h @ R["reset"].T + Wb["reset"] + Rb["reset"])
        hh = act(xt @ W["hidden"].T + (r * h) @ R["hidden"].T + Wb["hidden"] + Rb["hidden"])
        h = (1 - z) * hh + z * h
        ys[:, t] = h
    return ys, h


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("feature", ["peepholes", "hard_sigmoid", "clip"])
def test_lstm_extensions(backend, feature):
    H, E, N, S = 5, 3, 2, 6
    opts = {}

    def options(i, rng):
        if feature == "peepholes":
            o = CellOptions(peepholes={g: _rand(rng, H) for g in ("input", "forget", "output")})
        elif feature == "hard_sigmoid":  # different alpha/beta per direction
            o = CellOptions(recurrent_activation="hard_sigmoid", recurrent_alpha=0.2 + 0.05 * i,
                            recurrent_beta=0.5 - 0.1 * i)
        else:
            o = CellOptions(clip=0.6)
        opts[i] = o
        return o

    engine, w = build_rnn("lstm", 1, True, H, E, N, S, 11, options=options)
    x = rnn_feeds("lstm", 1, True, H, E, N, S, 11, False, False)["x"]
    got = engine.run({"x": x}, backend=backend)
    ys, hs = [], []
    for d in range(2):
        o = opts[d]
        gate = (lambda v, a=o.recurrent_alpha, b=o.recurrent_beta: np.clip(a * v + b, 0, 1)) \
            if o.recurrent_activation == "hard_sigmoid" else _sig
        parts = [{g: w[d, g][j].astype(np.float64) for g in GATES["lstm"]} for j in range(4)]
        y, h, _ = np_lstm_dir(x.astype(np.float64), *parts, o.peepholes, d == 1, gate, o.clip,
                              np.zeros((N, H)), np.zeros((N, H)))
        ys.append(y)
        hs.append(h)
    np.testing.assert_allclose(got["y"], np.concatenate(ys, -1), atol=1e-5)
    np.testing.assert_allclose(got["h_n"], np.stack(hs, 1), atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_gru_reset_before(backend, act):
    H, E, N, S = 5, 3, 2, 6
    engine, w = build_rnn("gru", 1, True, H, E, N, S, 5,
                          options=lambda i, rng: CellOptions(linear_before_reset=False, activation=act))
    x = rnn_feeds("gru", 1, True, H, E, N, S, 5, False, False)["x"]
    got = engine.run({"x": x}, backend=backend)
    fn = np.tanh if act == "tanh" else (lambda v: np.maximum(v, 0))
    ys, hs = [], []
    for d in range(2):
        parts = [{g: w[d, g][j].astype(np.float64) for g in GATES["gru"]} for j in range(4)]
        y, h = np_gru_dir(x.astype(np.float64), *parts, d == 1, fn, np.zeros((N, H)))
        ys.append(y)
        hs.append(h)
    np.testing.assert_allclose(got["y"], np.concatenate(ys, -1), atol=1e-5)
    np.testing.assert_allclose(got["h_n"], np.stack(hs, 1), atol=1e-5)


# --- simple layers vs numpy formulas ---------------------------------------------------
def _one_layer(build, inputs, precision="fp32"):
    net = Network("one")
    ts = [net.add_input(n, str(a.dtype), a.shape) for n, a in inputs.items()]
    outs = build(net, *ts)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    for j, t in enumerate(outs):
        net.mark_output(t, f"out{j}")
    return build_engine(net, precision)


RNG = np.random.default_rng(42)
A = RNG.standard_normal((2, 3, 4)).astype(np.float32)
B = (RNG.standard_normal((3, 4)) + 2.0).astype(np.float32)
POS = (np.abs(RNG.standard_normal((2, 3, 4))) + 0.1).astype(np.float32)
K = RNG.standard_normal((4, 5)).astype(np.float32)
BIAS = RNG.standard_normal(5).astype(np.float32)
TABLE = RNG.standard_normal((7, 3)).astype(np.float32)
IDX = np.array([[0, 6, 3], [2, 2, 5]], np.int32)


def _sp(v, a, b):
    return a * np.log1p(np.exp(b * v))


SIMPLE = {
    "elementwise_sum": (lambda n, a, b: n.add_elementwise(a, b, "sum").output, {"a": A, "b": B}, lambda a, b: a + b),
    "elementwise_prod": (lambda n, a, b: n.add_elementwise(a, b, "prod").output, {"a": A, "b": B}, lambda a, b: a * b),
    "elementwise_sub": (lambda n, a, b: n.add_elementwise(a, b, "sub").output, {"a": A, "b": B}, lambda a, b: a - b),
    "elementwise_div": (lambda n, a, b: n.add_elementwise(a, b, "div").output, {"a": A, "b": B}, lambda a, b: a / b),
    "elementwise_max": (lambda n, a, b: n.add_elementwise(a, b, "max").output, {"a": A, "b": B}, np.maximum),
    "elementwise_min": (lambda n, a, b: n.add_elementwise(a, b, "min").output, {"a": A, "b": B}, np.minimum),
    "elementwise_pow": (lambda n, a, b: n.add_elementwise(a, b, "pow").output, {"a": POS, "b": B}, np.power),
    "relu": (lambda n, a: n.add_activation(a, "relu").output, {"a": A}, lambda a: np.maximum(a, 0)),
    "sigmoid": (lambda n, a: n.add_activation(a, "sigmoid").output, {"a": A}, _sig),
    "tanh": (lambda n, a: n.add_activation(a, "tanh").output, {"a": A}, np.tanh),
    "leaky_relu": (lambda n, a: n.add_activation(a, "leaky_relu", alpha=0.3).output, {"a": A},
                   lambda a: np.where(a >= 0, a, 0.3 * a)),
    "elu": (lambda n, a: n.add_activation(a, "elu", alpha=0.7).output, {"a": A},
            lambda a: np.where(a >= 0, a, 0.7 * (np.exp(a) - 1))),
    "selu": (lambda n, a: n.add_activation(a, "selu", alpha=1.5, beta=1.1).output, {"a": A},
             lambda a: 1.1 * np.where(a > 0, a, 1.5 * (np.exp(a) - 1))),
    "softsign": (lambda n, a: n.add_activation(a, "softsign").output, {"a": A}, lambda a: a / (1 + np.abs(a))),
    "softplus": (lambda n, a: n.add_activation(a, "softplus", alpha=1.5, beta=0.5).output, {"a": A},
                 lambda a: _sp(a, 1.5, 0.5)),
    "clip": (lambda n, a: n.add_activation(a, "clip", alpha=-0.5, beta=0.4).output, {"a": A},
             lambda a: np.clip(a, -0.5, 0.4)),
    "hard_sigmoid": (lambda n, a: n.add_activation(a, "hard_sigmoid", alpha=0.3, beta=0.4).output, {"a": A},
                     lambda a: np.clip(0.3 * a + 0.4, 0, 1)),
    "scaled_tanh": (lambda n, a: n.add_activation(a, "scaled_tanh", alpha=1.7, beta=0.6).output, {"a": A},
                    lambda a: 1.7 * np.tanh(0.6 * a)),
    "thresholded_relu": (lambda n, a: n.add_activation(a, "thresholded_relu", alpha=0.2).output, {"a": A},
                         lambda a: np.where(a > 0.2, a, 0)),
    "gelu_tanh": (lambda n, a: n.add_activation(a, "gelu_tanh").output, {"a": A},
                  lambda a: 0.5 * a * (1 + np.tanh(np.sqrt(2 / np.pi) * (a + 0.044715 * a ** 3)))),
    "matmul": (lambda n, a: n.add_matrix_multiply(a, "none", n.add_constant(K.shape, K).output, "none").output,
               {"a": A}, lambda a: a @ K),
    "matmul_transpose": (lambda n, a, b: n.add_matrix_multiply(a, "transpose", b, "transpose").output,
                         {"a": A, "b": np.ascontiguousarray(K.T[:, :3])}, lambda a, b: np.swapaxes(a, -1, -2) @ b.T),
    "fully_connected": (lambda n, a: n.add_fully_connected(a, 5, K, BIAS).output, {"a": A}, lambda a: a @ K + BIAS),
    "fully_connected_nk": (lambda n, a: n.add_fully_connected(a, 5, K.T.copy(), BIAS, kernel_layout="nk").output,
                           {"a": A}, lambda a: a @ K + BIAS),
    "softmax": (lambda n, a: n.add_softmax(a, axis=1).output, {"a": A},
                lambda a: np.exp(a) / np.exp(a).sum(1, keepdims=True)),
    "topk_max": (lambda n, a: list(n.add_topk(a, "max", 2, axis=-1).outputs), {"a": A},
                 lambda a: (np.sort(a, -1)[..., ::-1][..., :2], np.argsort(-a, -1)[..., :2].astype(np.int32))),
    "topk_min": (lambda n, a: list(n.add_topk(a, "min", 3, axis=1).outputs), {"a": A},
                 lambda a: (np.sort(a, 1)[:, :3], np.argsort(a, 1)[:, :3].astype(np.int32))),
    "gather": (lambda n, i: n.add_gather(n.add_constant(TABLE.shape, TABLE).output, i, 0).output, {"i": IDX},
               lambda i: TABLE[i]),
    "shuffle": (lambda n, a: n.add_shuffle(a, (0, -1), first_transpose=(1, 0, 2), second_transpose=(1, 0)).output,
                {"a": A}, lambda a: a.transpose(1, 0, 2).reshape(3, -1).T),
    "concatenation": (lambda n, a, b: n.add_concatenation([a, b, a], axis=1).output, {"a": A, "b": POS[:, :2]},
                      lambda a, b: np.concatenate([a, b, a], 1)),
    "slice": (lambda n, a: n.add_slice(a, (1, 2, 0), (1, 2, 2), (1, -1, 2)).output, {"a": A},
              lambda a: a[1:2, 2::-1, 0::2][:, :2]),
    "scale_channel": (lambda n, a: n.add_scale(a, "channel", shift=[0.1, 0.2, 0.3], scale=[1.0, -2.0, 0.5]).output,
                      {"a": A}, lambda a: a * np.array([1, -2, .5], np.float32)[:, None] + np.array([.1, .2, .3])[:, None]),
    "scale_uniform_power": (lambda n, a: n.add_scale(a, "uniform", shift=[0.5], scale=[2.0], power=[2.0]).output,
                            {"a": POS}, lambda a: (a * 2 + 0.5) ** 2),
    "unary_exp": (lambda n, a: n.add_unary(a, "exp").output, {"a": A}, np.exp),
    "unary_sqrt": (lambda n, a: n.add_unary(a, "sqrt").output, {"a": POS}, np.sqrt),
    "unary_abs": (lambda n, a: n.add_unary(a, "abs").output, {"a": A}, np.abs),
    "unary_recip": (lambda n, a: n.add_unary(a, "recip").output, {"a": POS}, lambda a: 1 / a),
    "unary_floor": (lambda n, a: n.add_unary(a, "floor").output, {"a": A * 3}, np.floor),
    "reduce_sum": (lambda n, a: n.add_reduce(a, "sum", [1, 2]).output, {"a": A}, lambda a: a.sum((1, 2))),
    "reduce_avg_mask": (lambda n, a: n.add_reduce(a, "avg", 0b100, keep_dims=True).output, {"a": A},
                        lambda a: a.mean(2, keepdims=True)),
    "reduce_max": (lambda n, a: n.add_reduce(a, "max", [0]).output, {"a": A}, lambda a: a.max(0)),
    "reduce_prod": (lambda n, a: n.add_reduce(a, "prod", [-1]).output, {"a": A}, lambda a: a.prod(-1)),
    "cast": (lambda n, a: n.add_cast(a, "int32").output, {"a": A * 4}, lambda a: a.astype(np.int32)),
    "identity": (lambda n, a: n.add_identity(a).output, {"a": A}, lambda a: a),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(SIMPLE))
def test_simple_layer(backend, name):
    build, inputs, formula = SIMPLE[name]
    engine = _one_layer(build, inputs)
    got = engine.run(inputs, backend=backend)
    want = formula(*[v.astype(np.float64) if v.dtype == np.float32 else v for v in inputs.values()])
    want = want if isinstance(want, tuple) else (want,)
    assert len(got) == len(want)
    for j, wv in enumerate(want):
        g = got[f"out{j}"]
        assert g.shape == np.shape(wv), (name, g.shape, np.shape(wv))
        if np.asarray(wv).dtype.kind in "iu":
            assert g.dtype == np.int32
            np.testing.assert_array_equal(g, wv)
        else:
            np.testing.assert_allclose(g, wv, atol=2e-6, rtol=2e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["fully_connected", "softmax", "tanh", "matmul", "scale_channel", "gelu_tanh"])
def test_simple_layer_fp16(backend, name):
    build, inputs, formula = SIMPLE[name]
    engine = _one_layer(build, inputs, "fp16")
    got = engine.run(inputs, backend=backend)["out0"]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, formula(*inputs.values()), atol=2e-2, rtol=0)


def test_backends_agree_on_a_mixed_network():
    """Embedding -> LSTM -> FC -> softmax -> top-1: onnxruntime vs reference."""
    rng = np.random.default_rng(3)
    net = Network("mixed")
    tok = net.add_input("tokens", "int32", (2, 4))
    emb = net.add_gather(net.add_constant((11, 6), _rand(rng, 11, 6), name="embedding").output, tok, name="embed")
    rnn = net.add_rnn_v2(emb.output, 2, 7, 4, "lstm", name="rnn")
    for i in range(2):
        for g in GATES["lstm"]:
            rnn.set_weights_for_gate(i, g, True, _rand(rng, *rnn.w_shape(i)))
            rnn.set_weights_for_gate(i, g, False, _rand(rng, 7, 7))
            rnn.set_bias_for_gate(i, g, True, _rand(rng, 7))
    fc = net.add_fully_connected(rnn.output, 11, _rand(rng, 7, 11), _rand(rng, 11), name="logits")
    sm = net.add_softmax(fc.output, name="probs")
    top = net.add_topk(sm.output, "max", 1, name="top1")
    net.mark_output(sm.output)
    net.mark_output(top.get_output(1), "next")
    engine = build_engine(net)
    feeds = {"tokens": rng.integers(0, 11, (2, 4)).astype(np.int32)}
    a, b = engine.run(feeds), engine.run(feeds, backend="reference")
    np.testing.assert_allclose(a["probs"], b["probs"], atol=1e-6)
    np.testing.assert_array_equal(a["next"], b["next"])
    assert engine.metadata["input_hints"] == {"tokens": {"low": 0, "high": 11}}


def test_missing_gate_weights_name_layer_and_gate():
    net = Network("m")
    x = net.add_input("x", "float32", (1, 2, 3))
    rnn = net.add_rnn_v2(x, 1, 4, 2, "gru", name="enc")
    for g in ("update", "reset", "hidden"):
        rnn.set_weights_for_gate(0, g, True, np.ones((4, 3)))
    rnn.set_weights_for_gate(0, "update", False, np.ones((4, 4)))
    rnn.set_weights_for_gate(0, "reset", False, np.ones((4, 4)))
    net.mark_output(rnn.output)
    with pytest.raises(ShapeError, match=r"'enc'.*R\[hidden\] of layer 0 is not set"):
        build_engine(net)


def test_projection_is_unsupported_at_build_time():
    from tf2rt.layouts import CellWeights

    rng = np.random.default_rng(0)
    H, E, P = 4, 3, 2
    g = GATES["lstm"]
    cell = CellWeights("lstm", E, H, W={k: _rand(rng, H, E) for k in g}, R={k: _rand(rng, H, P) for k in g},
                       Wb={k: _rand(rng, H) for k in g}, Rb={k: _rand(rng, H) for k in g}, projection=_rand(rng, P, H))
    net = Network("p")
    x = net.add_input("x", "float32", (1, 2, E))
    rnn = net.add_rnn_v2(x, 1, H, 2, "lstm", name="proj_lstm")
    rnn.set_cell(0, cell)
    net.mark_output(rnn.output)
    with pytest.raises(UnsupportedError, match="proj_lstm.*projection"):
        build_engine(net)
    net = Network("p2")
    x = net.add_input("x", "float32", (1, 2, E))
    rnn = net.add_rnn_v2(x, 1, H, 2, "lstm", name="proj_lstm")
    cell2 = CellWeights("lstm", E, H, W={k: _rand(rng, H, E) for k in g}, R={k: _rand(rng, H, H) for k in g},
                        Wb={k: _rand(rng, H) for k in g}, Rb={k: _rand(rng, H) for k in g}, cell_clip=3.0)
    rnn.set_cell(0, cell2)
    net.mark_output(rnn.output)
    with pytest.raises(UnsupportedError, match="proj_lstm.*cell_clip"):
        build_engine(net)


def test_set_cell_matches_per_gate_setters():
    """set_cell(CellWeights) and the per-gate setters give the same engine outputs."""
    from tf2rt.layouts import CellWeights

    rng = np.random.default_rng(9)
    H, E = 4, 3
    g = GATES["gru"]
    cell = CellWeights("gru", E, H, W={k: _rand(rng, H, E) for k in g}, R={k: _rand(rng, H, H) for k in g},
                       Wb={k: _rand(rng, H) for k in g}, Rb={k: _rand(rng, H) for k in g})
    outs = []
    for use_cell in (True, False):
        net = Network("c")
        x = net.add_input("x", "float32", (2, 3, E))
        rnn = net.add_rnn_v2(x, 1, H, 3, "gru", name="gru")
        if use_cell:
            rnn.set_cell(0, cell, name="scope/gru_cell")
        else:
            for k in g:
                rnn.set_weights_for_gate(0, k.upper(), True, cell.W[k])
                rnn.set_weights_for_gate(0, f"RNNGateType.{k.upper()}", False, cell.R[k])
                rnn.set_bias_for_gate(0, k, True, cell.Wb[k])
                rnn.set_bias_for_gate(0, k, False, cell.Rb[k])
        net.mark_output(rnn.output, "y")
        e = build_engine(net)
        outs.append(e.run({"x": np.arange(2 * 3 * E, dtype=np.float32).reshape(2, 3, E) / 10})["y"])
        if use_cell:
            names = {t.name for t in e.onnx.graph.initializer}
            assert {"scope/gru_cell/W", "scope/gru_cell/R", "scope/gru_cell/B"} <= names
    np.testing.assert_array_equal(outs[0], outs[1])


def test_onnxruntime_oracle_present():
    oracles.onnxruntime()


def test_reference_refuses_undefined_sequence_lengths():
    from tf2rt.errors import Tf2rtError

    engine, _ = build_rnn("gru", 1, False, 4, 3, 2, 5, 1, seq=True)
    x = np.zeros((2, 5, 3), np.float32)
    for lens in ([5, 0], [6, 1]):
        with pytest.raises(Tf2rtError, match=r"sequence_lens must be in \[1, 5\]"):
            engine.run({"x": x, "lens": np.array(lens, np.int32)}, backend="reference")


def test_runners_implement_only_the_inner_step():
    """Runner.run is the template (feed check, then _execute); no backend overrides it."""
    import importlib
    import inspect

    from tf2rt.backends import BACKENDS as MODULES
    from tf2rt.backends import Runner

    found = []
    for module in MODULES.values():
        for sub in ("", ".runner"):
            try:
                mod = importlib.import_module(module + sub)
            except ImportError:
                continue
            for obj in vars(mod).values():
                if inspect.isclass(obj) and issubclass(obj, Runner) and obj is not Runner:
                    assert "run" not in vars(obj), f"{obj.__qualname__} overrides Runner.run"
                    assert "_execute" in vars(obj) or any("_execute" in vars(b) for b in obj.__mro__[1:-2])
                    found.append(obj.__name__)
    assert {"OnnxRuntimeRunner", "ReferenceRunner", "CudaRunner"} <= set(found)

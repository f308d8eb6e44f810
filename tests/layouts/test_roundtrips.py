"""Round trips between every pair of framework layouts are bit-exact.

For every pair (A, B): A's arrays -> CellWeights -> B's arrays -> CellWeights -> A's arrays
must give back A's arrays exactly, and the canonical form must not change on the way.
Every gate and bias holds different random values, so a swapped gate cannot pass.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable

import numpy as np
import pytest

from layout_cells import random_cell
from tf2rt.errors import ShapeError, UnsupportedError
from tf2rt.layouts import (
    CellWeights,
    from_cudnn,
    from_keras_gru,
    from_keras_lstm,
    from_keras_simple_rnn,
    from_legacy_buffers,
    from_onnx,
    from_rnnv2,
    from_tf_cudnn_gru,
    from_tf_cudnn_lstm,
    from_tf_gru,
    from_tf_lstm,
    from_tf_rnn,
    from_torch,
    to_cudnn,
    to_keras,
    to_legacy_buffers,
    to_onnx,
    to_rnnv2,
    to_tf_cudnn_gru,
    to_tf_cudnn_lstm,
    to_tf_gru,
    to_tf_lstm,
    to_tf_rnn,
    to_torch,
)

Codec = tuple[Callable[[CellWeights], Any], Callable[[Any], CellWeights]]


def _onnx(op: str, **kw: Any) -> Codec:
    def to(c: CellWeights) -> Any:
        o = to_onnx(c)
        return {"W": o.W, "R": o.R, "B": o.B, **({"P": o.P} if o.P is not None else {}), "attrs": o.attributes}

    def frm(d: Any) -> CellWeights:
        a = d["attrs"]
        return from_onnx(op, d["W"], d["R"], d["B"], d.get("P"),
                         linear_before_reset=a.get("linear_before_reset", 0), activations=a.get("activations"),
                         activation_alpha=a.get("activation_alpha"), activation_beta=a.get("activation_beta"))[0]
    return to, frm


def _torch(mode: str) -> Codec:
    return (lambda c: to_torch([(c,)]), lambda d: from_torch(d, mode)[0][0])


def _trt(op: str) -> Codec:
    def to(c: CellWeights) -> Any:
        t = to_rnnv2([(c,)])
        return {"weights": t.weights, "biases": t.biases}
    return to, lambda d: from_rnnv2(op, 1, d["weights"], d["biases"])[0][0]


def _legacy(op: str, E: int, H: int) -> Codec:
    return (lambda c: to_legacy_buffers([(c,)]),
            lambda d: from_legacy_buffers(op, d[0], d[1], layer_count=1, hidden_size=H, input_size=E)[0][0])


def _cudnn(kind: str, act: str = "tanh") -> Codec:
    return (lambda c: to_cudnn(c), lambda d: from_cudnn(kind, d[0], d[1], activation=act))


E, H = 5, 3

LSTM: dict[str, Codec] = {
    "tf": (lambda c: to_tf_lstm(c, forget_bias=0.0), lambda d: from_tf_lstm(d["kernel"], d["bias"], forget_bias=0.0)),
    "tf-cudnn": (lambda c: to_tf_cudnn_lstm(c), lambda d: from_tf_cudnn_lstm(d["kernel"], d["bias"])),
    "keras": (lambda c: to_keras(c), lambda d: from_keras_lstm(*d)),
    "torch": _torch("LSTM"),
    "onnx": _onnx("LSTM"),
    "cudnn": _cudnn("lstm"),
    "trt": _trt("lstm"),
    "trt-legacy": _legacy("lstm", E, H),
}
# Frameworks that keep input and recurrent biases apart.
LSTM_SPLIT: dict[str, Codec] = {
    "tf-cudnn-split": (
        lambda c: to_tf_cudnn_lstm(c, split=True),
        lambda d: from_tf_cudnn_lstm(d["kernel"], d["bias"], d["bias_cudnn_0"], d["bias_cudnn_1"]),
    ),
    **{k: LSTM[k] for k in ("torch", "onnx", "cudnn", "trt", "trt-legacy")},
}
GRU_AFTER: dict[str, Codec] = {
    "keras": (lambda c: to_keras(c), lambda d: from_keras_gru(*d, reset_after=True)),
    "torch": _torch("GRU"),
    "onnx": _onnx("GRU"),
    "cudnn": _cudnn("gru"),
    "trt": _trt("gru"),
    "trt-legacy": _legacy("gru", E, H),
}
# CudnnCompatibleGRUCell sums the r/u biases; it is exact when their recurrent part is 0.
GRU_AFTER_SUMMED: dict[str, Codec] = {
    "tf-cudnn": (lambda c: to_tf_cudnn_gru(c), lambda d: from_tf_cudnn_gru(
        d["gates/kernel"], d["gates/bias"], d["candidate/input_projection/kernel"],
        d["candidate/input_projection/bias"], d["candidate/hidden_projection/kernel"],
        d["candidate/hidden_projection/bias"])),
    **GRU_AFTER,
}
GRU_BEFORE: dict[str, Codec] = {
    "tf": (lambda c: to_tf_gru(c), lambda d: from_tf_gru(d["gates/kernel"], d["gates/bias"],
                                                         d["candidate/kernel"], d["candidate/bias"])),
    "keras": (lambda c: to_keras(c), lambda d: from_keras_gru(*d, reset_after=False)),
    "onnx": _onnx("GRU"),
}


def _rnn(act: str) -> dict[str, Codec]:
    return {
        "tf": (lambda c: to_tf_rnn(c), lambda d: from_tf_rnn(d["kernel"], d["bias"], activation=act)),
        "keras": (lambda c: to_keras(c), lambda d: from_keras_simple_rnn(*d, activation=act)),
        "torch": _torch("RNN_RELU" if act == "relu" else "RNN_TANH"),
        "onnx": _onnx("RNN"),
        "cudnn": _cudnn("rnn", act),
        "trt": _trt(act),
        "trt-legacy": _legacy(act, E, H),
    }


def _native_equal(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and set(a) == set(b) and all(_native_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_native_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    return a == b


CASES = [
    ("lstm", {}, True, LSTM),
    ("lstm", {}, False, LSTM_SPLIT),
    ("gru", {"linear_before_reset": True}, False, GRU_AFTER),
    ("gru-summed", {"linear_before_reset": True}, True, GRU_AFTER_SUMMED),
    ("gru", {"linear_before_reset": False}, True, GRU_BEFORE),
    ("rnn", {"activation": "tanh"}, True, _rnn("tanh")),
    ("rnn", {"activation": "relu"}, True, _rnn("relu")),
]
PAIRS = [
    pytest.param(kind, kw, zero_rb, codecs, a, b, id=f"{kind}{'-' + str(kw) if kw else ''}{'' if zero_rb else '-split'}:{a}->{b}")
    for kind, kw, zero_rb, codecs in CASES
    for a, b in itertools.product(codecs, repeat=2)
]


@pytest.mark.parametrize("kind,kw,zero_rb,codecs,a,b", PAIRS)
def test_round_trip_between_frameworks(kind, kw, zero_rb, codecs, a, b):
    cell = random_cell(kind.split("-")[0], E, H, seed=7, zero_rb=zero_rb, **kw)
    if kind == "gru-summed":  # only the hidden gate's recurrent bias survives a summed r/u bias
        cell = cell.replace(Rb={**cell.Rb, "update": np.zeros(H, np.float32), "reset": np.zeros(H, np.float32)})
    to_a, from_a = codecs[a]
    to_b, from_b = codecs[b]
    native_a = to_a(cell)
    c1 = from_a(native_a)
    assert c1.same_as(cell), f"{a} -> canonical changed the cell"
    c2 = from_b(to_b(c1))
    assert c2.same_as(cell), f"{a} -> {b} -> canonical changed the cell"
    assert _native_equal(to_a(c2), native_a), f"{a} -> {b} -> {a} changed {a}'s arrays"


def test_stacks_round_trip_bidirectional_multilayer():
    """Two bidirectional layers (layer 1 input = 2H) through torch, ONNX, cuDNN, TRT and back."""
    from tf2rt.layouts import from_cudnn_stack, to_cudnn_stack

    stack = [
        (random_cell("lstm", E, H, seed=1), random_cell("lstm", E, H, seed=2)),
        (random_cell("lstm", 2 * H, H, seed=3), random_cell("lstm", 2 * H, H, seed=4)),
    ]
    sd = to_torch(stack)
    assert sorted(sd)[:2] == ["bias_hh_l0", "bias_hh_l0_reverse"]
    back = from_torch(sd, "LSTM")
    t = to_rnnv2(back)
    assert t.direction == "bidirection" and (3, "forget", True) in t.weights
    assert t.weights[(3, "forget", True)].shape == (H, 2 * H)
    back = from_rnnv2("lstm", 2, t.weights, t.biases, direction="bidirection")
    ws, bs = to_cudnn_stack(back)
    back = from_cudnn_stack("lstm", ws, bs, num_layers=2, bidirectional=True)
    w, b = to_legacy_buffers(back)
    back = from_legacy_buffers("lstm", w, b, layer_count=2, hidden_size=H, input_size=E, bidirectional=True)
    for layer, orig in zip(back, stack):
        onnx = to_onnx(layer)
        assert onnx.W.shape[0] == 2 and onnx.attributes["direction"] == "bidirectional"
        again = from_onnx("LSTM", onnx.W, onnx.R, onnx.B)
        for c, o in zip(again, orig):
            assert c.same_as(o)


def test_trt_layer_index_convention():
    stack = [(random_cell("gru", E, H, seed=1), random_cell("gru", E, H, seed=2))]
    t = to_rnnv2(stack)
    # l % 2 = direction, l // 2 = position in the stack
    assert np.array_equal(t.weights[(1, "reset", False)], stack[0][1].R["reset"])
    assert np.array_equal(t.biases[(0, "hidden", False)], stack[0][0].Rb["hidden"])


def test_forget_bias_folding():
    """forget_bias is added to Wb['forget'] only, and to_tf_lstm subtracts it again."""
    rng = np.random.default_rng(3)
    K = rng.standard_normal((E + H, 4 * H)).astype(np.float32)
    b = rng.standard_normal(4 * H).astype(np.float32)
    c0 = from_tf_lstm(K, b, forget_bias=0.0)
    c1 = from_tf_lstm(K, b, forget_bias=1.0)
    assert np.array_equal(c1.Wb["forget"], (b[2 * H:3 * H] + np.float32(1.0)))
    for g in ("input", "cell", "output"):
        assert np.array_equal(c1.Wb[g], c0.Wb[g])
    assert c1.Wb["forget"].dtype == np.float32
    back = to_tf_lstm(c1, forget_bias=1.0)
    np.testing.assert_allclose(back["bias"], b, rtol=0, atol=1e-6)
    assert np.array_equal(back["kernel"], K)
    # a model trained with forget_bias=1 exported for a framework without it keeps the sum
    assert np.array_equal(to_keras(c1)[2][H:2 * H], c1.Wb["forget"])


def test_tf_cudnn_split_biases_sum():
    rng = np.random.default_rng(4)
    K = rng.standard_normal((E + H, 4 * H)).astype(np.float32)
    b0 = rng.standard_normal(4 * H).astype(np.float32)
    b1 = rng.standard_normal(4 * H).astype(np.float32)
    c = from_tf_cudnn_lstm(K, b0 + b1, b0, b1)
    assert np.array_equal(c.Wb["cell"], b0[H:2 * H]) and np.array_equal(c.Rb["cell"], b1[H:2 * H])
    out = to_tf_cudnn_lstm(c, split=True)
    assert np.array_equal(out["bias"], b0 + b1)


def test_reset_before_gru_to_rnnv2_is_a_clear_error():
    cell = random_cell("gru", E, H, linear_before_reset=False)
    with pytest.raises(UnsupportedError, match="linear_before_reset=0"):
        to_rnnv2([(cell,)])
    with pytest.raises(UnsupportedError, match="reset"):
        to_torch([(cell,)])
    with pytest.raises(UnsupportedError, match="CudnnCompatibleGRUCell|to_tf_gru"):
        to_tf_cudnn_gru(cell)
    with pytest.raises(UnsupportedError):
        to_tf_gru(random_cell("gru", E, H, linear_before_reset=True))


def test_features_targets_cannot_express():
    peep = random_cell("lstm", E, H, peepholes={g: np.full(H, i + 1.0, np.float32) for i, g in
                                                 enumerate(("input", "forget", "output"))})
    with pytest.raises(UnsupportedError, match="peepholes"):
        to_rnnv2([(peep,)])
    with pytest.raises(UnsupportedError, match="peepholes"):
        to_torch([(peep,)])
    with pytest.raises(UnsupportedError, match="peepholes"):
        to_keras(peep)
    proj = random_cell("lstm", E, H, projection=np.ones((2, H), np.float32))
    with pytest.raises(UnsupportedError, match="projection"):
        to_onnx(proj)
    hard = random_cell("lstm", E, H, recurrent_activation="hard_sigmoid", recurrent_alpha=0.2, recurrent_beta=0.5)
    with pytest.raises(UnsupportedError, match="hard_sigmoid"):
        to_rnnv2([(hard,)])
    with pytest.raises(UnsupportedError, match="hard_sigmoid"):
        to_tf_lstm(hard)
    assert to_onnx(hard).attributes["activations"] == ["HardSigmoid", "Tanh", "Tanh"]


def test_projection_round_trips_tf_and_torch():
    rng = np.random.default_rng(5)
    P = 2
    K = rng.standard_normal((E + P, 4 * H)).astype(np.float32)
    b = rng.standard_normal(4 * H).astype(np.float32)
    proj = rng.standard_normal((H, P)).astype(np.float32)
    c = from_tf_lstm(K, b, forget_bias=0.0, projection=proj)
    assert c.output_size == P and c.R["input"].shape == (H, P)
    back = to_tf_lstm(c, forget_bias=0.0)
    assert np.array_equal(back["kernel"], K) and np.array_equal(back["projection/kernel"], proj)
    c2 = from_torch(to_torch([(c.replace(Rb={g: np.zeros(H, np.float32) for g in c.gates}),)]), "LSTM")[0][0]
    assert np.array_equal(c2.projection, c.projection)


@pytest.mark.parametrize("bad", [
    lambda: from_tf_lstm(np.zeros((4, 10)), np.zeros(10)),
    lambda: from_tf_lstm(np.zeros((4, 8)), np.zeros(7)),
    lambda: from_keras_gru(np.zeros((3, 6)), np.zeros((2, 6)), np.zeros(6), reset_after=True),
    lambda: from_onnx("LSTM", np.zeros((1, 8, 3)), np.zeros((1, 8, 3))),
    lambda: from_onnx("LSTM", np.zeros((3, 8, 3)), np.zeros((3, 8, 2))),
    lambda: from_cudnn("gru", [np.zeros(6)] * 5, [np.zeros(2)] * 6),
    lambda: from_legacy_buffers("lstm", np.zeros(10), np.zeros(16), layer_count=1, hidden_size=2, input_size=3),
    lambda: from_tf_gru(np.zeros((5, 4)), np.zeros(4), np.zeros((5, 3)), np.zeros(2)),
])
def test_bad_shapes_are_shape_errors(bad):
    with pytest.raises(ShapeError):
        bad()

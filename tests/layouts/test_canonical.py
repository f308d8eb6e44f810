"""GateOrder data, CellWeights validation, bias helpers, TF scope discovery."""

from __future__ import annotations

import numpy as np
import pytest

from layout_cells import random_cell
from tf2rt.errors import MissingTensorError, ShapeError, UnsupportedError
from tf2rt.layouts import (
    CUDNN_GRU,
    CUDNN_LSTM,
    KERAS_GRU,
    KERAS_LSTM,
    ONNX_GRU,
    ONNX_LSTM,
    TF_LSTM,
    TORCH_GRU,
    TORCH_LSTM,
    TRT_GATE_TYPE,
    TRT_LEGACY_LSTM,
    combine_biases,
    find_cell_scopes,
    permutation,
    reorder_gates,
    split_biases,
    tf_stack,
    validate_stack,
)

E, H = 5, 3


def test_gate_orders_match_the_master_table():
    # letters from the master gate-order table of the RNN weight layout reference
    letters = {"input": "i", "forget": "f", "cell": "c", "output": "o", "update": "z", "reset": "r", "hidden": "h"}
    table = {TF_LSTM: "icfo", KERAS_LSTM: "ifco", TORCH_LSTM: "ifco", ONNX_LSTM: "iofc", CUDNN_LSTM: "ifco",
             TRT_LEGACY_LSTM: "fico", KERAS_GRU: "zrh", TORCH_GRU: "rzh", ONNX_GRU: "zrh", CUDNN_GRU: "rzh"}
    for order, want in table.items():
        assert "".join(letters[g] for g in order.gates) == want, order


def test_permutation_and_reorder_are_derived_from_orders():
    assert permutation(TF_LSTM, ONNX_LSTM) == (0, 3, 2, 1)
    blocks = np.repeat(np.arange(4), 2)  # block k holds value k, in TF order
    out = reorder_gates(blocks, TF_LSTM, ONNX_LSTM)
    assert [TF_LSTM.gates[v] for v in out[::2]] == list(ONNX_LSTM.gates)
    with pytest.raises(UnsupportedError):
        permutation(TF_LSTM, ONNX_GRU)
    assert TRT_GATE_TYPE == {"input": 0, "output": 1, "forget": 2, "update": 3, "reset": 4, "cell": 5, "hidden": 6}


def test_cell_validation_names_the_gate():
    c = random_cell("lstm", E, H)
    with pytest.raises(ShapeError, match=r"R\['cell'\]"):
        c.replace(R={**c.R, "cell": np.zeros((H, H + 1), np.float32)})
    with pytest.raises(ShapeError, match="Wb has gates"):
        c.replace(Wb={g: v for g, v in c.Wb.items() if g != "forget"})
    with pytest.raises(UnsupportedError, match="activation 'gelu'"):
        c.replace(activation="gelu")
    with pytest.raises(UnsupportedError, match="recurrent_alpha"):
        c.replace(recurrent_activation="hard_sigmoid")
    with pytest.raises(UnsupportedError, match="peepholes"):
        random_cell("gru", E, H, peepholes={g: np.zeros(H) for g in ("input", "forget", "output")})
    with pytest.raises(UnsupportedError, match="unknown recurrent cell kind"):
        random_cell("transformer", E, H)


def test_validate_stack_checks_chaining():
    with pytest.raises(ShapeError, match="input_size"):
        validate_stack([(random_cell("lstm", E, H),), (random_cell("lstm", E, H),)])
    with pytest.raises(ShapeError, match="directions"):
        validate_stack([(random_cell("lstm", E, H), random_cell("lstm", E, H)), (random_cell("lstm", 2 * H, H),)])
    assert len(validate_stack([(random_cell("gru", E, H),), (random_cell("gru", H, H),)])) == 2


@pytest.mark.parametrize("kind,lbr", [("lstm", True), ("gru", True), ("gru", False), ("rnn", True)])
def test_combine_and_split_biases_keep_the_sums(kind, lbr):
    c = random_cell(kind, E, H, linear_before_reset=lbr)
    comb = combine_biases(c)
    spl = split_biases(c, 0.25)
    for g in c.gates:
        if kind == "gru" and g == "hidden" and lbr:  # r * (R h + Rb) cannot absorb Rb
            assert np.array_equal(comb.Rb[g], c.Rb[g]) and np.array_equal(spl.Rb[g], c.Rb[g])
            continue
        assert not comb.Rb[g].any()
        np.testing.assert_allclose(comb.Wb[g], c.Wb[g] + c.Rb[g], rtol=0, atol=1e-6)
        np.testing.assert_allclose(spl.Wb[g] + spl.Rb[g], c.Wb[g] + c.Rb[g], rtol=0, atol=1e-6)


def test_same_as_is_exact():
    c = random_cell("lstm", E, H)
    assert c.same_as(c.replace())
    assert not c.same_as(c.astype(np.float64))
    W = dict(c.W)
    W["output"] = W["output"].copy()
    W["output"][0, 0] = np.nextafter(W["output"][0, 0], np.float32(10))
    assert not c.same_as(c.replace(W=W))
    assert not c.same_as(c.replace(linear_before_reset=False))


def _tf_names(scopes: list[str]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out = {}
    for s in scopes:
        out[f"{s}/kernel"] = rng.standard_normal((E + H, 4 * H)).astype(np.float32)
        out[f"{s}/bias"] = rng.standard_normal(4 * H).astype(np.float32)
    return out


def test_tf_scope_discovery_orders_layers_numerically():
    scopes = [f"rnn/multi_rnn_cell/cell_{i}/basic_lstm_cell" for i in (0, 1, 10, 2, 3, 4, 5, 6, 7, 8, 9)]
    w = _tf_names(scopes[:1])
    for s in scopes[1:]:
        w[f"{s}/kernel"] = np.zeros((2 * H, 4 * H), np.float32)
        w[f"{s}/bias"] = np.zeros(4 * H, np.float32)
    w["rnn/multi_rnn_cell/cell_0/basic_lstm_cell/kernel/Adam"] = np.zeros(1)
    found = find_cell_scopes(w, "rnn")
    assert found[-1].endswith("cell_10/basic_lstm_cell") and found[2].endswith("cell_2/basic_lstm_cell")
    stack = tf_stack(w, "rnn")
    assert len(stack) == 11 and stack[0][0].name == scopes[0]


def test_tf_scope_errors():
    with pytest.raises(MissingTensorError, match="no TF RNN cell"):
        tf_stack({"dense/kernel": np.zeros((2, 2))}, "rnn")
    w = _tf_names(["bidirectional_rnn/fw/multi_rnn_cell/cell_0/lstm_cell",
                   "bidirectional_rnn/fw/multi_rnn_cell/cell_1/lstm_cell",
                   "bidirectional_rnn/bw/multi_rnn_cell/cell_0/lstm_cell"])
    with pytest.raises(UnsupportedError, match="independent"):
        tf_stack(w, "bidirectional_rnn")
    w = _tf_names(["rnn/gru_cell"])  # a GRU scope without gates/ variables
    with pytest.raises(MissingTensorError, match="gates/kernel"):
        tf_stack(w, "rnn")


def test_tf_scope_accepts_old_weights_biases_names_and_single_cells():
    w = _tf_names(["rnn/basic_lstm_cell"])
    old = {k.replace("/kernel", "/weights").replace("/bias", "/biases"): v for k, v in w.items()}
    assert tf_stack(old, "rnn")[0][0].same_as(tf_stack(w, "rnn")[0][0])
    assert validate_stack([random_cell("gru", E, H)])[0][0].kind == "gru"  # a bare cell is a 1-direction layer


def test_gru_block_cell_names_match_gru_cell_by_shape():
    """GRUBlockCell stores w_ru/b_ru/w_c/b_c (kernel names swapped in some versions): either
    assignment gives the GRUCell conversion of the same arrays."""
    rng = np.random.default_rng(8)
    kg = rng.standard_normal((E + H, 2 * H)).astype(np.float32)
    bg = rng.standard_normal(2 * H).astype(np.float32)
    kc = rng.standard_normal((E + H, H)).astype(np.float32)
    bc = rng.standard_normal(H).astype(np.float32)
    ref = tf_stack({"rnn/gru_cell/gates/kernel": kg, "rnn/gru_cell/gates/bias": bg,
                    "rnn/gru_cell/candidate/kernel": kc, "rnn/gru_cell/candidate/bias": bc}, "rnn")[0][0]
    for w_ru, w_c in ((kg, kc), (kc, kg)):
        block = {"rnn/gru_cell/w_ru": w_ru, "rnn/gru_cell/w_c": w_c, "rnn/gru_cell/b_ru": bg, "rnn/gru_cell/b_c": bc}
        assert tf_stack(block, "rnn")[0][0].same_as(ref)


def test_mixed_or_integer_dtypes_are_rejected():
    c = random_cell("rnn", E, H)
    with pytest.raises(ShapeError, match="one float dtype"):
        c.replace(Wb={"input": c.Wb["input"].astype(np.float64)})
    with pytest.raises(ShapeError, match="one float dtype"):
        random_cell("rnn", E, H, dtype=np.int32)

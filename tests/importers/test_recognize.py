"""Model recognition from TF1 checkpoint variable names and shapes (no TensorFlow needed).

The name/shape sets below are the ones TF1 code writes (checked against real checkpoints
in test_convert_tf1.py); here we test the structural decisions and the error messages.
"""

from __future__ import annotations

import pytest

from tf2rt.errors import UnsupportedError
from tf2rt.importers.recognize import _stack_key, is_slot_name, recognize_tf1


def _charrnn(cell: str = "basic_lstm_cell", layers: int = 2, H: int = 16, E: int = 8, V: int = 11,
             scope: str = "rnnlm", gates: int = 4) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {
        f"{scope}/embedding": (V, E), f"{scope}/softmax_w": (H, V), f"{scope}/softmax_b": (V,),
        "global_step": (), "beta1_power": (), f"{scope}/softmax_w/Adam": (H, V),
    }
    for l in range(layers):
        inp = E if l == 0 else H
        base = f"{scope}/multi_rnn_cell/cell_{l}/{cell}"
        if cell == "gru_cell":
            shapes[f"{base}/gates/kernel"] = (inp + H, 2 * H)
            shapes[f"{base}/gates/bias"] = (2 * H,)
            shapes[f"{base}/candidate/kernel"] = (inp + H, H)
            shapes[f"{base}/candidate/bias"] = (H,)
        else:
            shapes[f"{base}/kernel"] = (inp + H, gates * H)
            shapes[f"{base}/bias"] = (gates * H,)
    return shapes


@pytest.mark.parametrize("cell,kind,gates", [("basic_lstm_cell", "lstm", 4), ("lstm_cell", "lstm", 4),
                                             ("gru_cell", "gru", 0), ("basic_rnn_cell", "rnn", 1)])
def test_charrnn_stack(cell, kind, gates):
    m = recognize_tf1(_charrnn(cell, layers=3, gates=gates))
    assert [len(layer) for layer in m.layers] == [1, 1, 1]
    assert [layer[0].layer for layer in m.layers] == [0, 1, 2]
    assert m.kind == kind and m.stack == "multi_rnn_cell" and m.rnn_scope == "rnnlm"
    assert (m.embedding, m.vocab, m.input_size) == ("rnnlm/embedding", 11, 8)
    assert (m.head_w, m.head_b, m.head_size) == ("rnnlm/softmax_w", "rnnlm/softmax_b", 11)
    assert m.layers[0][0].hidden_size == 16 and m.layers[1][0].input_size == 16
    assert sorted(m.ignored) == ["beta1_power", "global_step", "rnnlm/softmax_w/Adam"]


def test_one_hot_model_has_no_embedding():
    shapes = _charrnn(E=11)
    del shapes["rnnlm/embedding"]
    m = recognize_tf1(shapes)
    assert m.embedding is None and m.input_size == 11 and m.head_size == 11


def test_single_cell_without_multi_rnn_cell():
    shapes = {"rnn/basic_lstm_cell/kernel": (12, 16), "rnn/basic_lstm_cell/bias": (16,)}
    m = recognize_tf1(shapes)
    assert m.stack == "single" and m.layers[0][0].hidden_size == 4 and m.input_size == 8
    assert m.head_w is None and m.embedding is None


def test_stack_bidirectional():
    shapes = {}
    for l, inp in ((0, 5), (1, 12)):
        for d in ("fw", "bw"):
            base = f"stack_bidirectional_rnn/cell_{l}/bidirectional_rnn/{d}/lstm_cell"
            shapes[f"{base}/kernel"] = (inp + 6, 24)
            shapes[f"{base}/bias"] = (24,)
    shapes["proj/w"] = (12, 3)
    shapes["proj/b"] = (3,)
    m = recognize_tf1(shapes)
    assert m.stack == "stack_bidirectional_rnn" and m.directions == 2
    assert [(c.layer, c.direction) for layer in m.layers for c in layer] == [(0, "fw"), (0, "bw"), (1, "fw"), (1, "bw")]
    assert m.head_w == "proj/w" and m.output_width == 12


def test_every_unknown_variable_is_listed_as_unplaced():
    shapes = _charrnn()
    shapes["rnnlm/extra_scale"] = (3,)
    shapes["rnnlm/attention/query"] = (16, 16)
    model = recognize_tf1(shapes)  # without a graph these are left out; convert warns about them
    assert model.unplaced == ["rnnlm/attention/query [16, 16]", "rnnlm/extra_scale [3]"]
    assert model.layers and model.head_w


def test_custom_cell_is_reported_by_name():
    shapes = {"rnn/my_fancy_cell/w": (20, 40), "rnn/my_fancy_cell/u": (40,)}
    with pytest.raises(UnsupportedError) as e:
        recognize_tf1(shapes)
    assert "no TF recurrent cell" in str(e.value) and "rnn/my_fancy_cell/w" in str(e.value)


def test_cell_missing_a_variable():
    shapes = _charrnn()
    del shapes["rnnlm/multi_rnn_cell/cell_1/basic_lstm_cell/bias"]
    with pytest.raises(UnsupportedError, match=r"cell_1/basic_lstm_cell.*lacks variable"):
        recognize_tf1(shapes)


def test_two_stacks_are_refused():
    shapes = _charrnn(scope="encoder")
    shapes.update({k: v for k, v in _charrnn(scope="decoder").items() if "multi_rnn_cell" in k})
    with pytest.raises(UnsupportedError, match="separate recurrent stacks"):
        recognize_tf1(shapes)


def test_mismatched_layer_sizes_are_reported():
    shapes = _charrnn()
    shapes["rnnlm/multi_rnn_cell/cell_1/basic_lstm_cell/kernel"] = (30, 64)
    with pytest.raises(UnsupportedError, match="layer below outputs 16"):
        recognize_tf1(shapes)


def test_slot_names():
    assert is_slot_name("rnn/kernel/Adam_1") and is_slot_name("global_step") and is_slot_name("beta2_power")
    assert not is_slot_name("rnn/Adamant/kernel")
    assert _stack_key("rnnlm/multi_rnn_cell/cell_3/basic_lstm_cell") == "rnnlm"
    assert _stack_key("stack_bidirectional_rnn/cell_1/bidirectional_rnn/bw/lstm_cell") == "stack_bidirectional_rnn"

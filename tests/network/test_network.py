"""Network builder: naming, shape/dtype checks with errors naming the layer, TensorRT-style accessors."""

from __future__ import annotations

import numpy as np
import pytest

from tf2rt.errors import ShapeError
from tf2rt.network import Network


@pytest.fixture
def net():
    return Network("n")


def test_names_are_readable_and_unique(net):
    x = net.add_input("x", "float32", (2, 3))
    a = net.add_activation(x, "relu", name="act")
    b = net.add_activation(a.output, "relu", name="act")
    assert a.name == "act" and b.name == "act_1"
    assert a.output.name == "act" and b.output.name == "act_1"
    t = net.add_topk(b.output, "max", 1, name="top")
    assert [o.name for o in t.outputs] == ["top/values", "top/indices"]
    net.mark_output(t.get_output(1), "best")
    assert t.get_output(1).name == "best" and net.tensor("best") is t.get_output(1)
    assert net.num_layers == 3 and net.get_layer(0) is a and net.num_outputs == 1


def test_duplicate_input_name(net):
    net.add_input("x", "float32", (1,))
    with pytest.raises(ShapeError, match="already exists"):
        net.add_input("x", "float32", (1,))


@pytest.mark.parametrize("dtype,canon", [("float", "float32"), (np.float16, "float16"), ("DataType.INT32", "int32"),
                                         ("int64", "int64"), (bool, "bool")])
def test_dtype_names(net, dtype, canon):
    assert net.add_input("x", dtype, (None, 2)).dtype == canon


def test_bad_dtype_and_shape(net):
    with pytest.raises(ShapeError, match="unsupported dtype"):
        net.add_input("x", "complex64", (1,))
    with pytest.raises(ShapeError, match="bad dimension"):
        net.add_input("y", "float32", (2, -3))


def test_matmul_inner_dims_name_layer(net):
    a = net.add_input("a", "float32", (2, 3))
    b = net.add_input("b", "float32", (4, 4))
    with pytest.raises(ShapeError, match=r"layer 'mm' \(matrix_multiply\): inner dimensions differ"):
        net.add_matrix_multiply(a, "none", b, "none", name="mm")
    assert net.add_matrix_multiply(a, "transpose", net.add_input("c", "float32", (2, 5)), "none").output.shape == (3, 5)


def test_elementwise_checks(net):
    a = net.add_input("a", "float32", (2, 3))
    with pytest.raises(ShapeError, match="'add'.*do not broadcast"):
        net.add_elementwise(a, net.add_input("b", "float32", (4,)), "sum", name="add")
    with pytest.raises(ShapeError, match="dtypes differ"):
        net.add_elementwise(a, net.add_input("i", "int32", (3,)), "sum")
    with pytest.raises(ShapeError, match="unknown elementwise operation"):
        net.add_elementwise(a, a, "nand")
    with pytest.raises(ShapeError, match="'xor' takes bool inputs, a is float32"):
        net.add_elementwise(a, a, "xor")
    assert net.add_elementwise(a, a, "ElementWiseOperation.PROD").op == "prod"
    assert net.add_elementwise(a, net.add_input("d", "float32", (None, 1)), "max").output.shape == (2, 3)


def test_fully_connected_kernel_orientation(net):
    x = net.add_input("x", "float32", (2, 4))
    with pytest.raises(ShapeError, match="kernel_layout='nk'"):
        net.add_fully_connected(x, 3, np.zeros((3, 4)), name="fc")
    assert net.add_fully_connected(x, 3, np.zeros((3, 4)), kernel_layout="nk").output.shape == (2, 3)


def test_shuffle_reshape_and_attributes(net):
    x = net.add_input("x", "float32", (2, 3, 4))
    s = net.add_shuffle(x, (0, -1))
    assert s.output.shape == (2, 12)
    s.reshape_dims = (4, 0, 2)  # TensorRT style: set after adding; shapes follow
    assert s.output.shape == (4, 3, 2)
    s.first_transpose = (2, 1, 0)
    assert s.output.shape == (4, 3, 2)
    with pytest.raises(ShapeError, match="cannot reshape"):
        net.add_shuffle(x, (5, -1), name="bad")
    with pytest.raises(ShapeError, match="not a permutation"):
        net.add_shuffle(x, first_transpose=(0, 0, 1))


def test_slice_concat_gather_topk_checks(net):
    x = net.add_input("x", "float32", (2, 3))
    with pytest.raises(ShapeError, match="'sl'.*leave the input"):
        net.add_slice(x, (0, 2), (2, 2), (1, 1), name="sl")
    with pytest.raises(ShapeError, match="differ outside axis"):
        net.add_concatenation([x, net.add_input("y", "float32", (3, 3))], axis=1)
    with pytest.raises(ShapeError, match="indices .* must be int32 or int64"):
        net.add_gather(x, x)
    with pytest.raises(ShapeError, match="k=4"):
        net.add_topk(x, "max", 4, axis=1)
    assert net.add_reduce(x, "sum", 0b10, keep_dims=True).output.shape == (2, 1)


def test_tensor_from_another_network(net):
    other = Network("other")
    y = other.add_input("y", "float32", (1,))
    with pytest.raises(ShapeError, match="belongs to another network"):
        net.add_activation(y, "relu")


def test_rnn_v2_shapes_and_errors(net):
    x = net.add_input("x", "float32", (3, 5, 4))
    rnn = net.add_rnn_v2(x, 2, 6, 5, "LSTM", "RNNDirection.BIDIRECTION", name="enc")
    assert [t.shape for t in rnn.outputs] == [(3, 5, 12), (3, 4, 6), (3, 4, 6)]
    assert rnn.w_shape(0) == (6, 4) and rnn.w_shape(1) == (6, 4) and rnn.w_shape(2) == (6, 12)
    with pytest.raises(ShapeError, match=r"'enc'.*W\[forget\] of layer 2 has shape \(6, 6\), expected \(6, 12\)"):
        rnn.set_weights_for_gate(2, "forget", True, np.zeros((6, 6)))
    with pytest.raises(ShapeError, match="lstm has no gate 'update'"):
        rnn.set_weights_for_gate(0, "update", True, np.zeros((6, 4)))
    with pytest.raises(ShapeError, match="layer_index 4 out of range"):
        rnn.set_bias_for_gate(4, "input", True, np.zeros(6))
    with pytest.raises(ShapeError, match="hidden_state .* expected float32\\[3, 4, 6\\]"):
        rnn.hidden_state = net.add_input("h0", "float32", (3, 2, 6))
    with pytest.raises(ShapeError, match="seq_lengths"):
        rnn.seq_lengths = net.add_input("lens", "float32", (3,))
    rnn.seq_lengths = net.add_input("lens32", "int32", (3,))
    with pytest.raises(ShapeError, match="sequence length 5, but max_seq_length is 4"):
        net.add_rnn_v2(x, 1, 6, 4, "gru")
    with pytest.raises(ShapeError, match="skip needs E == hidden_size"):
        net.add_rnn_v2(x, 1, 6, 5, "tanh", input_mode="skip")
    gru = net.add_rnn_v2(x, 1, 6, 5, "gru")
    assert gru.num_outputs == 2
    with pytest.raises(ShapeError, match="cell_state exists only for LSTM"):
        gru.cell_state = net.add_input("c0", "float32", (3, 1, 6))


def test_flat_weights_accepted_like_tensorrt(net):
    x = net.add_input("x", "float32", (1, 2, 3))
    rnn = net.add_rnn_v2(x, 1, 4, 2, "relu")
    rnn.set_weights_for_gate(0, "input", True, np.arange(12, dtype=np.float32))
    np.testing.assert_array_equal(rnn.get_weights_for_gate(0, "input", True), np.arange(12).reshape(4, 3))


def test_summary_lists_layers_and_weights(net):
    x = net.add_input("x", "float32", (2, 4))
    fc = net.add_fully_connected(x, 3, np.ones((4, 3)), np.zeros(3), name="dense")
    net.mark_output(net.add_softmax(fc.output, name="probs").output)
    text = net.summary()
    assert "inputs x:float32[2, 4]" in text and "outputs probs:float32[2, 3]" in text
    row = next(line for line in text.splitlines() if line.startswith("dense"))
    assert "fully_connected" in row and "x[2, 4]" in row and row.endswith("15")

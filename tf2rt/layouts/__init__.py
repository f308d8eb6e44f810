"""Convert weights: gate orders as data, the canonical per-gate form, and converters.

`CellWeights` (one direction of one layer, per gate, TensorRT RNNv2 style) is the hub:
every framework layout converts to and from it. Gate orders are `GateOrder` named tuples.
"""

from __future__ import annotations

from .canonical import (
    ACTIVATIONS,
    RECURRENT_ACTIVATIONS,
    CellWeights,
    Stack,
    combine_biases,
    split_biases,
    validate_stack,
)
from .gates import (
    CUDNN_GRU,
    CUDNN_LSTM,
    CUDNN_RNN,
    GRU_GATES,
    KERAS_GRU,
    KERAS_LSTM,
    KERAS_RNN,
    LSTM_GATES,
    ONNX_GRU,
    ONNX_LSTM,
    ONNX_PEEPHOLES,
    ONNX_RNN,
    ORDERS,
    PEEPHOLE_GATES,
    RNN_GATES,
    TF_GRU_CANDIDATE,
    TF_GRU_GATES,
    TF_LSTM,
    TF_RNN,
    TORCH_GRU,
    TORCH_LSTM,
    TORCH_RNN,
    TRT_GATE_TYPE,
    TRT_LEGACY_GRU,
    TRT_LEGACY_LSTM,
    TRT_LEGACY_RNN,
    GateOrder,
    gates_for,
    permutation,
    reorder_gates,
    split_gates,
    stack_gates,
)
from .buffers import reorder_sub_buffers, reshape_weights, transpose_sub_buffers
from .cudnn import from_cudnn, from_cudnn_stack, to_cudnn, to_cudnn_stack
from .keras import (
    HARD_SIGMOID,
    from_keras_gru,
    from_keras_layer,
    from_keras_lstm,
    from_keras_simple_rnn,
    keras_activations,
    to_keras,
)
from .onnx import OnnxRNNWeights, from_onnx, to_onnx
from .tf import (
    from_tf_cudnn_gru,
    from_tf_cudnn_lstm,
    from_tf_gru,
    from_tf_lstm,
    from_tf_rnn,
    to_tf_cudnn_gru,
    to_tf_cudnn_lstm,
    to_tf_gru,
    to_tf_lstm,
    to_tf_rnn,
)
from .tf_scopes import CELL_SCOPES, find_cell_scopes, tf_cell, tf_stack
from .torch import from_torch, from_torch_cell, to_torch, torch_kwargs, torch_mode
from .trt import (
    RNNv2Weights,
    from_legacy_buffers,
    from_rnnv2,
    layer_index,
    rnnv2_op,
    to_legacy_buffers,
    to_rnnv2,
)

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

"""Run real implementations on converted weights: TF1 graphs, torch.nn modules, onnxruntime.

Each runner takes numpy inputs and returns numpy outputs; nothing here uses tf2rt.engine.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

import oracles
from tf2rt.layouts import OnnxRNNWeights, to_onnx, to_torch, torch_kwargs


def tf1_run(tf: Any, build: Callable[[Any], Any], x: np.ndarray, seed: int = 0, feeds_extra: dict | None = None):
    """Build a TF1 graph with `build(x_placeholder) -> fetches`, give every variable distinct
    random values, run it. Returns ({variable name: value}, fetched numpy results)."""
    v1 = tf.compat.v1
    g = tf.Graph()
    with g.as_default():
        xp = v1.placeholder(tf.float32, x.shape, name="x")
        fetches = build(xp)
        rng = np.random.default_rng(seed)
        with v1.Session(graph=g) as sess:
            sess.run(v1.global_variables_initializer())
            values = {}
            for v in v1.global_variables():
                val = (rng.standard_normal(v.shape.as_list()) * 0.5).astype(np.float32)
                v.load(val, sess)
                values[v.op.name] = val
            out = sess.run(fetches, {xp: x, **(feeds_extra or {})})
    return values, out


def torch_run(stack, x: np.ndarray, mode: str):
    """Run nn.LSTM / nn.GRU / nn.RNN (batch_first) loaded with to_torch(stack)."""
    torch = oracles.torch()
    kw = torch_kwargs(stack)
    cls = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "RNN": torch.nn.RNN}[mode]
    m = cls(**kw)
    m.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in to_torch(stack).items()})
    with torch.no_grad():
        y, state = m(torch.from_numpy(x))
    if mode == "LSTM":
        return y.numpy(), state[0].numpy(), state[1].numpy()
    return y.numpy(), state.numpy()


def onnx_rnn_model(w: OnnxRNNWeights, seq: int, batch: int, input_size: int, with_lengths: bool = False):
    """A one-node ONNX model (opset 14, layout 0) for an RNN node, built with onnx.helper."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    H = w.attributes["hidden_size"]
    dirs = w.W.shape[0]
    inits = [numpy_helper.from_array(w.W, "W"), numpy_helper.from_array(w.R, "R"), numpy_helper.from_array(w.B, "B")]
    inputs = ["X", "W", "R", "B", "seq_lens" if with_lengths else ""]
    if w.P is not None:
        inputs += ["", "", "P"]
        inits.append(numpy_helper.from_array(w.P, "P"))
    outputs = ["Y", "Y_h"] + (["Y_c"] if w.op == "LSTM" else [])
    node = helper.make_node(w.op, inputs, outputs, **w.attributes)
    graph_inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, [seq, batch, input_size])]
    if with_lengths:
        graph_inputs.append(helper.make_tensor_value_info("seq_lens", TensorProto.INT32, [batch]))
    graph_outputs = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [seq, dirs, batch, H]),
                     helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [dirs, batch, H])]
    if w.op == "LSTM":
        graph_outputs.append(helper.make_tensor_value_info("Y_c", TensorProto.FLOAT, [dirs, batch, H]))
    graph = helper.make_graph([node], "rnn", graph_inputs, graph_outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def ort_run(cells, x_bsi: np.ndarray, seq_lens: np.ndarray | None = None):
    """Run the ONNX node for `cells` (one layer: (fw,) or (fw, bw)) in onnxruntime on a
    batch-major input; returns Y [B, S, dirs, H], Y_h [dirs, B, H] (, Y_c)."""
    ort = oracles.onnxruntime()
    w = to_onnx(cells)
    B, S, I = x_bsi.shape
    model = onnx_rnn_model(w, S, B, I, with_lengths=seq_lens is not None)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {"X": np.ascontiguousarray(x_bsi.transpose(1, 0, 2))}
    if seq_lens is not None:
        feeds["seq_lens"] = seq_lens.astype(np.int32)
    outs = sess.run(None, feeds)
    y = outs[0].transpose(2, 0, 1, 3)  # [S, dirs, B, H] -> [B, S, dirs, H]
    return (y, *outs[1:])

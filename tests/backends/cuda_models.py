"""Small ONNX recurrent models (built with onnx.helper) for the cuda backend tests.

Same op forms as tf2rt engine files: one native LSTM/GRU/RNN node per layer (layout 0),
Squeeze (unidirectional) or Transpose+Reshape (bidirectional) between layers, optional
sequence_lens and initial states. onnxruntime (CPU) runs them as the oracle.
Every gate and bias gets distinct random values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

GATES = {"lstm": 4, "gru": 3, "rnn": 1}
OPS = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}


@dataclass
class RnnCase:
    cell: str = "lstm"
    hidden: int = 64
    input_size: int = 32
    batch: int = 2
    seq_len: int = 7
    layers: int = 1
    bidirectional: bool = False
    reverse: bool = False
    lbr: int = 1
    activation: str = "Tanh"  # plain RNN
    peepholes: bool = False
    clip: float | None = None
    seq_lens: bool = False
    initial: bool = False
    seed: int = 0
    weights: list = field(default_factory=list)

    @property
    def dirs(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def direction(self) -> str:
        return "bidirectional" if self.bidirectional else ("reverse" if self.reverse else "forward")


def make_weights(case: RnnCase) -> list[dict[str, np.ndarray]]:
    """Per layer: W [D,G*H,in], R [D,G*H,H], B [D,2*G*H], P [D,3H] (or None); distinct values."""
    rng = np.random.default_rng(case.seed)
    G, H, D = GATES[case.cell], case.hidden, case.dirs
    out = []
    for layer in range(case.layers):
        n_in = case.input_size if layer == 0 else D * H
        s_in, s_h = 1.0 / np.sqrt(n_in), 1.0 / np.sqrt(H)
        w = {
            "W": rng.uniform(-s_in, s_in, (D, G * H, n_in)).astype(np.float32),
            "R": rng.uniform(-s_h, s_h, (D, G * H, H)).astype(np.float32),
            "B": rng.uniform(-0.5, 0.5, (D, 2 * G * H)).astype(np.float32),
            "P": rng.uniform(-0.5, 0.5, (D, 3 * H)).astype(np.float32) if case.peepholes else None,
        }
        out.append(w)
    case.weights = out
    return out


def make_inputs(case: RnnCase) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(case.seed + 1)
    T, B, H, D, L = case.seq_len, case.batch, case.hidden, case.dirs, case.layers
    feeds = {"X": rng.standard_normal((T, B, case.input_size)).astype(np.float32)}
    if case.seq_lens:
        lens = rng.integers(1, T + 1, B).astype(np.int32)
        lens[0] = T
        feeds["seq_lens"] = lens
    if case.initial:
        for layer in range(L):
            feeds[f"h0_{layer}"] = (0.5 * rng.standard_normal((D, B, H))).astype(np.float32)
            if case.cell == "lstm":
                feeds[f"c0_{layer}"] = (0.5 * rng.standard_normal((D, B, H))).astype(np.float32)
    return feeds


def build_model(case: RnnCase, dtype: str = "float32"):
    """The ONNX ModelProto of `case` (weights from make_weights)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    elem = TensorProto.FLOAT16 if dtype == "float16" else TensorProto.FLOAT
    npdt = np.float16 if dtype == "float16" else np.float32
    T, B, H, D = case.seq_len, case.batch, case.hidden, case.dirs
    weights = case.weights or make_weights(case)
    inputs = [helper.make_tensor_value_info("X", elem, [T, B, case.input_size])]
    if case.seq_lens:
        inputs.append(helper.make_tensor_value_info("seq_lens", TensorProto.INT32, [B]))
    nodes, inits, outputs = [], [], []
    x = "X"
    for layer, w in enumerate(weights):
        names = []
        for key in ("W", "R", "B"):
            name = f"{key}_{layer}"
            inits.append(numpy_helper.from_array(w[key].astype(npdt), name))
            names.append(name)
        names.append("seq_lens" if case.seq_lens else "")
        if case.initial:
            inputs.append(helper.make_tensor_value_info(f"h0_{layer}", elem, [D, B, H]))
            names.append(f"h0_{layer}")
            if case.cell == "lstm":
                inputs.append(helper.make_tensor_value_info(f"c0_{layer}", elem, [D, B, H]))
                names.append(f"c0_{layer}")
        else:
            names.append("")
            if case.cell == "lstm":
                names.append("")
        if case.cell == "lstm" and case.peepholes:
            inits.append(numpy_helper.from_array(w["P"].astype(npdt), f"P_{layer}"))
            names.append(f"P_{layer}")
        while names and names[-1] == "":
            names.pop()
        attrs = {"hidden_size": H, "direction": case.direction}
        if case.cell == "gru":
            attrs["linear_before_reset"] = case.lbr
        if case.cell == "rnn":
            attrs["activations"] = [case.activation] * D
        if case.clip:
            attrs["clip"] = float(case.clip)
        outs = [f"Y_{layer}", f"Yh_{layer}"] + ([f"Yc_{layer}"] if case.cell == "lstm" else [])
        nodes.append(helper.make_node(OPS[case.cell], [x] + names, outs, name=f"rnn_{layer}", **attrs))
        outputs.append(helper.make_tensor_value_info(f"Yh_{layer}", elem, [D, B, H]))
        if case.cell == "lstm":
            outputs.append(helper.make_tensor_value_info(f"Yc_{layer}", elem, [D, B, H]))
        if D == 1:
            axes = f"axes_{layer}"
            inits.append(numpy_helper.from_array(np.array([1], np.int64), axes))
            nodes.append(helper.make_node("Squeeze", [f"Y_{layer}", axes], [f"x_{layer + 1}"]))
        else:
            shape = f"shape_{layer}"
            inits.append(numpy_helper.from_array(np.array([T, B, D * H], np.int64), shape))
            nodes.append(helper.make_node("Transpose", [f"Y_{layer}"], [f"t_{layer}"], perm=[0, 2, 1, 3]))
            nodes.append(helper.make_node("Reshape", [f"t_{layer}", shape], [f"x_{layer + 1}"]))
        x = f"x_{layer + 1}"
    outputs.insert(0, helper.make_tensor_value_info(x, elem, [T, B, D * H]))
    graph = helper.make_graph(nodes, "rnn_case", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def run_onnxruntime(model, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


def node_specs(case: RnnCase) -> list:
    """The case's layers as the cuda backend's RnnNodeSpecs (what the engine graph holds)."""
    from tf2rt.backends.cuda.rnn import node_spec

    specs = []
    for w in case.weights:
        attrs = {"hidden_size": case.hidden, "direction": case.direction}
        if case.cell == "gru":
            attrs["linear_before_reset"] = case.lbr
        if case.cell == "rnn":
            attrs["activations"] = [case.activation] * case.dirs
        if case.clip:
            attrs["clip"] = case.clip
        specs.append(node_spec(OPS[case.cell], attrs, w["W"], w["R"], w["B"], w["P"]))
    return specs


def stack_inputs(torch, case: RnnCase, dtype: str, feeds: dict, dev: str = "cuda", batch_major: bool = False,
                 x_dtype: str | None = None) -> tuple:
    """(x, h0, c0, seq_lens) of `feeds` as a recurrent stack takes them (stack_errors); x in
    `x_dtype` (default `dtype`), e.g. an fp16 engine's fp32 input."""
    tdt = getattr(torch, dtype)
    x = torch.from_numpy(feeds["X"]).to(dev, getattr(torch, x_dtype or dtype))
    if batch_major:
        x = x.transpose(0, 1).contiguous().transpose(0, 1)
    h0 = c0 = sl = None
    if case.initial:
        h0 = torch.from_numpy(np.concatenate([feeds[f"h0_{i}"] for i in range(case.layers)])).to(dev, tdt)
        if case.cell == "lstm":
            c0 = torch.from_numpy(np.concatenate([feeds[f"c0_{i}"] for i in range(case.layers)])).to(dev, tdt)
    if case.seq_lens:
        sl = torch.from_numpy(feeds["seq_lens"]).to(dev)
    return x, h0, c0, sl


def stack_errors(torch, case: RnnCase, dtype: str, feeds: dict, stack, dev: str = "cuda",
                 batch_major: bool = False, x_dtype: str | None = None) -> dict:
    """Largest difference from onnxruntime of every output of a recurrent stack (the
    backend's call: x [T, B, in], h0/c0 [L*D, B, H], seq_lens [B] -> y [T, D, B, H], h_n,
    c_n) run on `feeds` of `case`, in `dtype` on torch device `dev`. batch_major: x given as
    the engine's usual [B, T, in] buffer seen time-major; x_dtype: x's type (default dtype)."""
    ref = run_onnxruntime(build_model(case), feeds)
    y, hn, cn = stack(*stack_inputs(torch, case, dtype, feeds, dev, batch_major, x_dtype))
    T, B, D, H = feeds["X"].shape[0], case.batch, case.dirs, case.hidden
    got = {f"x_{case.layers}": y.permute(0, 2, 1, 3).reshape(T, B, D * H)}
    for layer in range(case.layers):
        got[f"Yh_{layer}"] = hn[layer * D:(layer + 1) * D]
        if case.cell == "lstm":
            got[f"Yc_{layer}"] = cn[layer * D:(layer + 1) * D]
    if dev == "cuda":
        torch.cuda.synchronize()
    return {k: float(np.abs(v.float().cpu().numpy() - ref[k]).max()) for k, v in got.items()}


def gpu_torch():
    """torch, for a test that needs the cuda backend's GPU (skipped without a GPU, CUDA or CuPy)."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs an NVIDIA GPU with CUDA")
    pytest.importorskip("cupy")
    return torch

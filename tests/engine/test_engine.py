"""Engine build / save / load / describe / optimize / fp16 / stream / compare."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tf2rt.engine import Engine, build_engine, compare_outputs, describe, format_comparison, load_engine
from tf2rt.errors import FormatError, ShapeError, Tf2rtError
from tf2rt.network import Network

LSTM_GATES = ("input", "forget", "cell", "output")


def lstm_network(H=6, E=4, layers=2, S=1, N=1, seed=0, states=True) -> Network:
    rng = np.random.default_rng(seed)
    net = Network("lstm")
    x = net.add_input("x", "float32", (N, S, E))
    rnn = net.add_rnn_v2(x, layers, H, S, "lstm", name="rnn")
    for i in range(layers):
        for g in LSTM_GATES:
            rnn.set_weights_for_gate(i, g, True, rng.standard_normal(rnn.w_shape(i)) * 0.5)
            rnn.set_weights_for_gate(i, g, False, rng.standard_normal((H, H)) * 0.5)
            rnn.set_bias_for_gate(i, g, True, rng.standard_normal(H) * 0.5)
            rnn.set_bias_for_gate(i, g, False, rng.standard_normal(H) * 0.5)
    if states:
        rnn.hidden_state = net.add_input("h0", "float32", (N, layers, H))
        rnn.cell_state = net.add_input("c0", "float32", (N, layers, H))
    net.mark_output(rnn.get_output(0), "y")
    net.mark_output(rnn.get_output(1), "h")
    net.mark_output(rnn.get_output(2), "c")
    return net


def test_save_load_round_trip(tmp_path):
    import onnx
    import onnxruntime as ort

    engine = build_engine(lstm_network(), metadata={"source": "unit-test", "model": {"name": "tiny"}})
    path = engine.save(tmp_path / "m.engine.onnx")
    model = onnx.load(str(path))  # a plain, valid ONNX file
    onnx.checker.check_model(model, full_check=True)
    assert [n.op_type for n in model.graph.node].count("LSTM") == 2  # native ops, one per stack layer, no unrolling
    assert not any(n.op_type in ("Loop", "Scan") for n in model.graph.node)
    ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = json.loads(next(p.value for p in model.metadata_props if p.key == "tf2rt"))
    assert meta["source"] == "unit-test" and meta["model"] == {"name": "tiny"} and meta["precision"] == "fp32"
    loaded = load_engine(path)
    assert loaded.inputs == engine.inputs and loaded.outputs == engine.outputs and loaded.states == engine.states
    feeds = {"x": np.ones((1, 1, 4), np.float32), "h0": np.zeros((1, 2, 6), np.float32),
             "c0": np.zeros((1, 2, 6), np.float32)}
    a, b = engine.run(feeds), loaded.run(feeds)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    y, h, c = loaded(*feeds.values())
    np.testing.assert_array_equal(y, a["y"])


@pytest.mark.parametrize("content,match", [
    (b"", "no graph"),
    (b"\x00\x01garbage\xff" * 10, "not an ONNX engine file"),
    (b"hello world, not protobuf", "not an ONNX engine file"),
])
def test_corrupt_engine_files(tmp_path, content, match):
    p = tmp_path / "bad.onnx"
    p.write_bytes(content)
    with pytest.raises(FormatError, match=match):
        load_engine(p)


def test_truncated_engine_file(tmp_path):
    data = build_engine(lstm_network()).serialize()
    p = tmp_path / "t.onnx"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError):
        load_engine(p)


def test_plain_onnx_loads_as_a_foreign_model(tmp_path):
    import onnx

    engine = build_engine(lstm_network())
    model = onnx.ModelProto()
    model.CopyFrom(engine.onnx)
    del model.metadata_props[:]
    p = tmp_path / "plain.onnx"
    onnx.save(model, str(p))
    foreign = load_engine(p)
    assert foreign.foreign and not engine.foreign and foreign.states == []
    assert [(s.name, s.dtype, s.shape) for s in foreign.inputs] == [(s.name, s.dtype, s.shape) for s in engine.inputs]
    assert [(s.name, s.dtype, s.shape) for s in foreign.outputs] == [(s.name, s.dtype, s.shape) for s in engine.outputs]
    with pytest.raises(FormatError, match="does not exist"):
        load_engine(tmp_path / "missing.onnx")


def test_describe(tmp_path):
    engine = build_engine(lstm_network(), "fp16", metadata={"source": "ckpt"})
    d = describe(engine)
    assert d["precision"] == "fp16" and d["source"] == "ckpt" and d["opset"] == 17
    assert d["ops"]["LSTM"] == 2
    assert d["inputs"][0] == {"name": "x", "dtype": "float32", "shape": [1, 1, 4]}
    # 2 layers x (W 4HxE|H + R 4HxH + B 8H), stored as float16
    H, E = 6, 4
    expect = 2 * (4 * H * E + 4 * H * H + 8 * H) + 2 * (4 * H * H + 4 * H * H + 8 * H)
    halves = sum(int(np.prod(t.dims)) * 2 for t in engine.onnx.graph.initializer if t.data_type == 10)
    others = sum(int(np.prod(t.dims)) * 8 for t in engine.onnx.graph.initializer if t.data_type == 7)
    assert halves == expect and d["weight_bytes"] == expect + others
    engine.save(tmp_path / "e.onnx")
    assert describe(tmp_path / "e.onnx")["states"] == d["states"]


def test_optimizations_fold_constants_remove_dead_and_identities():
    net = Network("opt")
    x = net.add_input("x", "float32", (2, 3))
    a = net.add_constant((3,), np.array([1, 2, 3], np.float32))
    b = net.add_constant((3,), np.array([10, 20, 30], np.float32))
    ab = net.add_elementwise(a.output, b.output, "prod", name="folded")  # constant subgraph
    sc = net.add_unary(ab.output, "sqrt", name="folded_too")
    ident = net.add_identity(x, name="ident")
    y = net.add_elementwise(ident.output, sc.output, "sum", name="out")
    net.add_activation(x, "tanh", name="dead")  # reaches no output
    net.mark_output(y.output, "y")
    engine = build_engine(net)
    ops = [n.op_type for n in engine.onnx.graph.node]
    assert ops == ["Add"], ops
    stats = engine.metadata["optimizations"]
    assert stats["constants_folded"] == 2 and stats["identities_removed"] == 1
    xv = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_allclose(engine(xv), xv + np.sqrt([10, 40, 90]), rtol=1e-6)
    unopt = build_engine(net, optimize=False)
    assert len(unopt.onnx.graph.node) > 1
    np.testing.assert_allclose(unopt(xv), engine(xv), rtol=1e-6)


def test_fp16_stores_float16_weights_and_keeps_float32_boundary():
    engine = build_engine(lstm_network(), "fp16")
    dts = {t.data_type for t in engine.onnx.graph.initializer if t.data_type in (1, 10)}
    assert dts == {10}
    assert all(s.dtype == "float32" for s in engine.inputs + engine.outputs)
    ref = build_engine(lstm_network())
    feeds = {"x": np.full((1, 1, 4), 0.3, np.float32), "h0": np.zeros((1, 2, 6), np.float32),
             "c0": np.zeros((1, 2, 6), np.float32)}
    for backend in ("onnxruntime", "reference"):
        got = engine.run(feeds, backend=backend)
        want = ref.run(feeds, backend=backend)
        for k in want:
            assert got[k].dtype == np.float32
            np.testing.assert_allclose(got[k], want[k], atol=2e-2)


def test_bad_precision():
    with pytest.raises(Tf2rtError, match="precision must be one of"):
        build_engine(lstm_network(), "int4")


def test_network_without_outputs():
    net = Network("empty")
    net.add_input("x", "float32", (1,))
    with pytest.raises(ShapeError, match="has no outputs"):
        build_engine(net)


@pytest.mark.parametrize("backend", ["onnxruntime", "reference"])
def test_streaming_equals_whole_sequence(backend):
    S = 7
    whole = build_engine(lstm_network(S=S, states=False, seed=4))
    step = build_engine(lstm_network(S=1, states=True, seed=4))
    assert step.states == [("h0", "h"), ("c0", "c")]
    xs = np.random.default_rng(1).standard_normal((1, S, 4)).astype(np.float32)
    want = whole.run({"x": xs}, backend=backend)
    stream = step.stream(backend)
    ys = [stream.step({"x": xs[:, t:t + 1]})["y"] for t in range(S)]
    np.testing.assert_allclose(np.concatenate(ys, 1), want["y"], atol=1e-6)
    np.testing.assert_allclose(stream.state["h0"], want["h"], atol=1e-6)
    np.testing.assert_allclose(stream.state["c0"], want["c"], atol=1e-6)
    stream.reset()
    np.testing.assert_allclose(stream.step({"x": xs[:, :1]})["y"], want["y"][:, :1], atol=1e-6)


def test_stream_needs_states():
    with pytest.raises(Tf2rtError, match="declares no states"):
        build_engine(lstm_network(states=False)).stream()


def test_mark_state_explicit():
    net = Network("acc")
    s = net.add_input("s", "float32", (2,))
    x = net.add_input("x", "float32", (2,))
    total = net.add_elementwise(s, x, "sum", name="total")
    net.mark_state(s, total.output)
    st = build_engine(net).stream()
    for v in (1.0, 2.0, 3.0):
        out = st.step({"x": np.full(2, v, np.float32)})
    np.testing.assert_array_equal(out["total"], [6.0, 6.0])


def test_compare_outputs_reports_min_tolerance():
    ref = {"a": np.array([1.0, 2.0, 4.0]), "i": np.array([1, 2, 3])}
    cand = {"a": np.array([1.0, 2.1, 4.0]), "i": np.array([1, 2, 4])}
    rows = {r.name: r for r in compare_outputs(ref, cand, atol=1e-3, rtol=0.0)}
    assert rows["a"].max_abs == pytest.approx(0.1) and rows["a"].min_atol == pytest.approx(0.1)
    assert rows["a"].max_rel == pytest.approx(0.05) and not rows["a"].passed
    assert not rows["i"].passed and "1 of 3" in rows["i"].note
    ok = compare_outputs(ref, cand, atol=0.11, rtol=0.0, names=["a"])[0]
    assert ok.passed
    with_rtol = compare_outputs(ref, cand, atol=0.0, rtol=0.01, names=["a"])[0]
    assert with_rtol.min_atol == pytest.approx(0.1 - 0.02)
    missing = compare_outputs(ref, {"a": ref["a"]})
    assert [r.passed for r in missing] == [True, False]
    assert "MISMATCH" in format_comparison(missing)


def test_run_feed_errors_name_the_tensor():
    engine = build_engine(lstm_network())
    ok = {"x": np.ones((1, 1, 4), np.float32), "h0": np.zeros((1, 2, 6), np.float32),
          "c0": np.zeros((1, 2, 6), np.float32)}
    for backend in ("onnxruntime", "reference"):
        with pytest.raises(ShapeError, match="missing input.*'x'"):
            engine.run({k: v for k, v in ok.items() if k != "x"}, backend=backend)
        # state inputs are optional: left out, they are zeros
        no_c0 = engine.run({k: v for k, v in ok.items() if k != "c0"}, backend=backend)
        for name, value in engine.run(ok, backend=backend).items():
            np.testing.assert_array_equal(no_c0[name], value)
        with pytest.raises(ShapeError, match="unknown input.*'z'"):
            engine.run({**ok, "z": ok["x"]}, backend=backend)
        with pytest.raises(ShapeError, match=r"input 'x' has shape \[1, 2, 4\], the engine expects \[1, 1, 4\]"):
            engine.run({**ok, "x": np.ones((1, 2, 4), np.float32)}, backend=backend)
        with pytest.raises(ShapeError, match="input 'h0' has dtype float64"):
            engine.run({**ok, "h0": np.zeros((1, 2, 6))}, backend=backend)
    assert isinstance(engine, Engine)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_constant_and_input_as_outputs(precision):
    net = Network("pass")
    x = net.add_input("x", "float32", (2,))
    net.mark_output(net.add_constant((2,), np.array([1.5, -2.0], np.float32), name="k").output)
    net.mark_output(x, "x")
    engine = build_engine(net, precision)
    for backend in ("onnxruntime", "reference"):
        out = engine.run({"x": np.array([3.0, 4.0], np.float32)}, backend=backend)
        np.testing.assert_array_equal(out["k"], [1.5, -2.0])
        np.testing.assert_array_equal(out["x"], [3.0, 4.0])


def test_external_data_is_refused(tmp_path):
    engine = build_engine(lstm_network())
    t = engine.onnx.graph.initializer[0]
    t.data_location = 1  # EXTERNAL
    entry = t.external_data.add()
    entry.key, entry.value = "location", "../../etc/passwd"
    t.ClearField("raw_data")
    p = tmp_path / "ext.onnx"
    p.write_bytes(engine.serialize())
    with pytest.raises(FormatError, match="external data"):
        load_engine(p)


def test_fp16_keeps_float32_only_inputs():
    """An op input typed float32 whatever T (Resize scales) stays float32 in an fp16 engine."""
    from tf2rt.engine.lowering import lowering
    from tf2rt.network import Layer

    class Upsample(Layer):
        type = "test_upsample2x"

        def __init__(self, x):
            super().__init__([x])

        def infer(self):
            x = self.input_tensor(0)
            return [(x.dtype, x.shape[:2] + (x.shape[2] * 2, x.shape[3] * 2))]

    @lowering("test_upsample2x")
    def _lower(layer, ctx):
        scales = ctx.const(np.array([1, 1, 2, 2], np.float32), f"{layer.name}/scales")
        ctx.node1("Resize", [ctx.input(layer, 0), "", scales], ctx.output(layer), name=layer.name, mode="nearest")

    net = Network("up")
    x = net.add_input("x", "float32", (1, 1, 2, 2))
    net.mark_output(net.add_layer(Upsample(x), "up").output)
    engine = build_engine(net, "fp16")  # onnx.checker (full) runs inside
    assert {t.name: t.data_type for t in engine.onnx.graph.initializer} == {"up/scales": 1}
    xv = np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2)
    np.testing.assert_array_equal(engine(xv), xv.repeat(2, 2).repeat(2, 3))

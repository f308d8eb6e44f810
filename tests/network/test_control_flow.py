"""Loop and If layers: hand-built networks on onnxruntime and the reference backend against
numpy, fp16, save/load, optimizer passes around subgraphs, int8, and the layers' checks."""

from __future__ import annotations

import numpy as np
import pytest

from tf2rt.engine import build_engine, describe, load_engine
from tf2rt.errors import ShapeError, UnsupportedError
from tf2rt.network import Network

BACKENDS = ("onnxruntime", "reference")


def run_all(engine, feeds):
    """{backend: outputs} for every backend."""
    return {b: engine.run(feeds, backend=b) for b in BACKENDS}


def const(net, value, name, dtype=np.float32):
    arr = np.asarray(value, dtype)
    return net.add_constant(arr.shape, arr, name=name).output


def true(net, name="true"):
    return const(net, True, name, np.bool_)


# --- loops ------------------------------------------------------------------------------------
def counter_network(trip_dtype="int64", trip_shape=()) -> Network:
    """n iterations of: count += 1; acc += x * (i + 1); scan outputs acc and i."""
    body = Network("counter_body")
    i = body.add_input("i", "int64", ())
    count = body.add_input("count", "int64", ())
    acc = body.add_input("acc", "float32", (3,))
    x = body.add_input("x", "float32", (3,))
    step = body.add_elementwise(count, const(body, 1, "one", np.int64), "sum", name="count_next").output
    k = body.add_cast(body.add_elementwise(i, const(body, 1, "one_i", np.int64), "sum", name="i1").output,
                      "float32", name="k").output
    acc_next = body.add_elementwise(acc, body.add_elementwise(x, k, "prod", name="xk").output, "sum",
                                    name="acc_next").output
    for t in (true(body), step, acc_next, body.add_identity(acc_next, name="acc_item").output,
              body.add_identity(i, name="i_item").output):
        body.mark_output(t)
    net = Network("counter")
    x = net.add_input("x", "float32", (3,))
    n = net.add_input("n", trip_dtype, trip_shape)
    zero = const(net, 0, "zero", np.int64)
    acc0 = const(net, [10.0, 20.0, 30.0], "acc0")
    loop = net.add_loop(body, [zero, acc0], [x], trip_count=n, name="counter")
    for name, t in zip(("count", "acc", "accs", "steps"), loop.outputs):
        net.mark_output(t, name)
    return net


@pytest.mark.parametrize("trip_dtype,trip_shape", [("int64", ()), ("int32", ()), ("int32", (1,))])
def test_counter_loop_with_cumulative_sum_and_scans(trip_dtype, trip_shape):
    net = counter_network(trip_dtype, trip_shape)
    layer = net.get_layer(2)
    assert layer.type == "loop" and [t.shape for t in layer.outputs] == [(), (3,), (None, 3), (None,)]
    assert "loop (body: " in net.summary()
    engine = build_engine(net)
    x = np.array([1.0, -2.0, 0.5], np.float32)
    for n in (0, 1, 4):
        acc, accs, steps = np.array([10.0, 20.0, 30.0], np.float32), [], []
        for i in range(n):
            acc = acc + x * (i + 1)
            accs.append(acc)
            steps.append(i)
        for backend, out in run_all(engine, {"x": x, "n": np.full(trip_shape, n, trip_dtype)}).items():
            assert out["count"] == n, backend
            np.testing.assert_allclose(out["acc"], acc, rtol=1e-6)
            assert out["accs"].shape == (n, 3) and out["steps"].shape == (n,) and out["steps"].dtype == np.int64
            np.testing.assert_allclose(out["accs"], np.reshape(accs, (n, 3)), rtol=1e-6)
            np.testing.assert_array_equal(out["steps"], np.arange(n))


def gather_network() -> Network:
    """for i in range(n): row = table[i]; total += row; emit 2 * row (scan)."""
    body = Network("rows_body")
    i = body.add_input("i", "int64", ())
    total = body.add_input("total", "float32", (4,))
    table = body.add_input("table", "float32", (None, 4))
    row = body.add_gather(table, i, axis=0, name="row").output
    body.mark_output(true(body))
    body.mark_output(body.add_elementwise(total, row, "sum", name="total_next").output)
    body.mark_output(body.add_scale(row, "uniform", scale=np.array([2.0], np.float32), name="twice").output)
    net = Network("rows")
    table = net.add_input("table", "float32", (None, 4))
    n = net.add_input("n", "int64", ())
    loop = net.add_loop(body, [const(net, np.zeros(4), "total0")], [table], trip_count=n, name="rows")
    net.mark_output(loop.get_output(0), "total")
    net.mark_output(loop.get_output(1), "rows2")
    return net


def test_loop_gathers_rows_of_an_invariant_and_stacks_scan_outputs():
    engine = build_engine(gather_network())
    table = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    for n in (0, 3, 5):  # the trip count is a network input; 0 iterations included
        for backend, out in run_all(engine, {"table": table, "n": np.array(n, np.int64)}).items():
            np.testing.assert_allclose(out["total"], table[:n].sum(0), rtol=1e-5, atol=1e-6)
            assert out["rows2"].shape == (n, 4), (backend, out["rows2"].shape)  # empty scan is [0, 4]
            np.testing.assert_allclose(out["rows2"], 2 * table[:n], rtol=1e-6)


def doubling_network() -> Network:
    """while x.sum() < limit: x = x * 2 (and count the iterations)."""
    body = Network("double_body")
    body.add_input("i", "int64", ())
    x = body.add_input("x", "float32", (None,))
    k = body.add_input("k", "int64", ())
    limit = body.add_input("limit", "float32", ())
    x2 = body.add_elementwise(x, const(body, 2.0, "two"), "prod", name="x2").output
    total = body.add_reduce(x2, "sum", [0], name="total").output
    body.mark_output(body.add_elementwise(total, limit, "less", name="again").output)
    body.mark_output(x2)
    body.mark_output(body.add_elementwise(k, const(body, 1, "one", np.int64), "sum", name="k_next").output)
    net = Network("double")
    x = net.add_input("x", "float32", (None,))
    limit = net.add_input("limit", "float32", ())
    start = net.add_elementwise(net.add_reduce(x, "sum", [0], name="sum0").output, limit, "less", name="start")
    loop = net.add_loop(body, [x, const(net, 0, "k0", np.int64)], [limit], condition=start.output, name="double")
    net.mark_output(loop.get_output(0), "y")
    net.mark_output(loop.get_output(1), "iterations")
    return net


def test_loop_ended_by_its_condition():
    engine = build_engine(doubling_network())
    for x, limit in (([0.5, 0.25], 10.0), ([1.0, 2.0, 3.0], 100.0), ([5.0], 1.0)):
        x = np.array(x, np.float32)
        y, k = x.copy(), 0
        while y.sum() < limit:
            y, k = y * 2, k + 1
        for backend, out in run_all(engine, {"x": x, "limit": np.array(limit, np.float32)}).items():
            np.testing.assert_array_equal(out["y"], y)
            assert int(out["iterations"]) == k, backend


def growing_network() -> Network:
    """acc [0, 4] -> [n, 4]: each iteration appends the row x * (i + 1)."""
    body = Network("grow_body")
    i = body.add_input("i", "int64", ())
    acc = body.add_input("acc", "float32", (None, 4))
    x = body.add_input("x", "float32", (4,))
    k = body.add_cast(i, "float32", name="k").output
    k1 = body.add_elementwise(k, const(body, 1.0, "one"), "sum", name="k1").output
    row = body.add_shuffle(body.add_elementwise(x, k1, "prod", name="xk").output, reshape_dims=(1, 4), name="row")
    body.mark_output(true(body))
    body.mark_output(body.add_concatenation([acc, row.output], axis=0, name="acc_next").output)
    net = Network("grow")
    x = net.add_input("x", "float32", (4,))
    n = net.add_input("n", "int64", ())
    acc0 = net.add_constant((0, 4), np.zeros((0, 4), np.float32), name="acc0").output
    loop = net.add_loop(body, [acc0], [x], trip_count=n, name="grow")
    net.mark_output(loop.output, "acc")
    return net


def test_carried_value_grows_each_iteration():
    net = growing_network()
    assert net.outputs[0].shape == (None, 4)  # [0, 4] initially, [None, 4] in the body: dim 0 is dynamic
    engine = build_engine(net)
    x = np.array([1.0, 2.0, -1.0, 0.5], np.float32)
    for n in (0, 1, 3):
        want = np.array([x * (i + 1) for i in range(n)], np.float32).reshape(n, 4)
        for backend, out in run_all(engine, {"x": x, "n": np.array(n, np.int64)}).items():
            assert out["acc"].shape == (n, 4), backend
            np.testing.assert_array_equal(out["acc"], want)


def nested_network() -> Network:
    """for i in range(n): for j in range(m): s += w * (i * m + j); the inner loop reads i and m,
    values of the outer body, as invariants, and carries w (a weight of the outer body)."""
    inner = Network("inner")
    j = inner.add_input("j", "int64", ())
    s = inner.add_input("s", "float32", (2,))
    i = inner.add_input("i", "int64", ())
    m = inner.add_input("m", "int64", ())
    w = inner.add_input("w", "float32", (2,))
    idx = inner.add_elementwise(inner.add_elementwise(i, m, "prod", name="im").output, j, "sum", name="idx").output
    term = inner.add_elementwise(w, inner.add_cast(idx, "float32", name="idx_f").output, "prod", name="term").output
    inner.mark_output(true(inner))
    inner.mark_output(inner.add_elementwise(s, term, "sum", name="s_next").output)

    outer = Network("outer")
    i = outer.add_input("i", "int64", ())
    s = outer.add_input("s", "float32", (2,))
    m = outer.add_input("m", "int64", ())
    w = const(outer, [1.0, -0.5], "w")
    loop = outer.add_loop(inner, [s], [i, m, w], trip_count=m, name="inner")
    outer.mark_output(true(outer))
    outer.mark_output(loop.output)

    net = Network("nested")
    n = net.add_input("n", "int64", ())
    m = net.add_input("m", "int64", ())
    loop = net.add_loop(outer, [const(net, [0.0, 0.0], "s0")], [m], trip_count=n, name="outer")
    net.mark_output(loop.output, "s")
    return net


def test_nested_loop():
    engine = build_engine(nested_network())
    w = np.array([1.0, -0.5], np.float32)
    for n, m in ((3, 4), (0, 2), (2, 0)):
        s = np.zeros(2, np.float32)
        for i in range(n):
            for j in range(m):
                s = s + w * np.float32(i * m + j)
        for backend, out in run_all(engine, {"n": np.array(n), "m": np.array(m)}).items():
            np.testing.assert_array_equal(out["s"], s)
    # subgraph names are unique in the model and carry their layer's prefix
    loop = next(nd for nd in engine.onnx.graph.node if nd.op_type == "Loop")
    inner = next(nd for nd in loop.attribute[0].g.node if nd.op_type == "Loop")
    names = [o for nd in inner.attribute[0].g.node for o in nd.output]
    assert names and all(o.startswith("outer/inner/") for o in names)
    assert any(t.name.startswith("outer/") for t in engine.onnx.graph.initializer)  # body weights: main graph


# --- If -------------------------------------------------------------------------------------
def branches() -> tuple[Network, Network]:
    then = Network("then")
    x = then.add_input("x", "float32", (3,))
    y = then.add_fully_connected(then.add_shuffle(x, reshape_dims=(1, 3), name="row").output, 3,
                                 np.array([[1, 2, 0], [0, 1, 0], [-1, 0, 3]], np.float32), name="fc").output
    then.mark_output(then.add_shuffle(y, reshape_dims=(3,), name="flat").output)
    then.mark_output(const(then, 1, "tag", np.int32))
    other = Network("else")
    x = other.add_input("x", "float32", (3,))
    neg = other.add_unary(x, "neg", name="neg").output
    other.mark_output(other.add_concatenation([x, neg], axis=0, name="both").output)
    other.mark_output(const(other, 2, "tag", np.int32))
    return then, other


def if_network() -> Network:
    net = Network("choose")
    x = net.add_input("x", "float32", (3,))
    positive = net.add_elementwise(net.add_reduce(x, "sum", [0], name="sum").output, const(net, 0.0, "zero"),
                                   "greater", name="positive").output
    then, other = branches()
    layer = net.add_if(positive, then, other, [x], name="choose")
    net.mark_output(layer.get_output(0), "y")
    net.mark_output(layer.get_output(1), "tag")
    return net


def test_if_takes_both_branches():
    net = if_network()
    assert [t.shape for t in net.outputs] == [(None,), ()]  # [3] vs [6]: merged to [None]
    engine = build_engine(net)
    kernel = np.array([[1, 2, 0], [0, 1, 0], [-1, 0, 3]], np.float32)
    for x in ([1.0, 2.0, 3.0], [-1.0, 0.5, -2.0]):
        x = np.array(x, np.float32)
        want, tag = (x @ kernel, 1) if x.sum() > 0 else (np.concatenate([x, -x]), 2)
        for backend, out in run_all(engine, {"x": x}).items():
            np.testing.assert_allclose(out["y"], want, rtol=1e-6)
            assert int(out["tag"]) == tag, backend


def if_in_loop_network() -> Network:
    """for i in range(n): s = s + x if i is even else s - x / 2."""
    then, other = Network("even"), Network("odd")
    for br, op, scale in ((then, "sum", 1.0), (other, "sub", 0.5)):
        s = br.add_input("s", "float32", (2,))
        x = br.add_input("x", "float32", (2,))
        xs = br.add_elementwise(x, const(br, scale, "scale"), "prod", name="xs").output
        br.mark_output(br.add_elementwise(s, xs, op, name="s_next").output)
    body = Network("body")
    i = body.add_input("i", "int64", ())
    s = body.add_input("s", "float32", (2,))
    x = body.add_input("x", "float32", (2,))
    two = const(body, 2, "two", np.int64)
    half = body.add_elementwise(body.add_elementwise(i, two, "div", name="half").output, two, "prod", name="even_i")
    even = body.add_elementwise(half.output, i, "equal", name="even").output
    choice = body.add_if(even, then, other, [s, x], name="step")
    body.mark_output(true(body))
    body.mark_output(choice.output)
    net = Network("alternate")
    x = net.add_input("x", "float32", (2,))
    n = net.add_input("n", "int64", ())
    loop = net.add_loop(body, [const(net, [0.0, 0.0], "s0")], [x], trip_count=n, name="alternate")
    net.mark_output(loop.output, "s")
    return net


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_if_inside_a_loop(precision):
    engine = build_engine(if_in_loop_network(), precision)
    x = np.array([1.5, -4.0], np.float32)
    for n in (0, 1, 5):
        s = np.zeros(2, np.float32)
        for i in range(n):
            s = s + x if i % 2 == 0 else s - x * np.float32(0.5)
        for out in run_all(engine, {"x": x, "n": np.array(n)}).values():
            np.testing.assert_allclose(out["s"], s, atol=1e-2 if precision == "fp16" else 0)


# --- fp16, files, passes ------------------------------------------------------------------------
def rnn_loop_network(H=4) -> Network:
    """h = tanh(h @ W + b) for n steps, W and b weights of the body; every h is a scan output."""
    rng = np.random.default_rng(3)
    body = Network("cell")
    body.add_input("i", "int64", ())
    h = body.add_input("h", "float32", (1, H))
    y = body.add_fully_connected(h, H, rng.standard_normal((H, H)).astype(np.float32) * 0.6,
                                 rng.standard_normal(H).astype(np.float32) * 0.3, name="dense").output
    hn = body.add_activation(y, "tanh", name="tanh").output
    body.mark_output(true(body))
    body.mark_output(hn)
    body.mark_output(body.add_identity(hn, name="h_item").output)
    net = Network("rnn_loop")
    h0 = net.add_input("h0", "float32", (1, H))
    n = net.add_input("n", "int64", ())
    loop = net.add_loop(body, [h0], trip_count=n, name="cell")
    net.mark_output(loop.get_output(0), "h")
    net.mark_output(loop.get_output(1), "hs")
    return net


def rnn_loop_numpy(net: Network, h0: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    dense = net.get_layer(0).body.get_layer(0)
    w, b = np.asarray(dense.kernel, np.float64), np.asarray(dense.bias, np.float64)
    h, hs = h0.astype(np.float64), []
    for _ in range(n):
        h = np.tanh(h @ w.reshape(h.shape[-1], -1) + b)
        hs.append(h)
    return h, np.array(hs).reshape(n, *h0.shape)


def test_fp16_engine_with_a_loop():
    net = rnn_loop_network()
    engine = build_engine(net, "fp16")  # onnx.checker (full) runs inside
    graph = engine.onnx.graph
    assert {t.data_type for t in graph.initializer if t.data_type in (1, 10)} == {10}
    body = next(nd for nd in graph.node if nd.op_type == "Loop").attribute[0].g
    assert body.input[2].type.tensor_type.elem_type == 10 and not body.initializer
    h0 = np.array([[0.3, -0.2, 0.9, 0.1]], np.float32)
    for n in (0, 6):
        h, hs = rnn_loop_numpy(net, h0, n)
        for out in run_all(engine, {"h0": h0, "n": np.array(n)}).values():
            assert out["h"].dtype == np.float32 and out["hs"].shape == (n, 1, 4)
            np.testing.assert_allclose(out["h"], h, atol=2e-2)
            np.testing.assert_allclose(out["hs"], hs, atol=2e-2)


def test_save_load_round_trip_and_describe(tmp_path):
    import onnx

    for net in (rnn_loop_network(), if_network()):
        engine = build_engine(net)
        path = engine.save(tmp_path / f"{net.name}.onnx")
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
        loaded = load_engine(path)
        feeds = {"h0": np.full((1, 4), 0.5, np.float32), "n": np.array(3)} if net.name == "rnn_loop" \
            else {"x": np.array([1.0, -3.0, 0.5], np.float32)}
        for backend in BACKENDS:
            a, b = engine.run(feeds, backend=backend), loaded.run(feeds, backend=backend)
            assert a.keys() == b.keys()
            for k in a:
                np.testing.assert_array_equal(a[k], b[k])
        d = describe(loaded)
        sizes = d["subgraphs"]
        assert len(sizes) == 1 and next(iter(sizes.values())).startswith(("Loop of", "If of"))
    h, _ = rnn_loop_numpy(rnn_loop_network(), np.full((1, 4), 0.5, np.float32), 3)
    np.testing.assert_allclose(load_engine(tmp_path / "rnn_loop.onnx").run(
        {"h0": np.full((1, 4), 0.5, np.float32), "n": np.array(3)})["h"], h, rtol=1e-5)


def test_body_weights_as_external_data(tmp_path):
    """Body weights live in the main graph, so external data saved by onnx is read back."""
    import onnx

    net = rnn_loop_network()
    engine = build_engine(net)
    path = tmp_path / "ext.onnx"
    onnx.save_model(engine.onnx, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="ext.data", size_threshold=0)
    loaded = load_engine(path)
    h0 = np.full((1, 4), -0.25, np.float32)
    h, _ = rnn_loop_numpy(net, h0, 4)
    for backend in BACKENDS:
        np.testing.assert_allclose(loaded.run({"h0": h0, "n": np.array(4)}, backend=backend)["h"], h, rtol=1e-5)


def test_optimizer_passes_keep_what_bodies_read():
    """An Identity, a Transpose pair and a foldable expression before the loop are rewritten in
    the main graph; the body, which reads their results by outer name, follows."""
    body = Network("body")
    body.add_input("i", "int64", ())
    s = body.add_input("s", "float32", (2, 3))
    a = body.add_input("a", "float32", (2, 3))
    c = body.add_input("c", "float32", (2, 3))
    body.mark_output(true(body))
    body.mark_output(body.add_elementwise(s, body.add_elementwise(a, c, "prod", name="ac").output, "sum",
                                          name="s_next").output)
    net = Network("passes")
    x = net.add_input("x", "float32", (2, 3))
    a = net.add_identity(x, name="alias").output
    t = net.add_shuffle(net.add_shuffle(a, first_transpose=(1, 0), name="t1").output, first_transpose=(1, 0),
                        name="t2").output
    c = net.add_elementwise(const(net, np.full((2, 3), 2.0), "c1"), const(net, np.full((2, 3), 0.5), "c2"),
                            "prod", name="c").output  # folds to a constant
    loop = net.add_loop(body, [const(net, np.zeros((2, 3)), "s0")], [t, c], trip_count=const(net, 3, "n", np.int64),
                        name="acc")
    net.mark_output(loop.output, "s")
    engine = build_engine(net)
    stats = engine.metadata["optimizations"]
    assert stats["identities_removed"] >= 1 and stats["transposes_cancelled"] >= 1 and stats["constants_folded"] >= 1
    xv = np.arange(6, dtype=np.float32).reshape(2, 3)
    for out in run_all(engine, {"x": xv}).values():
        np.testing.assert_array_equal(out["s"], 3 * xv * 1.0)


def test_int8_leaves_loop_bodies_in_float():
    from tf2rt.engine.int8 import quantize

    rng = np.random.default_rng(5)
    body = Network("body")
    body.add_input("i", "int64", ())
    h = body.add_input("h", "float32", (None, 4))
    y = body.add_fully_connected(h, 4, rng.standard_normal((4, 4)).astype(np.float32) * 0.5, name="inner").output
    body.mark_output(true(body))
    body.mark_output(body.add_activation(y, "tanh", name="tanh").output)
    net = Network("q")
    x = net.add_input("x", "float32", (None, 4))
    first = net.add_fully_connected(x, 4, rng.standard_normal((4, 4)).astype(np.float32), name="first").output
    loop = net.add_loop(body, [first], trip_count=const(net, 2, "n", np.int64), name="steps")
    net.mark_output(loop.output, "y")
    engine = build_engine(net)
    calib = rng.standard_normal((16, 4)).astype(np.float32)
    q = quantize(engine, calib)
    ops = [nd.op_type for nd in q.onnx.graph.node]
    assert "QuantizeLinear" in ops and "Loop" in ops
    body_ops = [nd.op_type for nd in next(nd for nd in q.onnx.graph.node if nd.op_type == "Loop").attribute[0].g.node]
    assert "MatMul" in body_ops and "DequantizeLinear" not in body_ops
    want = engine.run({"x": calib})["y"]
    got = q.run({"x": calib})["y"]
    assert np.abs(got - want).max() < 0.1


def test_cuda_backend_refuses_control_flow():
    from tf2rt.backends.cuda.graph import refuse_control_flow

    engine = build_engine(gather_network())
    with pytest.raises(UnsupportedError, match=r"node 'rows' is an ONNX Loop.*onnxruntime or reference backend"):
        refuse_control_flow(engine.onnx)
    pytest.importorskip("torch")
    from tf2rt.backends.cuda.graph import GraphExecutor
    from tf2rt.backends.cuda.plan import DeviceLimits

    with pytest.raises(UnsupportedError, match="node 'choose' is an ONNX If"):
        GraphExecutor(build_engine(if_network()).onnx, DeviceLimits(), device="cpu")


# --- the layers' checks -----------------------------------------------------------------------
def simple_body(carried_dtype="float32", inputs=2, cond_dtype="bool") -> Network:
    body = Network("b")
    body.add_input("i", "int64", ())
    v = body.add_input("v", carried_dtype, (3,))
    for k in range(inputs - 2):
        body.add_input(f"extra{k}", "float32", (3,))
    cond = true(body) if cond_dtype == "bool" else const(body, 1.0, "one")
    body.mark_output(cond)
    body.mark_output(body.add_identity(v, name="v_next").output)
    return body


def outer() -> tuple[Network, object, object]:
    net = Network("outer")
    return net, net.add_input("x", "float32", (3,)), net.add_input("n", "int64", ())


def test_loop_checks_its_body():
    net, x, n = outer()
    with pytest.raises(ShapeError, match=r"body 'b' has 3 inputs; expected 2: the iteration number, then 1 carried "
                                         r"and 0 invariant"):
        net.add_loop(simple_body(inputs=3), [x], trip_count=n)
    with pytest.raises(ShapeError, match=r"body input 1 \(v\) is carried value 0: expected float32\[3\] like x.*"
                                         r"got int32\[3\]"):
        net.add_loop(simple_body("int32"), [x], trip_count=n)
    with pytest.raises(ShapeError, match="needs a trip_count or a condition"):
        net.add_loop(simple_body(), [x])
    with pytest.raises(ShapeError, match=r"body output 0 \(one\) is the next condition: expected bool\[\], "
                                         r"got float32\[\]"):
        net.add_loop(simple_body(cond_dtype="float32"), [x], trip_count=n)
    with pytest.raises(ShapeError, match=r"trip_count x must be an int64 \(or int32\) scalar, got float32\[3\]"):
        net.add_loop(simple_body(), [x], trip_count=x)
    grow = Network("g")
    grow.add_input("i", "int64", ())
    v = grow.add_input("v", "float32", (3,))
    grow.mark_output(true(grow))
    grow.mark_output(grow.add_concatenation([v, v], name="twice").output)
    with pytest.raises(ShapeError, match=r"body output 1 \(twice\) is the next carried value 0: expected "
                                         r"float32\[3\].*declare None.*got float32\[6\]"):
        net.add_loop(grow, [x], trip_count=n)


def test_if_checks_its_branches():
    net = Network("outer")
    x = net.add_input("x", "float32", (3,))
    c = net.add_input("c", "bool", (1,))
    then, other = Network("t"), Network("e")
    for br, dtype in ((then, "float32"), (other, "int32")):
        v = br.add_input("v", "float32", (3,))
        br.mark_output(br.add_cast(v, dtype, name="out").output)
    with pytest.raises(ShapeError, match=r"output 0: the then branch gives float32\[3\] \(out\), the else branch "
                                         r"int32\[3\] \(out\)"):
        net.add_if(c, then, other, [x])
    with pytest.raises(ShapeError, match="then branch 't' has 1 inputs; expected 0"):
        net.add_if(c, then, then, [])
    with pytest.raises(ShapeError, match=r"condition x must be a bool tensor with one element, got float32\[3\]"):
        net.add_if(x, then, then, [x])
    ok = net.add_if(c, then, then, [x], name="same")  # a one-element [1] condition is fine; one branch twice too
    assert ok.type == "if" and ok.output.shape == (3,)
    net.mark_output(ok.output, "y")
    xv = np.array([1.0, 2.0, 3.0], np.float32)
    for out in run_all(build_engine(net), {"x": xv, "c": np.array([False])}).values():
        np.testing.assert_array_equal(out["y"], xv)

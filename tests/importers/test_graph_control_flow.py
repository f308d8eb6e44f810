"""While loops that are not RNNs (ONNX Loop), TensorArrays/TensorLists and tf.cond on run-time
values (ONNX If), in both control-flow forms: TF1 Enter/Merge/Switch frames and TF2 While/If
functions. Every graph is built and run by TensorFlow, converted, and compared on onnxruntime
and the reference backend.

Ops covered: NonMaxSuppressionV5 (in a map_fn body), TopKV2, Pad and StridedSlice with run-time sizes, FloorDiv,
FloorMod, TensorArrayV3, TensorArrayScatterV3, TensorArrayReadV3, TensorArrayGatherV3,
TensorListFromTensor, TensorListGetItem, TensorListReserve, TensorListStack, Range and Fill
with run-time sizes, StatelessIf."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.graphdef_cases import build_case, check_case, control_flow

FORMS = [False, True]
FORM_IDS = ["tf1-frames", "tf2-functions"]
W = np.random.default_rng(7).standard_normal((3, 4)).astype(np.float32)


def _case(tf, tmp_path, v2: bool, fn, x: np.ndarray, shapes=None):
    with control_flow(tf, v2):
        return build_case(tf, tmp_path / "m.pb", fn, {"x": x}, shapes=shapes)


def _ops(net) -> set[str]:
    from tf2rt.engine import build_engine

    return {n.op_type for n in build_engine(net).onnx.graph.node}


def _rows(n=5, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 3)).astype(np.float32)


# --- loops ended by their condition, with values that change shape -------------------------------
def doubling(tf, p):
    """while sum|y| < 50: y = 2y + 0.5 (the trip count depends on the data)."""
    i, y = tf.while_loop(lambda i, y: tf.reduce_sum(tf.abs(y)) < 50.0, lambda i, y: (i + 1, y * 2.0 + 0.5),
                         [tf.constant(0), p["x"]])
    return [y, tf.cast(i, tf.float32)]


def growing(tf, p):
    """An accumulator that grows by one block per iteration (a shape invariant [None, 3])."""
    _, acc = tf.while_loop(lambda i, a: i < 4,
                           lambda i, a: (i + 1, tf.concat([a, p["x"] * tf.cast(i + 1, tf.float32)], 0)),
                           [tf.constant(0), tf.zeros([0, 3])],
                           shape_invariants=[tf.TensorShape([]), tf.TensorShape([None, 3])])
    return [acc]


def nested(tf, p):
    """An inner loop whose trip count is the outer loop's counter."""
    def obody(i, y):
        _, z = tf.while_loop(lambda j, z: j < i + 1, lambda j, z: (j + 1, z * 1.5 + tf.cast(j, tf.float32)),
                             [tf.constant(0), y])
        return i + 1, z - 0.25
    return [tf.while_loop(lambda i, y: i < 3, obody, [tf.constant(0), p["x"]])[1]]


@pytest.mark.parametrize("v2", FORMS, ids=FORM_IDS)
@pytest.mark.parametrize("fn", [doubling, growing, nested], ids=lambda f: f.__name__)
def test_while_loop_matches_tensorflow(tf, tmp_path, v2, fn):
    case = _case(tf, tmp_path, v2, fn, _rows())
    net = check_case(case)
    assert "Loop" in _ops(net)


def test_trip_count_follows_the_data(tf, tmp_path):
    """The same engine runs the loop 0, 2 and 6 times as the input asks, like TensorFlow."""
    from tf2rt.engine import build_engine

    case = _case(tf, tmp_path, True, doubling, _rows())
    engine = build_engine(check_case(case))
    for scale, want_i in ((100.0, 0), (1.0, None), (1e-3, None)):
        x = _rows(seed=3) * scale
        y = x.copy()
        i = 0
        while np.abs(y).sum() < 50.0:  # the loop written out, the oracle of this check
            y, i = y * 2.0 + 0.5, i + 1
        if want_i is not None:
            assert i == want_i
        got = engine.run({"x": x})
        assert float(got["out1"]) == i
        np.testing.assert_allclose(got["out0"], y, rtol=1e-5)


# --- arrays: unstack / read / write / stack, and map_fn ----------------------------------------
def array_scan(tf, p):
    """TensorArray.unstack of the input, a running sum carried, each step's value written."""
    xs = tf.TensorArray(tf.float32, size=5).unstack(p["x"])
    out = tf.TensorArray(tf.float32, size=5)

    def body(i, acc, out):
        acc = acc + xs.read(i)
        return i + 1, acc, out.write(i, acc * 2.0 - 1.0)
    _, acc, out = tf.while_loop(lambda i, acc, out: i < 5, body, [tf.constant(0), tf.zeros([3]), out])
    return [acc, out.stack()]


def map_rows(tf, p):
    """tf.map_fn over the batch with a weight inside the function."""
    w = tf.constant(W)
    return [tf.map_fn(lambda r: tf.tanh(tf.matmul(r[None, :], w))[0] * 2.0, p["x"])]


@pytest.mark.parametrize("v2", FORMS, ids=FORM_IDS)
def test_tensor_arrays_written_per_iteration_are_stacked(tf, tmp_path, v2):
    net = check_case(_case(tf, tmp_path, v2, array_scan, _rows()))
    assert "Loop" in _ops(net)


@pytest.mark.parametrize("v2", FORMS, ids=FORM_IDS)
def test_map_fn_over_a_run_time_batch(tf, tmp_path, v2):
    """The batch size is known only at run time: the trip count is the input's first dimension."""
    from tf2rt.engine import build_engine

    case = _case(tf, tmp_path, v2, map_rows, _rows(5), shapes={"x": [None, 3]})
    engine = build_engine(check_case(case))
    for n in (1, 7):
        x = _rows(n, seed=n)
        want = np.tanh(x @ W) * 2.0  # map_fn applies the function row by row
        np.testing.assert_allclose(engine.run({"x": x})["out0"], want, rtol=1e-5, atol=1e-6)


def test_array_written_out_of_order_is_named(tf, tmp_path):
    from tf2rt.errors import UnsupportedError
    from tf2rt.importers.graphdef import import_graphdef

    def backwards(tf, p):
        ta = tf.TensorArray(tf.float32, size=5)
        _, ta = tf.while_loop(lambda i, ta: i < 5, lambda i, ta: (i + 1, ta.write(4 - i, p["x"][i] * 2.0)),
                              [tf.constant(0), ta])
        return [ta.stack()]

    case = _case(tf, tmp_path, True, backwards, _rows())
    with pytest.raises(UnsupportedError, match="not at the iteration count"):
        import_graphdef(case.pb, outputs=case.outputs)


# --- an RNN cell ONNX cannot express runs as a loop -------------------------------------------
@pytest.mark.parametrize("options", [{"cell_clip": 0.3}, {"num_proj": 3, "proj_clip": 0.5, "use_peepholes": True}],
                         ids=["cell_clip", "projection"])
def test_lstm_ONNX_cannot_express_runs_as_a_loop(tf, tmp_path, options):
    """LSTMCell(cell_clip=...) clips the cell state and num_proj/proj_clip project and clip the
    output, which ONNX LSTM cannot express: the while loop is kept as it is and still matches
    TensorFlow, at any batch size and length."""
    tf1 = tf.compat.v1
    rng = np.random.default_rng(5)
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, None, 3], name="x")
        out, _ = tf1.nn.dynamic_rnn(tf1.nn.rnn_cell.LSTMCell(4, **options), x, dtype=tf.float32)
        y = tf.identity(out, name="y")
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            feeds = [rng.standard_normal((b, t, 3)).astype(np.float32) * 2 for b, t in ((2, 6), (1, 3))]
            wants = [sess.run(y, {x: f}) for f in feeds]
            gd = tf1.graph_util.convert_variables_to_constants(sess, g.as_graph_def(), ["y"])
    (tmp_path / "m.pb").write_bytes(gd.SerializeToString())
    from tf2rt import convert

    engine = convert(tmp_path / "m.pb")
    assert engine.input_names == ["x"] and engine.output_names == ["y"]
    assert "Loop" in {n.op_type for n in engine.onnx.graph.node}
    for f, want in zip(feeds, wants):
        assert np.abs(want).max() > 0.1  # not a degenerate output
        for backend in ("onnxruntime", "reference"):
            assert float(np.abs(engine.run({"x": f}, backend=backend)["y"] - want).max()) <= 1e-5


# --- tf.cond on a run-time value (TF2 If) ---------------------------------------------------------
def test_cond_on_a_runtime_value_becomes_if(tf, tmp_path):
    from tf2rt.engine import build_engine

    def fn(tf, p):
        x = p["x"]
        return [tf.cond(tf.reduce_sum(x) > 0, lambda: tf.nn.relu(x) * 3.0, lambda: tf.tanh(x) - 1.0)]

    x = np.abs(_rows())
    case = _case(tf, tmp_path, True, fn, x)
    engine = build_engine(check_case(case))
    assert "If" in {n.op_type for n in engine.onnx.graph.node}
    neg = -x  # the other branch, written out here
    np.testing.assert_allclose(engine.run({"x": neg})["out0"], np.tanh(neg) - 1.0, rtol=1e-6)


# --- detection post-processing per image in a map_fn (TF Object Detection API style) ---------------
def _ssd_post(n_boxes: int, classes: int, k: int):
    def post(tf, p):
        """Per image: NonMaxSuppressionV5 per class (a Python loop, as the OD API writes it),
        concatenated, the top k across classes, padded to k rows; map_fn over the batch."""
        def one(args):
            b, s = args
            bs, ss, cs = [], [], []
            for c in range(classes):
                sel, sc = tf.image.non_max_suppression_with_scores(b, s[:, c], k, iou_threshold=0.5,
                                                                   score_threshold=0.2)
                bs.append(tf.gather(b, sel))
                ss.append(sc)
                cs.append(tf.fill(tf.shape(sc), float(c)))
            bb, ss, cc = tf.concat(bs, 0), tf.concat(ss, 0), tf.concat(cs, 0)
            top = tf.math.top_k(ss, k=tf.minimum(k, tf.shape(ss)[0]))
            n = tf.shape(top.indices)[0]
            pad = k - n
            return (tf.pad(tf.gather(bb, top.indices), [[0, pad], [0, 0]]), tf.pad(top.values, [[0, pad]]),
                    tf.pad(tf.gather(cc, top.indices), [[0, pad]]), n)
        return list(tf.map_fn(one, (p["boxes"], p["scores"]),
                              fn_output_signature=(tf.float32, tf.float32, tf.float32, tf.int32)))
    return post


@pytest.mark.parametrize("v2", FORMS, ids=FORM_IDS)
@pytest.mark.parametrize("scale", [1.0, 0.205], ids=["full", "padded"])
def test_map_fn_detection_post_processing(tf, tmp_path, v2, scale):
    """Identical boxes, classes and counts; `padded`: fewer boxes than k pass the threshold."""
    rng = np.random.default_rng(11)
    b, n, c, k = 3, 40, 3, 6
    ctr, size = rng.uniform(0.2, 0.8, (b, n, 2)), rng.uniform(0.05, 0.3, (b, n, 2))
    boxes = np.concatenate([ctr - size / 2, ctr + size / 2], -1).astype(np.float32)
    scores = (rng.permutation(b * n * c).reshape(b, n, c) / (b * n * c) * scale).astype(np.float32)
    with control_flow(tf, v2):
        case = build_case(tf, tmp_path / "m.pb", _ssd_post(n, c, k), {"boxes": boxes, "scores": scores},
                          shapes={"boxes": [None, n, 4], "scores": [None, n, c]})
    counts = case.refs["out3"]
    assert (counts < k).any() if scale < 1 else (counts == k).all()
    check_case(case, tol=0.0)


# --- loops whose condition only bounds counters run a trip count ----------------------------
def _body_ops(engine) -> list[str]:
    loop = next(n for n in engine.onnx.graph.node if n.op_type == "Loop")
    return [n.op_type for n in loop.attribute[0].g.node]


@pytest.mark.parametrize("v2", FORMS, ids=FORM_IDS)
def test_counted_loop_computes_no_condition_per_iteration(tf, tmp_path, v2):
    """map_fn's condition is `i < n` (and TF2's `loop_counter < maximum_iterations`): the loop
    runs n times from ONNX Loop's trip count, its body compares nothing, and any n works."""
    from tf2rt.engine import build_engine

    case = _case(tf, tmp_path, v2, map_rows, _rows(5), shapes={"x": [None, 3]})
    engine = build_engine(check_case(case))
    assert "Less" not in _body_ops(engine) and "And" not in _body_ops(engine)
    for n in (0, 1, 9):
        x = _rows(n, seed=n + 20)
        np.testing.assert_allclose(engine.run({"x": x})["out0"], np.tanh(x @ W) * 2.0, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("v2", FORMS, ids=FORM_IDS)
def test_bounded_loop_with_a_data_condition_keeps_it(tf, tmp_path, v2):
    """maximum_iterations plus a condition on the data: the body still tests the data, and the
    loop stops at whichever comes first, like TensorFlow."""
    from tf2rt.engine import build_engine

    def fn(tf, p):
        _, y = tf.while_loop(lambda i, y: tf.reduce_max(y) < 40.0, lambda i, y: [i + 1, y * 1.5 + 1.0],
                             [tf.constant(0), p["x"]], maximum_iterations=6)
        return [y]

    case = _case(tf, tmp_path, v2, fn, np.abs(_rows()))
    engine = build_engine(check_case(case))
    for scale in (0.01, 30.0):  # 6 iterations (the bound) / fewer (the data)
        x = np.abs(_rows(seed=4)) * scale
        y, i = x.copy(), 0
        while i < 6 and y.max() < 40.0:
            y, i = y * 1.5 + 1.0, i + 1
        np.testing.assert_allclose(engine.run({"x": x})["out0"], y, rtol=1e-5)


def test_descending_range_of_a_run_time_size(tf, tmp_path):
    """tf.range(n - 1, -1, -1) and tf.reverse over an axis whose size is known at run time."""
    from tf2rt.engine import build_engine

    def fn(tf, p):
        x = p["x"]
        n = tf.shape(x)[0]
        return [tf.gather(x, tf.range(n - 1, -1, -1)) * 2.0, tf.reverse(x, [0]) + 1.0]

    engine = build_engine(check_case(_case(tf, tmp_path, True, fn, _rows(4), shapes={"x": [None, 3]})))
    for n in (1, 6):
        x = _rows(n, seed=n)
        got = engine.run({"x": x})
        np.testing.assert_allclose(got["out0"], x[::-1] * 2.0, rtol=1e-6)
        np.testing.assert_allclose(got["out1"], x[::-1] + 1.0, rtol=1e-6)


def test_unit_axes_of_tensors_with_several_run_time_sizes(tf, tmp_path):
    """ExpandDims and Squeeze of a tensor whose height and width are both known only at run time
    (an image inside map_fn) add and drop unit axes without naming a size."""
    from tf2rt.engine import build_engine

    def fn(tf, p):
        x = p["x"]
        y = tf.squeeze(tf.expand_dims(x, 0) * 2.0, [0])
        return [tf.expand_dims(y, 2) + 1.0, tf.squeeze(tf.expand_dims(y, -1), [-1])]

    x = np.random.default_rng(2).standard_normal((3, 4)).astype(np.float32)
    engine = build_engine(check_case(_case(tf, tmp_path, True, fn, x, shapes={"x": [None, None]})))
    x = np.random.default_rng(3).standard_normal((2, 5)).astype(np.float32)
    got = engine.run({"x": x})
    np.testing.assert_allclose(got["out0"], (x * 2.0)[:, :, None] + 1.0, rtol=1e-6)
    np.testing.assert_allclose(got["out1"], x * 2.0, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.int32, np.float32], ids=["int", "float"])
def test_floor_division_and_modulo_of_tensors(tf, tmp_path, dtype):
    """FloorDiv / FloorMod on run-time values (sizes such as tf.shape(x)[1] // 2, and data):
    the quotient rounds down and the remainder takes the divisor's sign, negatives included."""
    from tf2rt.engine import build_engine

    def fn(tf, p):
        x = p["x"]
        half = tf.shape(x)[0] // 2  # a size known at run time
        return [tf.math.floordiv(x, tf.constant([3, -3, 4], dtype)), tf.math.floormod(x, tf.constant([3, -3, 4], dtype)),
                tf.fill([half], 1.0)]

    x = np.array([[7, -7, 5], [-8, 8, -1], [0, 6, -9]], dtype)
    engine = build_engine(check_case(_case(tf, tmp_path, True, fn, x, shapes={"x": [None, 3]}), tol=0.0))
    y = np.array([[-5, 5, 11]], dtype)
    got = engine.run({"x": y})
    np.testing.assert_array_equal(got["out0"], np.floor_divide(y, np.array([3, -3, 4], dtype)))
    np.testing.assert_array_equal(got["out1"], np.mod(y, np.array([3, -3, 4], dtype)))
    assert got["out2"].shape == (0,)  # 1 // 2 rows
    assert engine.run({"x": np.zeros((5, 3), dtype)})["out2"].shape == (2,)


def test_slices_with_bounds_known_only_at_run_time(tf, tmp_path):
    """StridedSlice whose bounds are computed at run time: x[:n], x[-n:], x[n:2n, 1:], x[i]
    (negative i counts from the end), and an empty slice when a bound passes the other."""
    from tf2rt.engine import build_engine

    def fn(tf, p):
        x, k = p["x"], p["k"]
        n = tf.shape(k)[0]
        i = tf.reduce_sum(k) - 3
        return [x[:n] * 1.0, x[-n:] + 1.0, x[n:2 * n, 1:] * 2.0, x[i] - 1.0, x[3 * n:n] * 1.0]

    rng = np.random.default_rng(4)
    x, k = rng.standard_normal((7, 3)).astype(np.float32), np.array([1, 1], np.int32)
    case = build_case(tf, tmp_path / "m.pb", fn, {"x": x, "k": k}, shapes={"x": [None, 3], "k": [None]})
    engine = build_engine(check_case(case))
    for kk in (np.array([2, 1, 1], np.int32), np.array([4], np.int32), np.array([1], np.int32)):  # i = 1, 1, -2
        n, i = len(kk), int(kk.sum()) - 3
        got = engine.run({"x": x, "k": kk})
        np.testing.assert_array_equal(got["out0"], x[:n])
        np.testing.assert_array_equal(got["out1"], x[-n:] + 1.0)
        np.testing.assert_array_equal(got["out2"], x[n:2 * n, 1:] * 2.0)
        np.testing.assert_array_equal(got["out3"], x[i] - 1.0)
        assert got["out4"].shape == (0, 3)


# --- a greedy decoder: the model's own output fed back until every sequence ends -----------------
@pytest.mark.parametrize("v2", FORMS, ids=FORM_IDS)
def test_greedy_decoder_loop_generates_like_tensorflow(tf, tmp_path, v2):
    """The inference loop seq2seq and captioning graphs build by hand: embed the last token, one
    LSTM cell step, argmax, stop a sequence at EOS and the loop when all have stopped
    (reduce_all) or at the length limit; tokens gathered from a dynamic-size TensorArray.
    Ops covered: All, ZerosLike, TensorArraySizeV3."""
    tf1 = tf.compat.v1
    V, E, H, EOS, LIMIT = 11, 6, 8, 0, 12
    rng = np.random.default_rng(21)
    feeds = [{"start": np.array([3, 5, 7], np.int32), "h0": rng.standard_normal((3, H)).astype(np.float32),
              "eos_bias": np.array(0.0, np.float32)},
             {"start": np.array([2, 4], np.int32), "h0": rng.standard_normal((2, H)).astype(np.float32),
              "eos_bias": np.array(50.0, np.float32)}]  # every sequence ends at once: the loop stops early
    with control_flow(tf, v2):
        g = tf.Graph()
        with g.as_default():
            start = tf1.placeholder(tf.int32, [None], name="start")
            h0 = tf1.placeholder(tf.float32, [None, H], name="h0")
            eos_bias = tf1.placeholder(tf.float32, [], name="eos_bias")
            emb = tf.constant(rng.standard_normal((V, E)).astype(np.float32))
            wout = tf.constant(rng.standard_normal((H, V)).astype(np.float32))
            cell = tf1.nn.rnn_cell.LSTMCell(H, name="dec_cell")
            b = tf.shape(start)[0]

            def body(t, c, h, tok, fin, ta):
                out, (c2, h2) = cell(tf.nn.embedding_lookup(emb, tok), tf1.nn.rnn_cell.LSTMStateTuple(c, h))
                logits = tf.matmul(out, wout) + eos_bias * tf.one_hot(EOS, V)
                nxt = tf.where(fin, tf.fill([b], EOS), tf.argmax(logits, -1, output_type=tf.int32))
                return t + 1, c2, h2, nxt, tf.logical_or(fin, tf.equal(nxt, EOS)), ta.write(t, nxt)

            ta = tf.TensorArray(tf.int32, size=0, dynamic_size=True)
            *_, ta = tf.while_loop(lambda t, c, h, tok, fin, ta: tf.logical_and(t < LIMIT, tf.logical_not(tf.reduce_all(fin))),
                                   body, [tf.constant(0), tf.zeros_like(h0), h0, start, tf.zeros([b], tf.bool), ta])
            tokens = tf.identity(tf.transpose(ta.stack()), name="tokens")
            with tf1.Session() as sess:
                sess.run(tf1.global_variables_initializer())
                for v in tf1.global_variables():
                    v.load(rng.uniform(-1, 1, v.shape.as_list()).astype(np.float32), sess)
                want = [sess.run(tokens, {start: f["start"], h0: f["h0"], eos_bias: f["eos_bias"]}) for f in feeds]
                gd = tf1.graph_util.convert_variables_to_constants(sess, g.as_graph_def(), ["tokens"])
    assert want[0].shape[1] > 1 and want[1].shape == (2, 1)  # a long run and an early stop
    (tmp_path / "m.pb").write_bytes(gd.SerializeToString())
    from tf2rt import convert

    engine = convert(tmp_path / "m.pb", outputs=["tokens"])
    for f, w in zip(feeds, want):
        for backend in ("onnxruntime", "reference"):
            np.testing.assert_array_equal(engine.run(f, backend=backend)["tokens"], w)


def test_saved_model_with_autograph_loop_and_condition(tf, tmp_path):
    """A tf.function written with Python control flow: autograph turns `for i in tf.range(n)`
    into a While (its step a captured value) writing a TensorArray, and `if` into an If."""
    from tf2rt import convert

    class Model(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4))

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
        def __call__(self, x):
            ta = tf.TensorArray(tf.float32, size=tf.shape(x)[0])
            acc = tf.zeros([4])
            for i in tf.range(tf.shape(x)[0]):
                row = tf.tanh(tf.matmul(x[i][None, :], self.w))[0]
                acc = acc + row
                ta = ta.write(i, row * 2.0 + acc)
            out = ta.stack() if tf.reduce_sum(x) > 0 else -ta.stack()
            return {"out": out, "acc": acc}

    model = Model()
    tf.saved_model.save(model, str(tmp_path / "sm"))
    engine = convert(tmp_path / "sm")
    assert {"Loop", "If"} <= {n.op_type for n in engine.onnx.graph.node}
    for x in (_rows(5), -np.abs(_rows(4, seed=1)), _rows(1, seed=2)):
        want = model(tf.constant(x))
        for backend in ("onnxruntime", "reference"):
            got = engine.run({engine.input_names[0]: x}, backend=backend)
            for k in ("out", "acc"):
                np.testing.assert_allclose(got[k], want[k].numpy(), rtol=1e-5, atol=1e-6)


def test_strided_slices_of_an_axis_of_run_time_size(tf, tmp_path):
    """Constant slices with steps, forward and backward, of an axis whose size is known only at
    run time (x[::-1], x[1::3], x[-2::-1], x[:1:-2], x[3:0:-1]): positions from the size."""
    from tf2rt.engine import build_engine

    specs = [(None, None, -1), (1, None, 3), (-2, None, -1), (None, 1, -2), (3, 0, -1), (None, None, 2)]

    def fn(tf, p):
        return [p["x"][slice(*s)] * 1.0 for s in specs]

    case = _case(tf, tmp_path, True, fn, _rows(6), shapes={"x": [None, 3]})
    engine = build_engine(check_case(case))
    for n in (1, 2, 7):
        x = _rows(n, seed=n)
        got = engine.run({"x": x})
        for k, s in enumerate(specs):
            np.testing.assert_array_equal(got[f"out{k}"], x[slice(*s)], err_msg=f"x[{s}] of {n} rows")

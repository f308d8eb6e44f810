"""tf.cond and tf.switch_case: on a value computed at run time they become ONNX If (TF1
Switch/Merge conds rebuilt as one conditional each; TF2 If/StatelessIf; Case/StatelessCase as a
chain of Ifs, the last branch for an out-of-range index); fixed at conversion (a constant, an
`is_training` PlaceholderWithDefault left at its default) they are folded to the branch taken.

Every graph is built and run by TensorFlow for inputs that take each branch; one engine is
converted and compared with TensorFlow on onnxruntime and on the reference backend for all of
them. Branches return a path number as an extra output, so a wrong branch cannot pass.

Ops covered: Switch, Merge, If, StatelessIf, Case, StatelessCase."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers.graphdef_cases import control_flow, max_err

FORMS = [False, True]
FORM_IDS = ["tf1-switch-merge", "tf2-if"]


def _build(tf, path: Path, fn, feeds: list[dict], v2: bool, shapes: dict | None = None):
    """fn(tf, placeholders) -> output tensors; TensorFlow runs every feed. -> (output names, results per feed)."""
    tf1 = tf.compat.v1
    with control_flow(tf, v2):
        g = tf.Graph()
        with g.as_default():
            phs = {k: tf1.placeholder(tf.as_dtype(v.dtype), (shapes or {}).get(k, list(v.shape)), name=k)
                   for k, v in feeds[0].items()}
            outs = [tf.identity(o, name=f"out{i}") for i, o in enumerate(fn(tf, phs))]
            with tf1.Session(graph=g) as sess:
                wants = [sess.run(outs, {phs[k]: v for k, v in f.items()}) for f in feeds]
        path.write_bytes(g.as_graph_def().SerializeToString())
    return [o.op.name for o in outs], wants


def _check(engine, names: list[str], feeds: list[dict], wants: list, tol: float = 1e-5) -> None:
    """Every feed through the one engine, on both backends, against TensorFlow."""
    for feed, want in zip(feeds, wants):
        for backend in ("onnxruntime", "reference"):
            got = engine.run(feed, backend=backend)
            for name, ref in zip(names, want):
                err = max_err(got[name], ref)
                assert err <= tol, f"{name} on {backend} for feed {sorted(feed)}: error {err:.3g}"


def _ops(engine) -> set[str]:
    """Op types of the engine's ONNX graph and of every subgraph in it (Loop bodies, If branches)."""
    out, todo = set(), [engine.onnx.graph]
    while todo:
        g = todo.pop()
        for n in g.node:
            out.add(n.op_type)
            todo.extend(a.g for a in n.attribute if a.HasField("g"))
    return out


def _convert_and_check(tf, tmp_path, fn, feeds, v2, paths: set, folded: bool = False, **kw):
    """Build, check that TensorFlow took every path in `paths` (the last output), convert, compare.
    folded: the condition is known at conversion, so the path number is a constant, not an output."""
    from tf2rt import convert

    names, wants = _build(tf, tmp_path / "m.pb", fn, feeds, v2)
    assert {int(w[-1]) for w in wants} == paths  # the feeds take every branch
    if folded:
        names, wants = names[:-1], [w[:-1] for w in wants]
    engine = convert(tmp_path / "m.pb", outputs=names, **kw)
    _check(engine, names, feeds, wants)
    return engine, wants


def _x(sign: float, scale: float = 1.0, seed: int = 0) -> dict:
    x = np.abs(np.random.default_rng(seed).standard_normal((4, 3))).astype(np.float32) + 0.1
    return {"x": (sign * scale * x).astype(np.float32)}


# --- fixed at conversion: folded ----------------------------------------------------------------
def _graph(tf, v2: bool, tmp_path, runtime_pred: bool = False):
    tf1 = tf.compat.v1
    rng = np.random.default_rng(1)
    with control_flow(tf, v2):
        g = tf.Graph()
        with g.as_default():
            x = tf1.placeholder(tf.float32, [None, 6], name="x")
            if runtime_pred:
                pred = tf.reduce_sum(x) > 0
            else:
                pred = tf1.placeholder_with_default(False, [], name="is_training")
            w = tf1.get_variable("w", [6, 4])
            h = tf.matmul(x, w)
            # training: noise-like branch; inference: a scaled activation
            y = tf.cond(pred, lambda: tf.nn.relu(h) * 3.0 - 1.0, lambda: tf.tanh(h) * 0.5 + 0.25)
            out = tf.nn.softmax(y, name="probs")
            with tf1.Session() as sess:
                sess.run(tf1.global_variables_initializer())
                w.load(rng.uniform(-1, 1, (6, 4)).astype(np.float32), sess)
                gd = tf1.graph_util.convert_variables_to_constants(sess, g.as_graph_def(), ["probs"])
                xv = rng.standard_normal((3, 6)).astype(np.float32)
                xv[:, 0] += 3.0 - xv.sum(1).mean()  # sum(x) > 0 ...
                want = sess.run(out, {x: xv})
                if runtime_pred:  # ... and < 0: the other branch
                    other = sess.run(out, {x: -xv})
                else:
                    other = sess.run(out, {x: xv, pred: True})
    (tmp_path / "m.pb").write_bytes(gd.SerializeToString())
    return tmp_path / "m.pb", xv, want, other


@pytest.mark.parametrize("v2", FORMS, ids=FORM_IDS)
def test_cond_on_a_default_placeholder_takes_the_inference_branch(tf, tmp_path, v2):
    from tf2rt import convert

    path, xv, want, _other = _graph(tf, v2, tmp_path)
    engine = convert(path, outputs=["probs"])
    assert engine.input_names == ["x"]
    assert "If" not in _ops(engine)
    got = engine.run({"x": xv})["probs"]
    assert float(np.abs(got - want).max()) <= 1e-6


@pytest.mark.parametrize("v2", FORMS, ids=FORM_IDS)
def test_named_placeholder_keeps_the_condition_at_run_time(tf, tmp_path, v2):
    """Naming the is_training placeholder as an input means the caller decides: the condition
    is not folded at its default; it becomes an ONNX If that follows the fed value."""
    from tf2rt import convert

    path, xv, want, other = _graph(tf, v2, tmp_path)
    engine = convert(path, inputs=["x", "is_training"], outputs=["probs"],
                     input_shapes={"x": [-1, 6], "is_training": []})
    assert "If" in _ops(engine)
    assert not np.allclose(want, other)  # the branches differ, so the check below can fail
    for flag, ref in ((False, want), (True, other)):
        for backend in ("onnxruntime", "reference"):
            got = engine.run({"x": xv, "is_training": np.array(flag)}, backend=backend)["probs"]
            assert float(np.abs(got - ref).max()) <= 1e-6


def test_predicate_known_from_static_shapes_is_folded(tf, tmp_path):
    """A TF1 predicate that only the conversion can compute (from a static shape): one branch, no If."""
    def fn(tf, p):
        x = p["x"]
        pred = tf.shape(x)[0] > 2
        y = tf.cond(pred, lambda: tf.nn.relu(x) * 3.0, lambda: tf.tanh(x) - 1.0)
        return [y, tf.cast(pred, tf.int32)]

    engine, _ = _convert_and_check(tf, tmp_path, fn, [_x(-1.0)], False, {1}, folded=True)
    assert "If" not in _ops(engine)


# --- TF1 Switch/Merge and TF2 If on a run-time predicate --------------------------------------------
@pytest.mark.parametrize("v2", FORMS, ids=FORM_IDS)
def test_cond_on_a_runtime_value(tf, tmp_path, v2):
    """tf.cond(reduce_sum(x) > 0, ...) after a weight: one engine follows TensorFlow both ways."""
    from tf2rt import convert

    path, xv, want, other = _graph(tf, v2, tmp_path, runtime_pred=True)
    engine = convert(path, outputs=["probs"])
    assert "If" in _ops(engine)
    assert not np.allclose(want, other)
    _check(engine, ["probs"], [{"x": xv}, {"x": -xv}], [[want], [other]], tol=1e-6)


def several_results(tf, p):
    """Three results: computed | outer tensor, constant | computed, outer tensor | constant."""
    x = p["x"]
    return tf.cond(tf.reduce_sum(x) > 0,
                   lambda: (tf.nn.relu(x) * 2.0, tf.constant(np.full((4, 3), 0.5, np.float32)), x, tf.constant(1)),
                   lambda: (x, tf.sigmoid(x) + 1.0, tf.zeros([4, 3]), tf.constant(0)))


def nested(tf, p):
    """A cond in each branch: four paths, numbered by the innermost branch taken."""
    x = p["x"]

    def pos():
        return tf.cond(tf.reduce_max(x) > 1.0, lambda: (x * 2.0, tf.constant(3)), lambda: (x + 1.0, tf.constant(2)))

    def neg():
        m = tf.reduce_min(x)
        return tf.cond(m < -1.0, lambda: (tf.abs(x) - m, tf.constant(1)), lambda: (tf.exp(x), tf.constant(0)))

    return tf.cond(tf.reduce_sum(x) > 0, pos, neg)


def loop_with_cond(tf, p):
    """A cond inside a while loop's body, on a loop variable: each iteration picks its branch."""
    def body(i, y, n):
        y, took = tf.cond(tf.reduce_sum(y) < 4.0, lambda: (y * 2.0 + 0.5, tf.constant(1)),
                          lambda: (y - 1.0, tf.constant(0)))
        return i + 1, y, n * 2 + took
    _, y, n = tf.while_loop(lambda i, y, n: i < 4, body, [tf.constant(0), p["x"], tf.constant(0)])
    return [y, tf.cast(n, tf.float32), tf.cast(n > 0, tf.int32)]  # n: the branches taken, as bits


@pytest.mark.parametrize("v2", FORMS, ids=FORM_IDS)
def test_cond_with_several_results(tf, tmp_path, v2):
    engine, _ = _convert_and_check(tf, tmp_path, several_results, [_x(1.0), _x(-1.0)], v2, {0, 1})
    assert "If" in _ops(engine)


@pytest.mark.parametrize("v2", FORMS, ids=FORM_IDS)
def test_nested_conds(tf, tmp_path, v2):
    feeds = [_x(1.0, 5.0), _x(1.0, 0.05), _x(-1.0, 5.0), _x(-1.0, 0.05)]
    engine, _ = _convert_and_check(tf, tmp_path, nested, feeds, v2, {0, 1, 2, 3})
    assert "If" in _ops(engine)


@pytest.mark.parametrize("v2", FORMS, ids=FORM_IDS)
def test_cond_inside_a_while_loop(tf, tmp_path, v2):
    feeds = [_x(1.0, 0.1), _x(1.0, 20.0), _x(-1.0, 1.0)]
    engine, wants = _convert_and_check(tf, tmp_path, loop_with_cond, feeds, v2, {0, 1})
    assert {"Loop", "If"} <= _ops(engine)
    assert len({float(w[1]) for w in wants}) == 3  # three different sequences of branches


def test_cond_in_a_loop_on_a_default_placeholder_is_folded(tf, tmp_path):
    """is_training left at its default inside a TF1 loop body: the loop holds no If."""
    def fn(tf, p):
        flag = tf.compat.v1.placeholder_with_default(False, [], name="is_training")
        _, y = tf.while_loop(lambda i, y: i < 3, lambda i, y: (i + 1, tf.cond(flag, lambda: y * 0.0,
                                                                                lambda: y * 1.5 + 1.0)),
                             [tf.constant(0), p["x"]])
        return [y, tf.cast(flag, tf.int32)]

    engine, _ = _convert_and_check(tf, tmp_path, fn, [_x(1.0)], False, {0}, folded=True)
    assert "Loop" in _ops(engine) and "If" not in _ops(engine)  # nor in the loop body


# --- tf.switch_case -----------------------------------------------------------------------------------
def switch_case(tf, p):
    x = p["x"]
    return tf.switch_case(p["k"], [lambda: (x * 2.0, tf.constant(0)), lambda: (tf.tanh(x), tf.constant(1)),
                                   lambda: (x - 3.0, tf.constant(2))])


def test_switch_case_on_a_runtime_index(tf, tmp_path):
    """Indices -1 and 5 (out of range) run the last branch, as in TensorFlow."""
    feeds = [{**_x(1.0), "k": np.array(k, np.int32)} for k in (-1, 0, 1, 2, 5)]
    engine, _ = _convert_and_check(tf, tmp_path, switch_case, feeds, True, {0, 1, 2})
    assert "If" in _ops(engine)


def test_switch_case_on_a_constant_index_is_folded(tf, tmp_path):
    def fn(tf, p):
        return switch_case(tf, {"x": p["x"], "k": tf.constant(1)})

    engine, _ = _convert_and_check(tf, tmp_path, fn, [_x(1.0)], True, {1}, folded=True)
    assert "If" not in _ops(engine)


# --- what stays refused ---------------------------------------------------------------------------
def test_branch_value_read_after_the_cond_is_named(tf, tmp_path):
    """Asking for a tensor inside one branch (it has no value when the other runs) is refused."""
    from tf2rt import convert
    from tf2rt.errors import UnsupportedError

    tf1 = tf.compat.v1
    with control_flow(tf, False):
        g = tf.Graph()
        with g.as_default():
            x = tf1.placeholder(tf.float32, [4, 3], name="x")
            inside = []

            def t():
                inside.append(tf.nn.relu(x, name="inner"))
                return inside[0] * 2.0
            tf.identity(tf.cond(tf.reduce_sum(x) > 0, t, lambda: x), name="y")
        (tmp_path / "m.pb").write_bytes(g.as_graph_def().SerializeToString())
    assert "If" in _ops(convert(tmp_path / "m.pb", outputs=["y"]))
    with pytest.raises(UnsupportedError, match="read outside the cond"):
        convert(tmp_path / "m.pb", outputs=[inside[0].op.name])


# --- tf2rt inspect ------------------------------------------------------------------------------------
@pytest.mark.parametrize("v2", FORMS, ids=FORM_IDS)
def test_inspect_lists_the_control_flow_kept_in_the_engine(tf, tmp_path, v2):
    """Conditionals (ONNX If) and while loops (ONNX Loop), nested ones too, with their names."""
    from tf2rt.importers.graph_inspect import describe_graph, format_graph_report

    def fn(tf, p):
        return [*nested(tf, p), *loop_with_cond(tf, p)]

    _build(tf, tmp_path / "m.pb", fn, [_x(1.0)], v2)
    report = describe_graph(tmp_path / "m.pb")
    assert {f"out{i}" for i in range(5)} <= {o["name"] for o in report["outputs"]}
    assert len(report["conditionals"]) == 4 and len(report["while_loops"]) == 1
    text = format_graph_report(report)
    assert f"conditionals (ONNX If) x4: {', '.join(report['conditionals'])}\n" in text
    assert f"while loops (ONNX Loop) x1: {report['while_loops'][0]}\n" in text
    print(text)


def test_conds_sharing_a_fed_predicate_after_remove_training_nodes(tf, tmp_path):
    """Three TF1 conds on one `is_training` placeholder the user feeds, chained through a relu,
    in a graph whose pred_id nodes remove_training_nodes took away: each is its own If."""
    from tf2rt import convert

    tf1 = tf.compat.v1
    with control_flow(tf, False):
        g = tf.Graph()
        with g.as_default():
            x = tf1.placeholder(tf.float32, [None, 3], name="x")
            flag = tf1.placeholder(tf.bool, [], name="is_training")
            a = tf.nn.relu(tf.cond(flag, lambda: x * 2.0, lambda: x + 1.0))
            c = tf.cond(flag, lambda: a - 3.0, lambda: a * 0.5)
            d = tf.cond(flag, lambda: tf.constant(1.0), lambda: tf.reduce_sum(c))
            out = tf.identity(c * d, name="y")
            xv = np.random.default_rng(3).standard_normal((2, 3)).astype(np.float32)
            with tf1.Session() as sess:
                wants = [[sess.run(out, {x: xv, flag: f})] for f in (False, True)]
            gd = tf1.graph_util.remove_training_nodes(g.as_graph_def(), protected_nodes=["y"])
    assert not any(n.name.endswith("pred_id") for n in gd.node)
    (tmp_path / "m.pb").write_bytes(gd.SerializeToString())
    engine = convert(tmp_path / "m.pb", inputs=["x", "is_training"], outputs=["y"],
                     input_shapes={"x": [-1, 3], "is_training": []})
    assert sum(n.op_type == "If" for n in engine.onnx.graph.node) == 3
    assert not np.allclose(wants[0][0], wants[1][0])
    _check(engine, ["y"], [{"x": xv, "is_training": np.array(f)} for f in (False, True)], wants)


def loop_in_branch(tf, p):
    """A while loop inside the true branch (TF1: its frame is copied with the branch)."""
    x = p["x"]

    def grow():
        y = tf.while_loop(lambda i, y: i < 3, lambda i, y: (i + 1, y * 1.5 - 0.25), [tf.constant(0), x])[1]
        return y, tf.constant(1)
    return tf.cond(tf.reduce_sum(x) > 0, grow, lambda: (x, tf.constant(0)))


@pytest.mark.parametrize("v2", FORMS, ids=FORM_IDS)
def test_while_loop_inside_a_branch(tf, tmp_path, v2):
    engine, _ = _convert_and_check(tf, tmp_path, loop_in_branch, [_x(1.0), _x(-1.0)], v2, {0, 1})
    assert {"If", "Loop"} <= _ops(engine)
    assert "Loop" not in {n.op_type for n in engine.onnx.graph.node}  # only inside the If's branch

"""The graph interface: `tf2rt convert --input-shape/--inputs/--outputs` on a graph with an
unknown-rank placeholder and a decoder it cannot convert, one error listing every problem,
and `tf2rt inspect` of a .pb."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers.graphdef_cases import build_case, max_err, rand


def _detector(tf, p):
    """A tiny SSD-like net: preprocessing, conv heads, and a decoder after them that the converter cannot do."""
    x = p["image"]
    pre = tf.identity(x * 0.5 - 0.25, name="preprocessed")
    h = tf.nn.relu(tf.nn.conv2d(pre, tf.constant(rand(3, 3, 3, 8)), 2, "SAME"))
    boxes = tf.identity(tf.nn.conv2d(h, tf.constant(rand(1, 1, 8, 4)), 1, "SAME"), name="box_head")
    scores = tf.identity(tf.nn.sigmoid(tf.nn.conv2d(h, tf.constant(rand(1, 1, 8, 2)), 1, "SAME")), name="class_head")
    flat = tf.reshape(boxes, [-1, 4])
    keep = tf.unique(tf.cast(tf.reshape(scores[..., 0], [-1]) * 4.0, tf.int32)).idx
    return [tf.gather(flat, keep), tf.math.bessel_i0e(scores) + tf.math.lgamma(scores + 1.0)]


@pytest.fixture(scope="module")
def detector(tf, tmp_path_factory):
    d = tmp_path_factory.mktemp("interface")
    feeds = {"image": rand(2, 12, 10, 3)}
    case = build_case(tf, d / "detector.pb", _detector, feeds, shapes={"image": None})  # unknown rank
    g = tf.Graph()  # TensorFlow's values of the heads and of the preprocessed image
    with g.as_default():
        tf.compat.v1.import_graph_def(tf.compat.v1.GraphDef.FromString(case.pb.read_bytes()), name="")
        with tf.compat.v1.Session(graph=g) as s:
            refs = s.run(["box_head:0", "class_head:0", "preprocessed:0"], {"image:0": feeds["image"]})
    return case, dict(zip(["box_head", "class_head", "preprocessed"], refs))


def test_all_problems_in_one_error(detector):
    from tf2rt.errors import UnsupportedError
    from tf2rt.importers.graphdef import import_graphdef

    case, _ = detector
    with pytest.raises(UnsupportedError) as exc:
        import_graphdef(case.pb)
    msg = str(exc.value)
    for part in ("Lgamma x1", "Unique x1", "BesselI0e x1", "node 'Lgamma'", "unknown rank", "'image'",
                 "--input-shape"):
        assert part in msg, (part, msg)


def test_input_problems_listed_together(tf, tmp_path):
    from tf2rt.errors import UnsupportedError
    from tf2rt.importers.graphdef import import_graphdef

    v1 = tf.compat.v1
    g = tf.Graph()
    with g.as_default():  # two placeholders of unknown rank, one string input, one unsupported op
        x, n = v1.placeholder(tf.float32, None, name="x"), v1.placeholder(tf.float32, None, name="unknown")
        s = v1.placeholder(tf.string, [None], name="text")
        tf.identity(x * n + tf.cast(tf.strings.length(s), tf.float32)[0], name="out")
    pb = tmp_path / "inputs.pb"
    pb.write_bytes(g.as_graph_def().SerializeToString())
    with pytest.raises(UnsupportedError) as exc:
        import_graphdef(pb)
    msg = str(exc.value)
    assert "3 problems" in msg and "StringLength x1" in msg and "2 input(s) of unknown rank: 'unknown', 'x'" in msg \
        and "input 'text': dtype string is not supported" in msg, msg


def test_refused_nodes_listed_together(tf, tmp_path):
    from tf2rt.errors import UnsupportedError
    from tf2rt.importers.graphdef import import_graphdef

    def fn(tf, p):
        x = p["img"]
        a = tf.nn.conv2d_transpose(x, tf.constant(rand(3, 3, 2, 2)), [1, 4, 4, 2], strides=1, padding="SAME",
                                   dilations=2)
        b = tf.pad(x, [[0, 0], [1, 1], [0, 0], [0, 0]], mode="REFLECT")
        return [a, b, tf.nn.relu(x)]

    case = build_case(tf, tmp_path / "two.pb", fn, {"img": rand(1, 4, 4, 2)}, shapes={"img": [1, None, None, 2]})
    with pytest.raises(UnsupportedError) as exc:
        import_graphdef(case.pb, outputs=case.outputs)
    msg = str(exc.value)
    # the image's height is known only at run time: mirroring its rows (a gather of fixed rows) is refused
    assert "2 nodes could not be converted" in msg and "(Conv2DBackpropInput)" in msg and "dilations" in msg, msg
    assert "(MirrorPad)" in msg and "MirrorPad of a dynamic dimension" in msg, msg
    assert all(line.startswith("  node '") for line in msg.splitlines()[1:]), msg  # one line per node


def test_cli_cut_and_shapes(detector, tmp_path):
    from tf2rt.cli import main
    from tf2rt.engine import load_engine

    case, refs = detector
    x = case.feeds["image"]
    out = tmp_path / "heads.onnx"
    rc = main(["convert", str(case.pb), "-o", str(out), "--input-shape", "image=-1,12,10,3",
               "--outputs", "box_head,class_head"])
    assert rc == 0
    engine = load_engine(out)
    assert [s.name for s in engine.inputs] == ["image"] and engine.inputs[0].shape[0] is None
    for backend in ("onnxruntime", "reference"):
        got = engine.run({"image": x}, backend=backend)
        for name in ("box_head", "class_head"):
            assert max_err(got[name], refs[name]) <= 1e-5, (backend, name)
    # cut the preprocessing off too: the graph starts at a node that is not a placeholder
    out2 = tmp_path / "from_preprocessed.onnx"
    assert main(["convert", str(case.pb), "-o", str(out2), "--inputs", "preprocessed",
                 "--input-shape", "preprocessed=?,12,10,3", "--outputs", "class_head"]) == 0
    engine2 = load_engine(out2)
    got = engine2.run({"preprocessed": refs["preprocessed"]})
    assert max_err(got["class_head"], refs["class_head"]) <= 1e-5


def test_python_api_cut(detector):
    import tf2rt

    case, refs = detector
    engine = tf2rt.convert(case.pb, inputs=["image"], outputs=["box_head"], input_shapes={"image": [2, 12, 10, 3]})
    assert engine.inputs[0].shape == (2, 12, 10, 3) or list(engine.inputs[0].shape) == [2, 12, 10, 3]
    got = engine.run({"image": case.feeds["image"]})
    assert max_err(got["box_head"], refs["box_head"]) <= 1e-5


def test_input_shape_rank_mismatch_is_an_error(tf, tmp_path):
    from tf2rt.errors import UnsupportedError
    from tf2rt.importers.graphdef import import_graphdef

    case = build_case(tf, tmp_path / "r.pb", lambda tf, p: [p["x"] * 2.0], {"x": rand(2, 3)})
    with pytest.raises(UnsupportedError, match="rank"):
        import_graphdef(case.pb, input_shapes={"x": [2, 3, 1]})


def test_inspect_graph(detector, capsys):
    from tf2rt.cli import main

    case, _ = detector
    assert main(["inspect", str(case.pb), "--json", "-"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "graphdef"
    assert report["inputs"] == [{"name": "image", "node": "image", "dtype": "float32", "shape": None}]
    assert {o["name"] for o in report["outputs"]} == {"out0", "out1"}
    assert report["ops"]["Conv2D"] == 3
    assert report["unsupported"]["Lgamma"] == {"count": 1, "nodes": ["Lgamma"]}
    assert report["ops"]["Unique"] == 1
    assert "Unique" in report["unsupported"] and not report["convertible"]
    assert main(["inspect", str(case.pb)]) == 0
    text = capsys.readouterr().out
    assert "image  float32 unknown rank" in text and "Lgamma x1: Lgamma" in text and "--input-shape" in text


def test_parse_shape_arg():
    from tf2rt.errors import UnsupportedError
    from tf2rt.importers.graph_problems import parse_shape_arg

    assert parse_shape_arg("a/b:0=-1,?,3") == ("a/b:0", [None, None, 3])
    assert parse_shape_arg("s=") == ("s", [])
    with pytest.raises(UnsupportedError):
        parse_shape_arg("x=1,two")
    with pytest.raises(UnsupportedError):
        parse_shape_arg("noshape")
    assert np.array_equal(np.array([1]), np.array([1]))


@pytest.fixture(scope="module")
def saved_model(tf, tmp_path_factory):
    d = tmp_path_factory.mktemp("sm") / "model"
    w = tf.Variable(rand(4, 3))

    class M(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="features")])
        def serve(self, x):
            h = tf.nn.relu(tf.matmul(x, w), name="hidden")
            return {"scores": tf.nn.softmax(h), "logits": h * 2.0}

    m = M()
    m.w = w
    tf.saved_model.save(m, str(d), signatures={"serving_default": m.serve})
    x = rand(2, 4)
    ref = m.serve(tf.constant(x))
    return d, x, {k: v.numpy() for k, v in ref.items()}


def test_saved_model_inspect_and_outputs(saved_model):
    from tf2rt.engine import build_engine
    from tf2rt.importers.graph_inspect import describe_graph
    from tf2rt.importers.saved_model import import_saved_model

    path, x, ref = saved_model
    report = describe_graph(path)
    assert report["format"] == "saved-model"
    assert report["inputs"][0]["name"] == "features" and report["inputs"][0]["shape"] == [None, 4]
    assert {o["name"] for o in report["outputs"]} == {"scores", "logits"} and report["convertible"]
    net = import_saved_model(path, outputs=["logits"], input_shapes={"features": [2, 4]})
    assert [t.name for t in net.outputs] == ["logits"] and net.inputs[0].shape == (2, 4)
    got = build_engine(net).run({"features": x})
    assert max_err(got["logits"], ref["logits"]) <= 1e-5


def test_default_outputs_leave_out_inlined_arguments(tf, tmp_path):
    """A frozen graph that still calls a function: its argument nodes are not model outputs."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    from tf2rt.engine import build_engine
    from tf2rt.importers.graph_inspect import describe_graph
    from tf2rt.importers.graphdef import import_graphdef

    w = tf.Variable(rand(3, 4))

    @tf.function(experimental_attributes={"_noinline": True})
    def inner(x, k):
        return tf.matmul(x, k)

    fn = tf.function(lambda x: tf.nn.relu(inner(x, w)))
    frozen = convert_variables_to_constants_v2(fn.get_concrete_function(tf.TensorSpec([None, 3], tf.float32, name="x")))
    pb = tmp_path / "nested.pb"
    pb.write_bytes(frozen.graph.as_graph_def().SerializeToString())
    net = import_graphdef(pb)
    assert [t.name for t in net.outputs] == ["Identity"]
    assert [o["name"] for o in describe_graph(pb)["outputs"]] == ["Identity"]
    x = rand(2, 3)
    y = build_engine(net).run({"x": x})["Identity"]
    assert max_err(y, np.maximum(x @ w.numpy(), 0)) <= 1e-6

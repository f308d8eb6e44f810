"""`compare --against tf:MODEL` must not run code the model file carries (Keras Lambda
bytecode, py_func / file ops in graphs) unless --trust-model is given."""

from __future__ import annotations

import pytest

from sec_helpers import identity_engine, one_line_error
from tf2rt.cli import main


def _side_effect(marker):
    # Python code that leaves a trace when it runs: the "payload" of a hostile Lambda layer.
    return eval(f"lambda t: t + 0.0 * float(__import__('pathlib').Path({str(marker)!r}).write_text('pwned'))")


@pytest.fixture(scope="module")
def lambda_models(tmp_path_factory, tf):
    import keras
    import tf_keras

    d = tmp_path_factory.mktemp("lambda")
    marker = d / "pwned.txt"
    x = tf_keras.Input((4,), name="x")
    tf_keras.Model(x, tf_keras.layers.Lambda(_side_effect(marker), name="y")(x)).save(d / "m.h5")
    x3 = keras.Input((4,), name="x")
    keras.Model(x3, keras.layers.Lambda(_side_effect(marker), name="y")(x3)).save(d / "m.keras")
    marker.unlink(missing_ok=True)  # building the models ran the lambdas once
    return d, marker


@pytest.mark.parametrize("name", ["m.h5", "m.keras"])
def test_lambda_layer_is_refused(lambda_models, tmp_path, capsys, name):
    d, marker = lambda_models
    engine = identity_engine(tmp_path / "e.onnx")
    assert main(["compare", str(engine), "--against", f"tf:{d / name}"]) == 2
    err = one_line_error(capsys.readouterr().err, "compare", only=False)
    assert "Lambda" in err and "--trust-model" in err
    assert not marker.exists()


def test_lambda_runs_with_trust_model(lambda_models, tmp_path, capsys):
    """The flag is the user's explicit decision: then (and only then) the Lambda runs."""
    d, marker = lambda_models
    engine = identity_engine(tmp_path / "e.onnx")
    try:
        assert main(["compare", str(engine), "--against", f"tf:{d / 'm.h5'}", "--trust-model"]) == 0
        assert marker.read_text() == "pwned"
    finally:
        marker.unlink(missing_ok=True)


@pytest.mark.parametrize("name", ["ok.h5", "ok.keras"])
def test_benign_keras_model_still_compares(tmp_path, capsys, tf, name):
    import keras
    import tf_keras

    k = tf_keras if name.endswith(".h5") else keras
    x = k.Input((4,), name="x")
    k.Model(x, k.layers.Activation("linear", name="y")(x)).save(tmp_path / name)
    engine = identity_engine(tmp_path / "e.onnx")
    assert main(["compare", str(engine), "--against", f"tf:{tmp_path / name}"]) == 0
    assert "OK: all outputs match" in capsys.readouterr().out


def test_h5_config_with_bytecode_built_by_hand_is_refused(tmp_path, capsys):
    """A legacy .h5 whose config carries marshalled code in any layer (not only class Lambda)."""
    import json

    import h5py

    config = {"class_name": "Functional", "config": {"name": "m", "layers": [
        {"class_name": "InputLayer", "config": {"name": "x", "batch_input_shape": [None, 4]}},
        {"class_name": "Dense", "config": {"name": "y", "units": 4, "activation": "linear",
                                            "function": ["4wEAAAAAAAAA", None, None], "function_type": "lambda"}}]}}
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f.attrs["model_config"] = json.dumps(config)
        f.attrs["keras_version"] = "2.15.0"
    engine = identity_engine(tmp_path / "e.onnx")
    assert main(["compare", str(engine), "--against", f"tf:{tmp_path / 'm.h5'}"]) == 2
    assert "bytecode" in one_line_error(capsys.readouterr().err, "compare")


def _write_file_graph(tf, path, marker):
    """A frozen graph: y = Identity(x), with a control dependency on WriteFile(marker)."""
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        write = tf.io.write_file(str(marker), "pwned")
        with tf.control_dependencies([write]):
            tf.identity(x, name="y")
    path.write_bytes(g.as_graph_def().SerializeToString())
    return path


def test_graph_with_file_ops_is_refused(tmp_path, capsys, tf):
    marker = tmp_path / "pwned.txt"
    pb = _write_file_graph(tf, tmp_path / "m.pb", marker)
    engine = identity_engine(tmp_path / "e.onnx")
    assert main(["compare", str(engine), "--against", f"tf:{pb}"]) == 2
    err = one_line_error(capsys.readouterr().err, "compare", only=False)
    assert "WriteFile" in err and "--trust-model" in err
    assert not marker.exists()
    assert main(["compare", str(engine), "--against", f"tf:{pb}", "--trust-model"]) == 0
    assert marker.read_text() == "pwned"


def test_saved_model_with_py_function_is_refused(tmp_path, capsys, tf):
    marker = tmp_path / "pwned.txt"

    class M(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, x):
            out = tf.py_function(lambda t: t, [x], tf.float32)
            return {"y": tf.reshape(out, tf.shape(x))}

    m = M()
    tf.saved_model.save(m, str(tmp_path / "sm"), signatures={"serving_default": m.serve})
    engine = identity_engine(tmp_path / "e.onnx")
    assert main(["compare", str(engine), "--against", f"tf:{tmp_path / 'sm'}"]) == 2
    err = one_line_error(capsys.readouterr().err, "compare", only=False)
    assert "PyFunc" in err and "--trust-model" in err
    assert not marker.exists()


def _tf1_checkpoint(tf, d, marker, hijack_restore: bool):
    """A TF1 checkpoint (y = x + v) whose .meta graph writes `marker`: through the fetched output,
    or through the saver's restore op."""
    tf1 = tf.compat.v1
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, 4], name="x")
        v = tf1.Variable(tf.zeros([4]), name="v")
        write = tf.io.write_file(str(marker), "pwned", name="evil")
        deps = [] if hijack_restore else [write]
        with tf.control_dependencies(deps):
            tf.identity(x + v, name="y")
        saver = tf1.train.Saver()
        with tf1.Session(graph=g) as sess:
            sess.run(tf1.global_variables_initializer())
            prefix = saver.save(sess, str(d / "m.ckpt"))
    if hijack_restore:
        mg = tf1.MetaGraphDef()
        mg.ParseFromString((d / "m.ckpt.meta").read_bytes())
        restore = next(n for n in mg.graph_def.node if n.name == mg.saver_def.restore_op_name)
        restore.input.append("^evil")
        (d / "m.ckpt.meta").write_bytes(mg.SerializeToString())
    return prefix


@pytest.mark.parametrize("hijack_restore", [False, True])
def test_tf1_meta_graph_with_file_ops_is_refused(tmp_path, capsys, tf, hijack_restore):
    marker = tmp_path / "pwned.txt"
    prefix = _tf1_checkpoint(tf, tmp_path, marker, hijack_restore)
    engine = identity_engine(tmp_path / "e.onnx")
    assert main(["compare", str(engine), "--against", f"tf:{prefix}"]) == 2
    err = one_line_error(capsys.readouterr().err, "compare", only=False)
    assert "WriteFile" in err and "--trust-model" in err
    assert not marker.exists()
    assert main(["compare", str(engine), "--against", f"tf:{prefix}", "--trust-model"]) == 0
    assert marker.read_text() == "pwned"


def test_tf1_checkpoint_without_hostile_ops_still_compares(tmp_path, capsys, tf):
    tf1 = tf.compat.v1
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, 4], name="x")
        v = tf1.Variable(tf.zeros([4]), name="v")
        tf.identity(x + v, name="y")
        saver = tf1.train.Saver()
        with tf1.Session(graph=g) as sess:
            sess.run(tf1.global_variables_initializer())
            prefix = saver.save(sess, str(tmp_path / "ok.ckpt"))
    engine = identity_engine(tmp_path / "e.onnx")
    assert main(["compare", str(engine), "--against", f"tf:{prefix}"]) == 0
    assert "OK: all outputs match" in capsys.readouterr().out

"""Frozen GraphDefs (.pb) and SavedModels read without TensorFlow, compared with TensorFlow.

keras.applications models (seeded, non-degenerate) frozen with convert_variables_to_constants_v2
and saved with tf.saved_model.save; a TF-slim style graph of raw tf.nn ops; bad files.
"""

from __future__ import annotations

import numpy as np
import pytest

from helpers.keras_cnn import MODELS, assert_not_degenerate, check_engine, photos, rel_err, seeded_application


def freeze(tf, fn, spec, path) -> None:
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    frozen = convert_variables_to_constants_v2(tf.function(fn).get_concrete_function(spec))
    path.write_bytes(frozen.graph.as_graph_def().SerializeToString())


@pytest.fixture(scope="module")
def tf_models(tf, tmp_path_factory):
    d = tmp_path_factory.mktemp("graphdef")
    out = {}
    for name, size in MODELS.items():
        model = seeded_application(name, size)
        x = photos(size, name)
        ref = model(x).numpy().astype(np.float64)
        pb = d / f"{name}.pb"
        freeze(tf, lambda t: model(t), tf.TensorSpec([None, size, size, 3], tf.float32, name="image"), pb)
        sm = d / f"{name}_saved_model"
        tf.saved_model.save(model, str(sm))
        out[name] = (pb, sm, x, ref)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_application_frozen_graphdef(tf_models, name):
    from tf2rt.importers.graphdef import import_graphdef

    pb, _, x, ref = tf_models[name]
    assert_not_degenerate(ref)
    net = import_graphdef(pb)
    assert net.inputs[0].name == "image"
    transposes = [layer.name for layer in net.layers if layer.type == "shuffle" and
                  (layer.first_transpose is not None or layer.second_transpose is not None)]
    assert len(transposes) <= 2, f"NHWC should be transposed once at the input, not per layer: {transposes}"
    check_engine(net, x, ref, f"{name} (.pb)")


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_application_saved_model(tf_models, name):
    from tf2rt.importers.saved_model import import_saved_model

    _, sm, x, ref = tf_models[name]
    net = import_saved_model(sm)
    assert net.outputs[0].name == "output_0"  # the serving signature's keys name the engine's tensors
    check_engine(net, x, ref, f"{name} (SavedModel)")


def _slim_graph(tf):
    """Raw tf.nn ops as TF-slim graphs use them, with distinct values in every weight."""
    rng = np.random.default_rng(3)

    def c(*shape, lo=-0.5, hi=0.5):
        return tf.constant(rng.uniform(lo, hi, shape).astype(np.float32))

    w1, dw, w2, fc = c(3, 3, 3, 8), c(3, 3, 8, 2), c(1, 1, 16, 12), c(24, 5)
    scale, offset, mean, var = c(16, lo=0.5, hi=1.5), c(16), c(16), c(16, lo=0.5, hi=2.0)
    w3, w4, b1, b2 = c(3, 3, 8, 8), c(2, 2, 24, 24), c(8), c(5)

    def fn(x):
        y = tf.nn.conv2d(x, w1, strides=[1, 2, 2, 1], padding="SAME")
        y = tf.nn.bias_add(y, b1)
        y = tf.nn.relu6(y)
        y = tf.nn.conv2d(y, w3, strides=1, padding="SAME", dilations=2)
        y = tf.nn.depthwise_conv2d(y, dw, strides=[1, 1, 1, 1], padding="SAME", dilations=[2, 2])  # atrous
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(y, scale, offset, mean, var, epsilon=1e-3, is_training=False)
        y = tf.nn.elu(y)
        y = tf.pad(y, [[0, 0], [1, 0], [0, 2], [0, 0]])
        a = tf.nn.max_pool2d(y, 3, 2, "SAME")
        b = tf.nn.avg_pool2d(y, 3, 2, "SAME")
        y = tf.concat([tf.nn.conv2d(a, w2, 1, "VALID"), tf.sigmoid(b[..., :12] * 2.0 - 1.0)], axis=3)
        y = tf.nn.conv2d(y, w4, 1, [[0, 0], [1, 0], [0, 1], [0, 0]])
        y = tf.reduce_mean(y, axis=[1, 2], keepdims=True)
        y = tf.squeeze(y, axis=[1, 2])
        y = tf.tanh(tf.matmul(y, fc) + b2)
        return tf.nn.softmax(tf.expand_dims(y, 1) / 0.1)

    return fn


def test_slim_style_ops(tf, tmp_path):
    from tf2rt.engine import build_engine
    from tf2rt.importers.graphdef import import_graphdef

    fn = _slim_graph(tf)
    pb = tmp_path / "slim.pb"
    freeze(tf, fn, tf.TensorSpec([None, 17, 15, 3], tf.float32, name="input"), pb)
    from tf2rt.importers.graphdef import read_graphdef

    ops = {n.op for n in read_graphdef(pb).nodes.values()}
    assert {"SpaceToBatchND", "BatchToSpaceND", "FusedBatchNormV3", "DepthwiseConv2dNative"} <= ops
    x = np.random.default_rng(4).uniform(-1, 1, (3, 17, 15, 3)).astype(np.float32)
    ref = fn(tf.constant(x)).numpy().astype(np.float64)
    net = import_graphdef(pb)
    engine = build_engine(net)
    for backend in ("onnxruntime", "reference"):
        y = engine.run({"input": x}, backend=backend)[net.outputs[0].name]
        assert y.shape == ref.shape
        assert rel_err(y, ref) < 1e-5, (backend, rel_err(y, ref))


def test_unsupported_op_named(tf, tmp_path):
    from tf2rt.errors import UnsupportedError
    from tf2rt.importers.graphdef import import_graphdef

    def fn(x):
        return tf.math.lgamma(tf.nn.relu(x)) + tf.math.cumprod(x, axis=1)

    pb = tmp_path / "bad.pb"
    freeze(tf, fn, tf.TensorSpec([None, 4], tf.float32, name="x"), pb)
    with pytest.raises(UnsupportedError) as exc:
        import_graphdef(pb)
    msg = str(exc.value)
    assert "Lgamma x1" in msg and "Cumprod x1" in msg and "node 'Lgamma'" in msg


@pytest.mark.parametrize("data", [b"", b"\x0a\xff\xff\xff\xff\x0f", b"\x0a\x05\x0a\x03abc\x12", bytes(range(256))])
def test_bad_graphdef_files(tmp_path, data):
    from tf2rt.errors import Tf2rtError
    from tf2rt.importers.graphdef import import_graphdef

    p = tmp_path / "bad.pb"
    p.write_bytes(data)
    with pytest.raises(Tf2rtError):
        import_graphdef(p)


def test_hostile_tensor_shape_is_refused():
    """A Const claiming 2^40 floats from one stored value must not allocate them."""
    from tf2rt.errors import FormatError
    from tf2rt.importers.graphdef import parse_tensor
    from tf2rt.proto import Message

    def varint(n):
        out = b""
        while True:
            b = n & 0x7F
            n >>= 7
            out += bytes([b | (0x80 if n else 0)])
            if not n:
                return out

    dim = b"\x08" + varint(1 << 40)
    shape = b"\x12" + varint(len(dim)) + dim
    proto = b"\x08\x01" + b"\x12" + varint(len(shape)) + shape + b"\x2d\x00\x00\x80\x3f"
    with pytest.raises(FormatError):
        parse_tensor(Message(proto))


def test_missing_saved_model(tmp_path):
    from tf2rt.errors import FormatError
    from tf2rt.importers.saved_model import import_saved_model

    with pytest.raises(FormatError, match="saved_model.pb"):
        import_saved_model(tmp_path)


def test_keras_dilated_depthwise_frozen(tf, tmp_path):
    """Keras' dilated DepthwiseConv2D freezes to SpaceToBatchND -> conv -> BatchToSpaceND."""
    from tf2rt.engine import build_engine
    from tf2rt.importers.graphdef import import_graphdef

    keras = oracles_keras()
    keras.utils.set_random_seed(6)
    inp = keras.Input((13, 11, 4), name="img")
    x = keras.layers.DepthwiseConv2D(3, padding="same", dilation_rate=2, depth_multiplier=2)(inp)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Conv2D(5, 3, padding="same", dilation_rate=(2, 3))(x)
    model = keras.Model(inp, x)
    bn = model.layers[2]
    rng = np.random.default_rng(6)
    bn.set_weights([rng.uniform(0.5, 1.5, 8), rng.normal(0, 0.3, 8), rng.normal(0, 0.3, 8), rng.uniform(0.5, 2, 8)])
    pb = tmp_path / "atrous.pb"
    freeze(tf, lambda t: model(t), tf.TensorSpec([None, 13, 11, 4], tf.float32, name="img"), pb)
    xin = rng.normal(size=(2, 13, 11, 4)).astype(np.float32)
    ref = model(xin).numpy().astype(np.float64)
    net = import_graphdef(pb)
    y = build_engine(net).run({"img": xin})[net.outputs[0].name]
    assert rel_err(y, ref) < 1e-5, rel_err(y, ref)


def oracles_keras():
    import oracles

    return oracles.keras()


def test_tf1_saved_model(tf1, tmp_path):
    """A TF1-style SavedModel (graph-mode variables, name-based checkpoint, builder API)."""
    from tf2rt.engine import build_engine
    from tf2rt.importers.saved_model import import_saved_model

    rng = np.random.default_rng(9)
    g = tf1.Graph()
    with g.as_default():
        x = tf1.placeholder(tf1.float32, [None, 10, 12, 3], name="input")
        w = tf1.Variable(rng.normal(0, 0.5, (3, 3, 3, 6)).astype(np.float32), name="conv/weights")
        scale, offset, mean, var = (tf1.Variable(v.astype(np.float32), name=f"bn/{k}") for k, v in (
            ("gamma", rng.uniform(0.5, 1.5, 6)), ("beta", rng.normal(0, 0.3, 6)), ("moving_mean", rng.normal(0, 0.3, 6)),
            ("moving_variance", rng.uniform(0.5, 2, 6))))
        fc = tf1.Variable(rng.normal(0, 0.5, (6, 4)).astype(np.float32), name="logits/weights")
        y = tf1.nn.conv2d(x, w, [1, 2, 2, 1], "SAME")
        y, _, _ = tf1.nn.fused_batch_norm(y, scale, offset, mean, var, is_training=False)
        y = tf1.nn.relu6(y)
        y = tf1.squeeze(tf1.reduce_mean(y, [1, 2], keepdims=True), [1, 2], name="SpatialSqueeze")
        logits = tf1.matmul(y, fc, name="logits")
        xin = rng.normal(size=(3, 10, 12, 3)).astype(np.float32)
        with tf1.Session(graph=g) as sess:
            sess.run(tf1.global_variables_initializer())
            ref = sess.run(logits, {x: xin}).astype(np.float64)
            builder = tf1.saved_model.Builder(str(tmp_path / "tf1_model"))
            sig = tf1.saved_model.predict_signature_def({"images": x}, {"logits": logits})
            builder.add_meta_graph_and_variables(sess, ["serve"], signature_def_map={"serving_default": sig})
            builder.save()
    net = import_saved_model(tmp_path / "tf1_model")
    assert [t.name for t in net.inputs] == ["images"] and [t.name for t in net.outputs] == ["logits"]
    y = build_engine(net).run({"images": xin})["logits"]
    assert rel_err(y, ref) < 1e-5, rel_err(y, ref)

"""Which TensorFlow op types typical published graphs contain, and whether tf2rt converts them:
writes docs/tf-op-census.json.

Graphs: keras.applications models (weights=None, batch-norm statistics randomised, frozen at
inference with convert_variables_to_constants_v2), the TF-slim nets of tf_slim.nets (frozen from
a tf.compat.v1 graph with is_training=False; skipped with a note if tf_slim is not importable),
and the graphs built by the GraphDef op tests (tests/importers/test_graphdef_ops_more.py and
test_graphdef_quantized.py). Each keras.applications and TF-slim graph is also converted with
tf2rt and its output compared with TensorFlow's (recorded under "conversion").
Needs TensorFlow; run:  python scripts/tf_op_census.py [--slim-path DIR]
Then regenerate docs/tf-ops.md with scripts/gen_tf_ops_doc.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

ROOT = Path(__file__).resolve().parent.parent
KERAS_APPS = {"MobileNet": 128, "MobileNetV2": 128, "MobileNetV3Small": 128, "ResNet50": 64, "ResNet50V2": 64,
              "InceptionV3": 75, "Xception": 71, "DenseNet121": 64, "EfficientNetB0": 64, "EfficientNetV2B0": 64,
              "VGG16": 32, "NASNetMobile": 224, "ConvNeXtTiny": 64}
SLIM_NETS = {"alexnet_v2": 224, "vgg_16": 224, "inception_v1": 224, "inception_v2": 224, "inception_v3": 299,
             "resnet_v1_50": 224, "resnet_v2_50": 224, "overfeat": 231}
SKIP = {"Placeholder", "Const", "Identity", "NoOp"}  # bookkeeping every graph has


def graph_ops(graph_def) -> list[str]:
    return sorted({n.op for n in graph_def.node} - SKIP)


CHECKS: dict[str, dict] = {}  # graph -> how its conversion by tf2rt compared with TensorFlow


def check_conversion(key: str, graph_def, x, ref, outputs) -> None:
    """Convert the frozen graph with tf2rt, run it (onnxruntime) and compare with TensorFlow's output."""
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from tf2rt.engine import build_engine
    from tf2rt.importers.graphdef import import_graphdef

    with tempfile.TemporaryDirectory() as d:
        pb = Path(d) / "model.pb"
        pb.write_bytes(graph_def.SerializeToString())
        try:
            net = import_graphdef(pb, outputs=outputs)
            y = build_engine(net).run({"image": x})[net.outputs[0].name]
            err = float(np.max(np.abs(y - ref)) / max(float(np.max(np.abs(ref))), 1e-12))
            CHECKS[key] = {"converts": True, "max_rel_err": float(f"{err:.2g}")}
        except Exception as exc:  # noqa: BLE001 - recorded in the census, not fatal
            CHECKS[key] = {"converts": False, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    print(f"  {key}: {CHECKS[key]}", flush=True)


def _non_degenerate(model, rng) -> None:
    """Batch-norm statistics away from 0/1, so that a wrong normalisation shows."""
    for w in model.weights:
        if "moving_variance" in w.name:
            w.assign(rng.uniform(0.5, 1.5, w.shape))
        elif "moving_mean" in w.name or "beta" in w.name:
            w.assign(rng.uniform(-0.1, 0.1, w.shape))


def keras_ops(tf) -> dict[str, list[str]]:
    import numpy as np
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    out = {}
    for name, size in KERAS_APPS.items():
        tf.keras.backend.clear_session()
        model = getattr(tf.keras.applications, name)(weights=None, input_shape=(size, size, 3))
        rng = np.random.default_rng(0)
        _non_degenerate(model, rng)
        fn = tf.function(lambda x, m=model: m(x, training=False))
        frozen = convert_variables_to_constants_v2(fn.get_concrete_function(
            tf.TensorSpec([None, size, size, 3], tf.float32, name="image")))
        gd = frozen.graph.as_graph_def()
        key = f"keras.applications.{name}"
        out[key] = graph_ops(gd)
        print(f"{name}: {len(out[key])} op types", flush=True)
        x = rng.uniform(0, 255, (2, size, size, 3)).astype(np.float32)
        check_conversion(key, gd, x, model(x, training=False).numpy(), [frozen.outputs[0].op.name])
    return out


def slim_ops(tf) -> dict[str, list[str]]:
    try:
        import tf_slim as slim
        from tf_slim import nets
    except ImportError as exc:
        print(f"tf_slim not importable ({exc}); TF-slim nets skipped", flush=True)
        return {}
    import numpy as np

    v1 = tf.compat.v1
    builders = {"alexnet_v2": nets.alexnet.alexnet_v2, "vgg_16": nets.vgg.vgg_16,
                "inception_v1": nets.inception.inception_v1, "inception_v2": nets.inception.inception_v2,
                "inception_v3": nets.inception.inception_v3, "resnet_v1_50": nets.resnet_v1.resnet_v1_50,
                "resnet_v2_50": nets.resnet_v2.resnet_v2_50, "overfeat": nets.overfeat.overfeat}
    out = {}
    del slim
    for name, size in SLIM_NETS.items():
        g = tf.Graph()
        try:
            with g.as_default():
                x = v1.placeholder(tf.float32, [None, size, size, 3], name="image")
                logits, _ = builders[name](x, num_classes=10, is_training=False)
                with v1.Session(graph=g) as sess:
                    sess.run(v1.global_variables_initializer())
                    x_val = np.random.default_rng(0).uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
                    ref = sess.run(logits, {x: x_val})
                    frozen = v1.graph_util.convert_variables_to_constants(sess, g.as_graph_def(), [logits.op.name])
        except Exception as exc:  # noqa: BLE001 - a net this TF version cannot build is left out, and said so
            print(f"{name}: not built with this TensorFlow ({type(exc).__name__}: {exc}); left out", flush=True)
            continue
        key = f"tf_slim.nets.{name}"
        out[key] = graph_ops(frozen)
        print(f"{name}: {len(out[key])} op types", flush=True)
        check_conversion(key, frozen, x_val, ref, [logits.op.name])
    return out


def test_graph_ops(tf) -> dict[str, list[str]]:
    sys.path[:0] = [str(ROOT / "tests" / "importers"), str(ROOT / "tests")]
    import test_graphdef_ops_more as more
    import test_graphdef_quantized as quant
    from helpers.graphdef_cases import build_case

    out = {}
    with tempfile.TemporaryDirectory() as d:
        for mod in (more, quant):
            ops: set[str] = set()
            for name, (fn, feeds, shapes) in mod.CASES.items():
                case = build_case(tf, Path(d) / f"{name}.pb", fn, feeds, shapes)
                gd = tf.compat.v1.GraphDef.FromString(case.pb.read_bytes())
                ops |= set(graph_ops(gd))
            out[f"tests/importers/{mod.__name__}.py"] = sorted(ops)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slim-path", help="directory holding the tf_slim package (added to sys.path)")
    ap.add_argument("-o", "--output", default=str(ROOT / "docs" / "tf-op-census.json"))
    ap.add_argument("--tests-only", action="store_true", help="only redo the test graphs, keep the other entries")
    args = ap.parse_args()
    if args.slim_path:
        sys.path.append(args.slim_path)
    import tensorflow as tf

    graphs = {}
    if args.tests_only:
        old = json.loads(Path(args.output).read_text())
        graphs = {k: v for k, v in old["graphs"].items() if not k.startswith("tests/")}
        CHECKS.update(old.get("conversion", {}))
    else:
        graphs.update(keras_ops(tf))
        graphs.update(slim_ops(tf))
    graphs.update(test_graph_ops(tf))
    doc = {"tensorflow": tf.__version__, "ignored_ops": sorted(SKIP), "graphs": graphs, "conversion": CHECKS}
    Path(args.output).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    print(f"wrote {args.output}: {len(graphs)} graphs, {len(set().union(*graphs.values()))} distinct op types")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Frozen CNN graphs: tf2rt vs tf2onnx + ONNX Runtime vs TensorFlow, in one run, on the CPU.

Each keras.applications model (random weights) is frozen to a GraphDef (what published `.pb`
files are); tf2rt and tf2onnx convert the same file, and both ONNX files run on onnxruntime
with the same session options (intra-op threads as given, default: onnxruntime's own) on the
same input; TensorFlow runs the frozen graph itself. Each contender is timed in blocks of
calls, in the order A B C and then C B A, and its time is the lower of its two block medians;
both converters' largest differences from TensorFlow's output are reported.

    python benchmarks/bench_graphs_vs_tf2onnx.py [--models MobileNetV2,ResNet50] [--out benchmarks/results/graphs_vs_tf2onnx]

Needs TensorFlow and tf2onnx (`pip install tf2onnx`), which tf2rt itself never imports.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tf2onnx_peer import block_times, ort_session, tf2onnx_convert, write_results  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _freeze(tf, name: str, size: int, path: Path):
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    # logits, not softmax: random weights saturate a softmax and would hide differences
    model = getattr(tf.keras.applications, name)(weights=None, input_shape=(size, size, 3),
                                                 classifier_activation=None)
    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(
        tf.TensorSpec([1, size, size, 3], tf.float32, name="image"))
    frozen = convert_variables_to_constants_v2(fn)
    gd = frozen.graph.as_graph_def()
    path.write_bytes(gd.SerializeToString())
    return frozen, [t.name for t in frozen.inputs], [t.name for t in frozen.outputs]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="MobileNetV2,ResNet50,InceptionV3,EfficientNetB0")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: its default)")
    ap.add_argument("--out", default="benchmarks/results/graphs_vs_tf2onnx")
    args = ap.parse_args()
    import tensorflow as tf

    import tf2rt

    rows = []
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for name in [m.strip() for m in args.models.split(",") if m.strip()]:
            size = 299 if name == "InceptionV3" and args.size == 224 else args.size
            pb = Path(tmp) / f"{name}.pb"
            frozen, ins, outs = _freeze(tf, name, size, pb)
            x = rng.standard_normal((1, size, size, 3)).astype(np.float32)
            want = frozen(tf.constant(x))
            want = (want[0] if isinstance(want, (list, tuple)) else want).numpy()
            ours_path = Path(tmp) / f"{name}_tf2rt.onnx"
            engine = tf2rt.convert(pb, ours_path)
            ours = ort_session(ours_path, args.threads)
            ours_in = ours.get_inputs()[0].name
            got = ours.run(None, {ours_in: x})[0]
            row = {"model": name, "size": size, "tf2rt_max_err": float(np.abs(got.reshape(want.shape) - want).max())}
            theirs_path = Path(tmp) / f"{name}_tf2onnx.onnx"
            problem = tf2onnx_convert(pb, theirs_path, ins, outs)
            calls = {"tf2rt": lambda: ours.run(None, {ours_in: x}), "tensorflow": lambda: frozen(tf.constant(x))}
            if problem is None:
                theirs = ort_session(theirs_path, args.threads)
                t_in = theirs.get_inputs()[0].name
                t_out = theirs.run(None, {t_in: x})[0]
                row["tf2onnx_max_err"] = float(np.abs(t_out.reshape(want.shape) - want).max())
                calls["tf2onnx"] = lambda: theirs.run(None, {t_in: x})
            else:
                row["tf2onnx_problem"] = problem[:160]
            for k, v in block_times(calls, args.rounds).items():
                row[f"{k}_ms"] = v * 1e3
            del engine
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(write_results(rows, Path(args.out), "model", [f"{r['model']} {r['size']}x{r['size']}" for r in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

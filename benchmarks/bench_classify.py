"""Image classification speed: TensorFlow (CPU) vs tf2rt engines (fp32 / fp16 / int8 on onnxruntime).

    python benchmarks/bench_classify.py --size 224 --runs 10 --out benchmarks/results/classify_cpu

For each keras.applications model (random weights; speed does not depend on them), at batch
1 and 8: TensorFlow runs the Keras model as a compiled tf.function (graph mode, like the
seed's frozen-graph timing); tf2rt imports the saved .keras file without TensorFlow, builds
fp32 and fp16 engines, and an int8 engine calibrated on photographs. Each number is the
median wall time of one call on a preprocessed batch (preprocessing excluded) after warm-up,
on the same machine in the same run. Contenders are timed in interleaved rounds (one call
each per round, rotating order) so background load on a shared machine hits all alike;
--runs rounds (at least 3, fewer when a round is so slow that --runs would take over 60 s). The fp32 engine's logits are checked against
TensorFlow's. A digits CNN (benchmarks/train_digits_cnn.py) gives the int8 accuracy change.
Writes <out>.md (table), <out>.png (bar chart) and <out>.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

MODELS = ("MobileNetV2", "MobileNetV3Small", "ResNet50", "InceptionV3", "EfficientNetB0", "VGG16")
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "cat", "immunohistochemistry", "hubble_deep_field")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def photos(size: int) -> np.ndarray:
    """Offline photographs (scikit-image), RGB 0..255 resized to size x size."""
    from skimage import color, data, transform

    out = []
    for name in PHOTOS:
        img = getattr(data, name)()
        if img.ndim == 2:
            img = color.gray2rgb(img)
        out.append(transform.resize(img[..., :3], (size, size), anti_aliasing=True, preserve_range=True))
    return np.stack(out).astype(np.float32)


def interleaved(calls: dict, runs: int, budget_s: float = 60.0) -> dict[str, float]:
    """Median ms per call of each contender, timed in rounds (one call each, rotating order)
    so that background load on a shared machine hits all of them alike."""
    first = {}
    for key, fn in calls.items():  # warm-up (and a first estimate of the cost)
        t = time.perf_counter()
        fn()
        first[key] = time.perf_counter() - t
        fn()
    per_round = sum(first.values())
    runs = max(3, min(runs, int(budget_s / max(per_round, 1e-6))))
    times: dict[str, list[float]] = {k: [] for k in calls}
    keys = list(calls)
    for r in range(runs):
        for key in keys[r % len(keys):] + keys[: r % len(keys)]:
            t = time.perf_counter()
            calls[key]()
            times[key].append(time.perf_counter() - t)
    return {k: statistics.median(v) * 1000.0 for k, v in times.items()}


def bench_model(name: str, size: int, runs: int, batches: tuple[int, ...], tmp: Path) -> dict:
    import keras
    import tensorflow as tf

    from tf2rt.engine import build_engine
    from tf2rt.engine.int8 import quantize
    from tf2rt.importers.keras import import_keras

    keras.utils.set_random_seed(0)
    model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3), classes=1000,
                                              classifier_activation=None)  # logits: a sharper check
    path = tmp / f"{name}.keras"
    model.save(path)
    pix = photos(size)
    raw = name in ("MobileNetV3Small", "EfficientNetB0")  # these rescale pixels inside the model
    x_all = pix if raw else pix / 127.5 - 1.0
    row: dict = {"model": name, "input": f"{size}x{size}", "ms": {}}
    fn = tf.function(lambda t: model(t, training=False), reduce_retracing=True)
    net = import_keras(path)
    t0 = time.perf_counter()
    engines = {"fp32": build_engine(net), "fp16": build_engine(net, precision="fp16")}
    row["build_s"] = round(time.perf_counter() - t0, 2)
    engines["int8"] = quantize(engines["fp32"], x_all)
    in_name, out_name = net.inputs[0].name, net.outputs[0].name
    ref = fn(tf.constant(x_all[:4])).numpy()
    got = engines["fp32"].run({in_name: x_all[:4]})[out_name]
    row["fp32_rel_err"] = float(np.abs(got - ref).max() / np.abs(ref).max())
    for b in batches:
        x = np.ascontiguousarray(np.resize(x_all, (b,) + x_all.shape[1:]))
        xt = tf.constant(x)
        feeds = {in_name: x}
        calls = {"tf": lambda: fn(xt).numpy()}
        runners = {p: e.runner(spinning=False) for p, e in engines.items()}  # idle threads must not steal CPU
        for p, r in runners.items():
            calls[p] = (lambda r=r: r.run(feeds))
        for key, ms in interleaved(calls, runs).items():
            row["ms"][f"{key}_b{b}"] = ms
        for r in runners.values():
            r.close()
    engines.clear()  # free the engines before the next model
    keras.backend.clear_session()
    gc.collect()
    return row


def digits_accuracy() -> dict:
    import importlib.util

    from tf2rt.engine import build_engine
    from tf2rt.engine.int8 import accuracy, quantize
    from tf2rt.importers.keras import import_keras

    spec = importlib.util.spec_from_file_location("train_digits_cnn", ROOT / "benchmarks" / "train_digits_cnn.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    model, data = mod.train(seed=0, epochs=40)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "digits.keras"
        model.save(p)
        fp32 = build_engine(import_keras(p))
    int8 = quantize(fp32, data["x_train"][:256])
    return {"keras": float((model.predict(data["x_test"], verbose=0).argmax(1) == data["y_test"]).mean()),
            "fp32": accuracy(fp32, data["x_test"], data["y_test"]),
            "int8": accuracy(int8, data["x_test"], data["y_test"]), "test_images": int(len(data["y_test"]))}


def fmt(v) -> str:
    return "n/a" if v is None else (f"{v:.1f}" if v >= 10 else f"{v:.2f}")


def markdown(rows: list[dict], batches: tuple[int, ...], digits: dict | None, meta: dict) -> str:
    lines = ["# Image classification on CPU: TensorFlow vs tf2rt engines", "",
             f"{meta['cpu']}, {meta['threads']} threads visible; TensorFlow {meta['tf']}, onnxruntime {meta['ort']}; "
             f"median of up to {meta['runs']} interleaved rounds (at least 3; one call per contender per round) after "
             f"warm-up, preprocessing excluded; onnxruntime with its default threads, spinning off. "
             f"Command: `{meta['command']}`", ""]
    for b in batches:
        lines += [f"## Batch {b} (ms per batch; speed-up = TensorFlow time / engine time)", "",
                  "| Model | Input | TF fp32 | tf2rt fp32 | tf2rt fp16 | tf2rt int8 | fp32 speed-up | fp16 speed-up | "
                  "int8 speed-up |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            ms = r["ms"]
            tf_ms = ms[f"tf_b{b}"]
            cells = [fmt(ms.get(f"{p}_b{b}")) for p in ("fp32", "fp16", "int8")]
            ups = [("n/a" if ms.get(f"{p}_b{b}") is None else f"{tf_ms / ms[f'{p}_b{b}']:.2f}x")
                   for p in ("fp32", "fp16", "int8")]
            lines.append(f"| {r['model']} | {r['input']} | {fmt(tf_ms)} | " + " | ".join(cells) + " | "
                         + " | ".join(ups) + " |")
        lines.append("")
    lines += ["fp32 engine vs TensorFlow, max |difference| / max |logit| on 4 photos: "
              + ", ".join(f"{r['model']} {r['fp32_rel_err']:.1e}" for r in rows), ""]
    if digits:
        lines += [f"int8 accuracy change (digits CNN, {digits['test_images']} test images): Keras "
                  f"{100 * digits['keras']:.2f}%, fp32 engine {100 * digits['fp32']:.2f}%, int8 engine "
                  f"{100 * digits['int8']:.2f}% ({100 * (digits['int8'] - digits['fp32']):+.2f} points)", ""]
    return "\n".join(lines)


def chart(rows: list[dict], batches: tuple[int, ...], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(batches), figsize=(7 * len(batches), 4.5), squeeze=False)
    kinds = [("tf", "TensorFlow fp32"), ("fp32", "tf2rt fp32"), ("fp16", "tf2rt fp16"), ("int8", "tf2rt int8")]
    for ax, b in zip(axes[0], batches):
        xs = np.arange(len(rows))
        for i, (k, label) in enumerate(kinds):
            vals = [r["ms"].get(f"{k}_b{b}") or 0.0 for r in rows]
            ax.bar(xs + (i - 1.5) * 0.2, vals, 0.2, label=label)
        ax.set_xticks(xs, [r["model"] for r in rows], rotation=30, ha="right")
        ax.set_yscale("log")
        ax.set_ylabel("ms per batch (log scale)")
        ax.set_title(f"batch {b}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--no-digits", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "classify_cpu")
    args = ap.parse_args()
    import onnxruntime
    import tensorflow as tf

    batches = tuple(int(b) for b in args.batches.split(","))
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for name in args.models.split(","):
            size = max(args.size, 75) if name == "InceptionV3" else args.size
            rows.append(bench_model(name, size, args.runs, batches, Path(d)))
            print(json.dumps(rows[-1]), flush=True)
    digits = None if args.no_digits else digits_accuracy()
    meta = {"cpu": cpu_name(), "threads": os.cpu_count(), "tf": tf.__version__, "ort": onnxruntime.__version__,
            "runs": args.runs, "command": "python benchmarks/bench_classify.py " + " ".join(sys.argv[1:])}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Path(str(args.out) + ".md").write_text(markdown(rows, batches, digits, meta))
    Path(str(args.out) + ".json").write_text(json.dumps({"meta": meta, "rows": rows, "digits": digits}, indent=1))
    chart(rows, batches, Path(str(args.out) + ".png"))
    print(Path(str(args.out) + ".md").read_text())


if __name__ == "__main__":
    main()

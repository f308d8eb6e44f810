"""Reading a large TensorFlow checkpoint: tf2rt vs TensorFlow's own reader, same run.

    .venv/bin/python benchmarks/bench_checkpoint_read.py [--mb 256] [--repeat 5]

Creates (once, cached under /tmp) a tf.train.Checkpoint of LSTM-sized float32 variables
totalling --mb megabytes, then times, best of --repeat, with a warm page cache for both:
  * read-all: every tensor with CRC32C checks, tf2rt (`open_checkpoint` + `read`) vs
    `tf.train.load_checkpoint` + `get_tensor` for every key;
  * the same with tf2rt's numpy CRC32C (no google_crc32c) and with verify=False;
  * a fresh interpreter that imports tf2rt and lists the checkpoint (open + infos), vs
    one that imports TensorFlow and lists it (`get_variable_to_shape_map`).
Prints a Markdown table with ratios (> 1 = tf2rt faster).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


def make_checkpoint(mb: int) -> Path:
    """A cached checkpoint of ~`mb` MB: 4-layer LSTM stacks (hidden 1024) plus small tensors."""
    out = Path(f"/tmp/tf2rt-bench-ckpt-{mb}mb")
    prefix = out / "model"
    if Path(f"{prefix}.index").is_file():
        return prefix
    import tensorflow as tf

    rng = np.random.default_rng(0)
    root = tf.Module()
    layers = []
    total = 0
    i = 0
    while total < mb * 1e6:
        layer = tf.Module()
        # kernel [in + hidden, 4 * hidden] as TF1 LSTM cells store it, plus the bias
        layer.kernel = tf.Variable(rng.standard_normal((2048, 4096), dtype=np.float32), name=f"cell_{i}/kernel")
        layer.bias = tf.Variable(rng.standard_normal(4096, dtype=np.float32), name=f"cell_{i}/bias")
        layers.append(layer)
        total += (2048 * 4096 + 4096) * 4
        i += 1
    root.layers = layers
    root.step = tf.Variable(0, dtype=tf.int64)
    ckpt = tf.train.Checkpoint(model=root)
    out.mkdir(parents=True, exist_ok=True)
    ckpt.write(str(prefix))
    return prefix


def best(fns: list, repeat: int) -> list[float]:
    """Best time of each function, run in alternation so load changes hit all alike."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t)
    return [min(t) for t in times]


def tf2rt_read_all(prefix: Path, verify: bool = True) -> int:
    from tf2rt.weights.tf_checkpoint import open_checkpoint

    n = 0
    with open_checkpoint(prefix, verify=verify) as src:
        for info in src.infos():
            n += src.read(info.key).nbytes
    return n


def tf_read_all(prefix: Path) -> int:
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(prefix))
    n = 0
    for key in reader.get_variable_to_shape_map():
        n += np.asarray(reader.get_tensor(key)).nbytes
    return n


def fresh_process(code: str, repeat: int) -> float:
    """Best wall time of a new interpreter running `code` (startup included)."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    prefix = make_checkpoint(args.mb)
    size = sum(f.stat().st_size for f in prefix.parent.iterdir())
    import tensorflow as tf  # noqa: F401  (imported before timing so neither side pays for it)

    from tf2rt.weights import crc32c

    tf2rt_read_all(prefix)
    tf_read_all(prefix)  # warm the page cache and both code paths
    t_tf, t_ours, t_noverify = best(
        [lambda: tf_read_all(prefix), lambda: tf2rt_read_all(prefix), lambda: tf2rt_read_all(prefix, verify=False)],
        args.repeat,
    )
    fast = crc32c.FAST
    crc32c.FAST = False
    try:
        (t_numpy_crc,) = best([lambda: tf2rt_read_all(prefix)], max(1, args.repeat // 2))
    finally:
        crc32c.FAST = fast

    list_ours = (
        "import tf2rt; from tf2rt.weights.tf_checkpoint import open_checkpoint; "
        f"s = open_checkpoint({str(prefix)!r}); print(len(s.infos()))"
    )
    list_tf = (
        "import os; os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'; import tensorflow as tf; "
        f"print(len(tf.train.load_checkpoint({str(prefix)!r}).get_variable_to_shape_map()))"
    )
    t_list_ours, t_python = best([lambda: fresh_process(list_ours, 1), lambda: fresh_process("pass", 1)], args.repeat)
    t_list_tf = fresh_process(list_tf, max(1, args.repeat // 2))
    inspect = f"from tf2rt.cli import main; raise SystemExit(main(['inspect', {str(prefix)!r}]))"
    try:
        (t_inspect,) = best([lambda: fresh_process(inspect, 1)], args.repeat)
    except subprocess.CalledProcessError:  # the CLI is built separately; leave the row out
        t_inspect = None

    mb = size / 1e6
    print(f"checkpoint: {prefix} ({mb:.0f} MB, {len(list(prefix.parent.glob('*.data-*')))} shard), "
          f"best of {args.repeat}, CRC32C: {'google_crc32c' if fast else 'numpy'}\n")
    print("| task | tf2rt | TensorFlow | ratio (TF / tf2rt) |")
    print("|---|---:|---:|---:|")
    print(f"| read all tensors, CRC checked | {t_ours:.3f} s ({mb / t_ours:.0f} MB/s) | {t_tf:.3f} s ({mb / t_tf:.0f} MB/s) | {t_tf / t_ours:.2f}x |")
    print(f"| read all, numpy CRC32C (no google_crc32c) | {t_numpy_crc:.3f} s | {t_tf:.3f} s | {t_tf / t_numpy_crc:.2f}x |")
    print(f"| read all, verify=False | {t_noverify:.3f} s | - | {t_tf / t_noverify:.2f}x |")
    print(f"| fresh process: import + list tensors | {t_list_ours:.3f} s | {t_list_tf:.3f} s | {t_list_tf / t_list_ours:.1f}x |")
    if t_inspect is not None:
        print(f"| fresh process: `tf2rt inspect` | {t_inspect:.3f} s | {t_list_tf:.3f} s | {t_list_tf / t_inspect:.1f}x |")
    print(f"| (bare `python -c pass` for reference) | {t_python:.3f} s | | |")


if __name__ == "__main__":
    main()

"""Dumping a TF1 checkpoint to TensorRT .wts: `tf2rt dump` vs TensorRT's dumpTFWts.py.

    .venv/bin/python benchmarks/bench_dump_wts.py [--mb 100] [--v1-mb 8] [--rounds 3]

The peer is dumpTFWts.py's algorithm run with TensorFlow's checkpoint reader
(tf.train.load_checkpoint, get_tensor for every sorted key, the v2 blob written in binary as
Python 2 did, v1 values formatted one struct.pack at a time). tf2rt reads the same
checkpoint without TensorFlow. Both outputs are checked to be byte-identical before the
times are reported. Times are wall-clock medians over --rounds (fresh output each round,
outputs on the same disk). The checkpoint holds float32 LSTM-sized variables only
(dumpTFWts exits on other dtypes); v1 (hex text) is timed on a smaller checkpoint
(--v1-mb) because the peer's per-element loop is slow.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_checkpoint(tf, out: Path, mb: float, name: str) -> Path:
    """A TF1 checkpoint of 2-layer-LSTM-like float32 variables totalling about `mb` MB."""
    tf1 = tf.compat.v1
    hidden = max(64, int((mb * 2**20 / 64) ** 0.5))  # two [2H, 4H] float32 kernels: 64 H^2 bytes
    shapes = {
        "rnn/multi_rnn_cell/cell_0/basic_lstm_cell/kernel": (2 * hidden, 4 * hidden),
        "rnn/multi_rnn_cell/cell_0/basic_lstm_cell/bias": (4 * hidden,),
        "rnn/multi_rnn_cell/cell_1/basic_lstm_cell/kernel": (2 * hidden, 4 * hidden),
        "rnn/multi_rnn_cell/cell_1/basic_lstm_cell/bias": (4 * hidden,),
        "softmax/softmax_w": (hidden, 65),
        "softmax/softmax_b": (65,),
        "embedding": (65, hidden),
    }
    rng = np.random.default_rng(0)
    g = tf.Graph()
    with g.as_default():
        variables = {n: tf1.get_variable(n, s, initializer=tf1.zeros_initializer()) for n, s in shapes.items()}
        saver = tf1.train.Saver()
        with tf1.Session(graph=g) as sess:
            sess.run(tf1.global_variables_initializer())
            for n, v in variables.items():
                v.load(rng.standard_normal(shapes[n]).astype(np.float32), sess)
            return Path(saver.save(sess, str(out / name), write_meta_graph=False))


def dumptfwts(tf, prefix: Path, out: Path, v1: bool) -> None:
    """dumpTFWts.py's loop (TensorRT samples/common), Python 3, binary output file."""
    reader = tf.train.load_checkpoint(str(prefix))
    var_to_shape_map = reader.get_variable_to_shape_map()
    with open(out, "wb") as f:
        f.write(b"%d\n" % len(var_to_shape_map))
        for key in sorted(var_to_shape_map):
            tensor = reader.get_tensor(key)
            val = tensor.size if v1 else tensor.shape
            f.write(("%s 0 %s " % (key.replace("/", "_"), val)).encode())
            if v1:
                for weight in tensor.flatten():
                    f.write(("%s " % hex(struct.unpack("<I", struct.pack("<f", float(weight)))[0])[2:]).encode())
            else:
                f.write(tensor.flatten().tobytes())
            f.write(b"\n")


def timed(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=float, default=100, help="checkpoint size for the v2 (.wts2) comparison")
    ap.add_argument("--v1-mb", type=float, default=8, help="checkpoint size for the v1 (.wts) comparison")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    import tensorflow as tf

    from tf2rt.weights.api import dump_weights

    rows = []
    with tempfile.TemporaryDirectory(prefix="tf2rt-bench-") as tmp:
        tmp = Path(tmp)
        for version, mb in (("v2", args.mb), ("v1", args.v1_mb)):
            prefix = make_checkpoint(tf, tmp, mb, f"{version}.ckpt")
            size = sum(p.stat().st_size for p in tmp.glob(f"{version}.ckpt.data-*"))
            suffix = ".wts2" if version == "v2" else ".wts"
            peer_out, ours_out = tmp / f"peer{suffix}", tmp / f"ours{suffix}"
            peer = timed(lambda: dumptfwts(tf, prefix, peer_out, v1=version == "v1"), args.rounds)
            ours = timed(lambda: dump_weights(prefix, ours_out), args.rounds)
            if peer_out.read_bytes() != ours_out.read_bytes():
                print(f"outputs differ for {version}", file=sys.stderr)
                return 1
            rows.append((version, size / 2**20, peer, ours))
            for p in tmp.glob(f"{version}.ckpt*"):
                p.unlink()

    print(f"# Dump a TF1 checkpoint to TensorRT .wts ({platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, TF {tf.__version__})\n")
    print("| format | checkpoint | dumpTFWts (TF reader) | tf2rt dump | speed-up |")
    print("|---|---:|---:|---:|---:|")
    for version, size, peer, ours in rows:
        print(f"| .wts {version} | {size:.1f} MB | {peer:.2f} s | {ours:.2f} s | {peer / ours:.1f}x |")
    print("\nOutputs byte-identical: yes. Medians of", args.rounds, "rounds, wall clock.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

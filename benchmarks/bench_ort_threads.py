"""onnxruntime threading on an idle and on a busy CPU: onnxruntime's default threads (spinning)
against tf2rt's workload-based choice (`threads="auto"`: 1 thread without spinning for small graphs).

    python benchmarks/bench_ort_threads.py --steps 400 --repeats 3 [--busy 2] [--out FILE.md]

"Busy" runs one pure-Python busy loop per core (or --busy N of them) beside the benchmark, as
other work on a shared machine would. Reported: median ms per streaming step (one character
of a char-RNN, states carried) and per whole sequence (T=100), best median of --repeats.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tf2rt.engine import build_engine  # noqa: E402
from tf2rt.network import Network  # noqa: E402

CONFIGS = {
    "onnxruntime default (spinning)": {"threads": "default"},
    "tf2rt auto": {},
    "2 threads, no spinning": {"threads": 2, "spinning": False},
}


def charrnn_engine(hidden: int, seq_len: int, vocab: int = 65, embed: int = 128, layers: int = 2, seed: int = 0):
    """embedding -> `layers` x LSTM(hidden) -> dense, with streaming states (random weights)."""
    rng = np.random.default_rng(seed)
    net = Network(f"charrnn{hidden}")
    tok = net.add_input("tokens", "int32", (1, seq_len))
    emb = net.add_gather(net.add_constant((vocab, embed), rng.standard_normal((vocab, embed)) * 0.1,
                                          name="embedding").output, tok, name="embed")
    rnn = net.add_rnn_v2(emb.output, layers, hidden, seq_len, "lstm", name="rnn")
    for i in range(layers):
        width = embed if i == 0 else hidden
        for g in ("input", "forget", "cell", "output"):
            rnn.set_weights_for_gate(i, g, True, rng.standard_normal((hidden, width)).astype(np.float32) * 0.05)
            rnn.set_weights_for_gate(i, g, False, rng.standard_normal((hidden, hidden)).astype(np.float32) * 0.05)
            rnn.set_bias_for_gate(i, g, True, rng.standard_normal(hidden).astype(np.float32) * 0.1)
            rnn.set_bias_for_gate(i, g, False, np.zeros(hidden, np.float32))
    rnn.hidden_state = net.add_input("h0", "float32", (1, layers, hidden))
    rnn.cell_state = net.add_input("c0", "float32", (1, layers, hidden))
    logits = net.add_fully_connected(rnn.output, vocab, rng.standard_normal((hidden, vocab)) * 0.05, name="softmax")
    net.mark_output(logits.output, "logits")
    net.mark_output(rnn.get_output(1), "h_n")
    net.mark_output(rnn.get_output(2), "c_n")
    return build_engine(net)


def time_stream(engine, options: dict, steps: int) -> float:
    stream = engine.stream(**options)
    tok = np.array([[7]], np.int32)
    for _ in range(20):
        stream.step({"tokens": tok})
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        stream.step({"tokens": tok})
        times.append(time.perf_counter() - t0)
    stream.close()
    return float(np.median(times)) * 1e3


def time_sequence(engine, options: dict, calls: int, length: int = 100) -> float:
    runner = engine.runner("onnxruntime", **options)
    tok = np.random.default_rng(1).integers(0, 65, (1, length)).astype(np.int32)
    feeds = runner.check_feeds({"tokens": tok})
    for _ in range(3):
        runner.run(feeds)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        runner.run(feeds)
        times.append(time.perf_counter() - t0)
    runner.close()
    return float(np.median(times)) * 1e3


def busy_loops(n: int) -> list[subprocess.Popen]:
    code = "while True:\n    pass\n"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(n)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=400, help="streaming steps timed per repeat")
    ap.add_argument("--calls", type=int, default=15, help="whole-sequence calls timed per repeat")
    ap.add_argument("--repeats", type=int, default=3, help="best median of this many repeats")
    ap.add_argument("--busy", type=int, default=os.cpu_count() or 2, help="busy-loop processes in the busy runs")
    ap.add_argument("--hidden", default="192,512", help="LSTM sizes (comma-separated)")
    ap.add_argument("--out", help="also write the Markdown table here")
    args = ap.parse_args()

    engines = {h: (charrnn_engine(h, 1), charrnn_engine(h, 100)) for h in (int(v) for v in args.hidden.split(","))}
    rows = []
    for load in ("idle", "busy"):
        procs = busy_loops(args.busy) if load == "busy" else []
        try:
            time.sleep(0.5 if procs else 0)
            for hidden, (step_engine, seq_engine) in engines.items():
                for label, options in CONFIGS.items():
                    step = min(time_stream(step_engine, options, args.steps) for _ in range(args.repeats))
                    seq = min(time_sequence(seq_engine, options, args.calls) for _ in range(args.repeats))
                    chosen = step_engine.runner("onnxruntime", **options).threading
                    rows.append((load, f"2x LSTM {hidden}", label, chosen, step, seq))
                    print(f"{load:5} LSTM {hidden:4} {label:32} step {step:.3f} ms  T=100 {seq:.2f} ms", flush=True)
        finally:
            for p in procs:
                p.kill()
                p.wait()
    lines = [f"onnxruntime threading, {os.cpu_count()} CPUs; busy = {args.busy} busy-loop processes "
             f"(`python benchmarks/bench_ort_threads.py --steps {args.steps} --repeats {args.repeats}`)", "",
             "| machine | model | session options | threads / spinning | ms per step | ms per T=100 |",
             "|---|---|---|---|---:|---:|"]
    for load, model, label, chosen, step, seq in rows:
        threads = "default" if chosen["threads"] is None else chosen["threads"]
        lines.append(f"| {load} | {model} | {label} | {threads} / {'on' if chosen['spinning'] else 'off'} "
                     f"| {step:.3f} | {seq:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

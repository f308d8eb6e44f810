"""What the tf2onnx comparisons share: running tf2onnx (a separate process: tf2rt never imports
it), onnxruntime sessions with the same options for both ONNX files, and block timing."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional


def tf2onnx_convert(src: Path, out: Path, inputs: Optional[list[str]] = None,
                    outputs: Optional[list[str]] = None, timeout: int = 1800) -> Optional[str]:
    """Convert a frozen graph (inputs/outputs given) or a SavedModel directory; None on success,
    else the last line tf2onnx printed."""
    args = [sys.executable, "-m", "tf2onnx.convert", "--output", str(out), "--opset", "17"]
    if src.is_dir():
        args += ["--saved-model", str(src)]
    else:
        args += ["--graphdef", str(src), "--inputs", ",".join(inputs or []), "--outputs", ",".join(outputs or [])]
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        return (p.stderr.strip().splitlines() or ["failed"])[-1][:200]
    return None


def ort_session(path: Path, threads: int = 0, inter_op: Optional[int] = None):
    """An onnxruntime CPU session (intra-op threads: 0 = onnxruntime's own choice)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    if inter_op is not None:
        so.inter_op_num_threads = inter_op
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median seconds of `repeats` calls after two warm-up calls."""
    fn()
    fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def block_times(calls: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Seconds per call of each contender, timed in blocks in the order A B C, then C B A; each
    contender's time is the lower of its two block medians (TensorFlow's thread pools keep
    spinning after a call, so interleaving single calls would charge the next contender)."""
    best: dict[str, float] = {}
    for order in (list(calls), list(reversed(calls))):
        for k in order:
            best[k] = min(best.get(k, float("inf")), median_time(calls[k], rounds))
    return best


def write_results(rows: list[dict], out: Path, label: str, labels: list[str], digits: int = 2) -> str:
    """`out`.json (the rows) and `out`.md: one table row per result (TensorFlow, tf2onnx + ORT,
    tf2rt, the two ratios, both converters' largest difference from TensorFlow)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    lines = [f"| {label} | TensorFlow | tf2onnx + ORT | tf2rt | tf2rt vs tf2onnx | tf2rt vs TF | "
             "max error vs TF (tf2rt / tf2onnx) |", "|---|---|---|---|---|---|---|"]
    for name, r in zip(labels, rows):
        theirs = f"{r['tf2onnx_ms']:.{digits}f} ms" if "tf2onnx_ms" in r else r.get("tf2onnx_problem", "-")
        vs = f"{r['tf2onnx_ms'] / r['tf2rt_ms']:.2f}x" if "tf2onnx_ms" in r else "-"
        err2 = f"{r['tf2onnx_max_err']:.1e}" if "tf2onnx_max_err" in r else "-"
        lines.append(f"| {name} | {r['tensorflow_ms']:.{digits}f} ms | {theirs} | {r['tf2rt_ms']:.{digits}f} ms | {vs} | "
                     f"{r['tensorflow_ms'] / r['tf2rt_ms']:.2f}x | {r['tf2rt_max_err']:.1e} / {err2} |")
    text = "\n".join(lines) + "\n"
    out.with_suffix(".md").write_text(text)
    return text

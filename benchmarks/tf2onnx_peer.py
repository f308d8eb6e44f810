"""What the tf2onnx comparisons share: running tf2onnx (a separate process: tf2rt never imports
it), onnxruntime sessions with the same options for both ONNX files, and block timing."""

from __future__ import annotations

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

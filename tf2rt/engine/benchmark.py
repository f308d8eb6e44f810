"""Latency / throughput measurement of an engine on a backend (what `tf2rt bench` prints)."""

from __future__ import annotations

import time
from typing import Any, Mapping, Optional

import numpy as np

from .inputs import random_inputs


def summarize(seconds: list[float], batch: int) -> dict[str, float]:
    """min/median/mean/p90/p99 latency in ms and throughput (items per second at the median)."""
    ms = np.asarray(seconds, np.float64) * 1e3
    med = float(np.median(ms))
    return {"min_ms": float(ms.min()), "median_ms": med, "mean_ms": float(ms.mean()),
            "p90_ms": float(np.percentile(ms, 90)), "p99_ms": float(np.percentile(ms, 99)),
            "max_ms": float(ms.max()), "throughput_per_s": batch * 1e3 / med if med > 0 else float("inf")}


def benchmark(engine: Any, backend: str = "onnxruntime", iterations: int = 200, warmup: int = 20,
              batch: Optional[int] = None, feeds: Optional[Mapping[str, np.ndarray]] = None,
              **options: Any) -> dict[str, Any]:
    """Run `engine` `warmup` + `iterations` times; returns timing statistics and the setup used.

    A runner with a `benchmark(feeds, iterations, warmup)` method (e.g. CUDA events) times
    itself; otherwise each call is timed with time.perf_counter around the backend's
    lowest-overhead run path (feeds are checked once, up front).
    """
    runner = engine.runner(backend, **options)
    try:
        data = runner.check_feeds(dict(feeds) if feeds is not None else random_inputs(engine, 0, batch))
        n = next((int(v.shape[0]) for v in data.values() if v.ndim), 1)
        if hasattr(runner, "benchmark"):
            seconds = list(runner.benchmark(data, iterations, warmup))
            timer = "backend"
        else:
            run = getattr(runner, "run_list", runner.run)
            for _ in range(warmup):
                run(data)
            seconds = []
            clock = time.perf_counter
            for _ in range(iterations):
                t0 = clock()
                run(data)
                seconds.append(clock() - t0)
            timer = "perf_counter"
        stats = summarize(seconds, n)
        stats.update({"backend": backend, "options": {k: repr(v) for k, v in options.items()}, "iterations": iterations,
                      "warmup": warmup, "batch": n, "timer": timer, "precision": engine.precision,
                      "inputs": {k: list(v.shape) for k, v in data.items()}})
        if hasattr(runner, "providers"):
            stats["providers"] = list(runner.providers)
        if hasattr(runner, "threading"):  # onnxruntime: intra-op threads and spinning, and why
            stats["threading"] = dict(runner.threading)
        return stats
    finally:
        runner.close()

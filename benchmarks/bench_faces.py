"""Face detection speed: tf2rt's MTCNN (engines on onnxruntime) vs the mtcnn package on TensorFlow.

    python benchmarks/bench_faces.py --runs 30 --out benchmarks/results/faces_cpu.md

Same CPU, same image (scikit-image's astronaut by default, plus the other offline photos
with --all-photos). Each detector runs in its own process (so one's thread pool cannot
spin against another's), in turns over several rounds so background load hits all alike;
each number is the median wall time of one detect call on an RGB uint8 array (decode
excluded) after warm-up; the table gives median and minimum. Both detectors use their
default settings; the table also shows tf2rt with one worker and onnxruntime's own thread
pool. The detections are checked to agree (same count, box IoU >= 0.98).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "apps" / "faces"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


CONTENDERS = {
    "tf2rt": ("tf2rt MTCNN (default: workers = cores, 1 onnxruntime thread each)", lambda: _tf2rt(None, None)),
    "tf2rt-threads": ("tf2rt MTCNN (1 worker, onnxruntime's own thread pool)", lambda: _tf2rt({}, 1)),
    "mtcnn-tf": ("mtcnn package (TensorFlow)", lambda: _package()),
}
REFERENCE = "mtcnn-tf"


def _tf2rt(options, workers):
    from tf2rt.apps.faces import MTCNN

    return MTCNN(runner_options=options, workers=workers)


def _package():
    from tf2rt.apps.faces import MtcnnTF

    return MtcnnTF()


def worker(key: str, names: list[str], runs: int, warmup: int) -> None:
    """Time one detector in this process; print one JSON line: image -> (times ms, rows)."""
    from photos import photos

    images = photos()
    det = CONTENDERS[key][1]()
    out = {}
    for name in names:
        img = images[name]
        rows = det.detect_rows(img)
        for _ in range(warmup):
            det.detect_rows(img)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            det.detect_rows(img)
            times.append((time.perf_counter() - t0) * 1000)
        out[name] = {"times": times, "rows": rows.tolist(), "shape": list(img.shape)}
    print("RESULT " + json.dumps(out))


def run_worker(key: str, names: list[str], runs: int, warmup: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", key, "--images", ",".join(names), "--runs", str(runs),
           "--warmup", str(warmup)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode or line is None:
        raise SystemExit(f"worker {key} failed:\n{proc.stderr[-3000:]}")
    return json.loads(line[len("RESULT "):])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30, help="timed runs per round")
    ap.add_argument("--rounds", type=int, default=2, help="rounds; each runs every detector once, in turn")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--all-photos", action="store_true", help="also grace_hopper, camera and an LFW mosaic")
    ap.add_argument("--out", help="write the Markdown table here too")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--images", help=argparse.SUPPRESS)
    args = ap.parse_args()
    names = ["astronaut"] + (["grace_hopper", "camera", "lfw_mosaic"] if args.all_photos else [])
    if args.worker:
        worker(args.worker, args.images.split(","), args.runs, args.warmup)
        return 0

    from photos import match_faces

    load = os.getloadavg()
    results: dict[str, dict] = {k: {} for k in CONTENDERS}
    for _ in range(args.rounds):
        for key in CONTENDERS:
            for name, r in run_worker(key, names, args.runs, args.warmup).items():
                entry = results[key].setdefault(name, {"times": [], "rows": r["rows"], "shape": r["shape"]})
                entry["times"] += r["times"]
    import importlib.metadata as md

    lines = [
        f"CPU: {cpu_name()}, {os.cpu_count()} logical cores; load average before "
        f"{', '.join(f'{v:.1f}' for v in load)}, after {', '.join(f'{v:.1f}' for v in os.getloadavg())}; "
        f"TensorFlow {md.version('tensorflow')}, onnxruntime {md.version('onnxruntime')}, mtcnn {md.version('mtcnn')}. "
        f"Each detector in its own process, {args.rounds} rounds x {args.runs} runs after {args.warmup} warm-up "
        f"runs. On a shared machine the minimum is the least disturbed run; the median shows typical load.",
        "",
        "| image | detector | faces | median ms | min ms | speed-up (medians) | speed-up (minima) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        ref_rows = np.array(results[REFERENCE][name]["rows"]).reshape(-1, 15)
        ref = statistics.median(results[REFERENCE][name]["times"])
        ref_min = min(results[REFERENCE][name]["times"])
        for key, (label, _) in CONTENDERS.items():
            rows = np.array(results[key][name]["rows"]).reshape(-1, 15)
            pairs = match_faces(ref_rows, rows)
            assert len(rows) == len(ref_rows) and all(p[2] >= 0.98 for p in pairs), (name, key)  # same faces
            med = statistics.median(results[key][name]["times"])
            low = min(results[key][name]["times"])
            h, w = results[key][name]["shape"][:2]
            lines.append(f"| {name} {w}x{h} | {label} | {len(rows)} | {med:.1f} | {low:.1f} | {ref / med:.2f}x | "
                         f"{ref_min / low:.2f}x |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""benchmarks/bench_cuda_rnn.py --refloor: a saved run's floor columns recomputed from the
run's own measurements, without a GPU."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import asdict
from pathlib import Path

import pytest

from tf2rt.backends.cuda.plan import DeviceLimits, RnnProblem, make_plan

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_cuda_rnn", ROOT / "benchmarks" / "bench_cuda_rnn.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(tmp_path: Path, with_limits: bool = True) -> Path:
    facts = asdict(DeviceLimits(name="NVIDIA H200", clock_ghz=1.98, hbm_bytes_per_s=4.8e12, l2_size=60 * 2**20))
    facts["compute_capability"] = list(facts["compute_capability"])
    meta = {"gpu": "NVIDIA H200", "date": "2026-11-26 03:11 UTC", "torch": "2.11", "cudnn": 91900,
            "command": "python benchmarks/bench_cuda_rnn.py", "variants": [],
            "exchange": {"allgather_512w_us": 0.99, "l2_broadcast_tb_s": 8.07, "graph_launch_us": 10.05}}
    if with_limits:
        meta["limits"] = facts
    rows = []
    for cell, hidden, batch, T, dtype in [("lstm", 512, 1, 100, "float16"), ("gru", 256, 64, 100, "float32")]:
        rows.append({"cell": cell, "hidden": hidden, "batch": batch, "T": T, "dtype": dtype, "layers": 2,
                     "cudnn_eager_us": 3000.0, "cudnn_graph_us": 700.0, "persistent_graph_us": 140.0,
                     "floor_us": 1.0, "full_floor_us": 2.0, "step": "v2", "mode": "wavefront",
                     "ours_graph_us": 140.0, "auto_engine": "persistent", "table_engine": "persistent",
                     "speedup_vs_cudnn_graph": 5.0, "speedup_vs_cudnn_eager": 21.4,
                     "persistent_speedup_vs_cudnn_graph": 5.0, "max_abs_diff_vs_cudnn": 1e-4})
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"meta": meta, "rows": rows}))
    return path


def test_refloor_recomputes_floors_from_the_runs_own_inputs(tmp_path):
    bench = _bench()
    path = _run(tmp_path)
    assert bench.main(["--refloor", str(path), "--out", str(tmp_path / "run.md")]) == 0
    data = json.loads(path.read_text())
    limits = DeviceLimits(name="NVIDIA H200", clock_ghz=1.98, hbm_bytes_per_s=4.8e12, l2_size=60 * 2**20,
                          exchange_us=0.99, l2_bytes_per_s=8.07e12, launch_us=5.6)  # the lower launch
    for r in data["rows"]:
        plan = make_plan(RnnProblem(r["cell"], r["hidden"], r["hidden"], r["batch"], r["T"], layers=2,
                                    dtype=r["dtype"]), limits, prefer="persistent")
        assert r["floor_us"] == pytest.approx(plan.floor_us) and r["full_floor_us"] == pytest.approx(plan.full_floor_us)
        assert r["persistent_graph_us"] == 140.0  # times stay as measured
    md = (tmp_path / "run.md").read_text()
    assert "recomputed" in md and "| lstm | float16 | 512 | 1 | 100 |" in md


def test_refloor_refuses_a_run_without_device_facts(tmp_path):
    with pytest.raises(SystemExit, match="no device facts"):
        _bench().main(["--refloor", str(_run(tmp_path, with_limits=False))])

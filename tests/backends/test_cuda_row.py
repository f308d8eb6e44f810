"""The row kernel (kernels/row_rnn.cu, row.py): one CTA per (direction, batch rows) with the
whole layer's R on its SM. On the CPU the kernel's own source runs under the host emulation
of CUDA (tests/helpers/cuda_host.h) and is checked against onnxruntime over whole
sequences: every cell form, lengths, initial states, reversed and bidirectional layers,
several layers, and each way a build splits its work (columns in registers or shared
memory, batch rows a CTA, rows a thread). GPU tests run the same cases on the device, and
NVRTC checks the planner's builds compile for sm_90 without spilling."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from cuda_models import RnnCase, make_inputs, make_weights, node_specs, stack_errors
from cuda_models import gpu_torch as _gpu
from helpers.cuda_host import row_host_kernel, use_host_kernels
from test_conformance import CASES as CONFORMANCE

from tf2rt.backends.cuda import row
from tf2rt.backends.cuda.device_limits import DeviceLimits
from tf2rt.backends.cuda.rnn import problem_for

TOL = {"float32": 1e-4, "float16": 2e-2, "bfloat16": 3e-2}

CASES = [
    dict(cell="lstm", hidden=24, batch=3, layers=2, initial=True),
    dict(cell="lstm", hidden=20, batch=4, layers=1, peepholes=True, clip=1.5, initial=True, seq_lens=True),
    dict(cell="lstm", hidden=16, batch=3, layers=2, bidirectional=True, seq_lens=True, initial=True),
    dict(cell="lstm", hidden=18, batch=2, layers=1, reverse=True, seq_lens=True),
    dict(cell="gru", hidden=24, batch=3, layers=2, initial=True),
    dict(cell="gru", hidden=21, batch=3, layers=2, lbr=0, bidirectional=True, seq_lens=True, initial=True),
    dict(cell="gru", hidden=32, batch=2, layers=1, lbr=0, clip=2.0),
    dict(cell="rnn", hidden=30, batch=3, layers=2, activation="Relu", initial=True, seq_lens=True),
    dict(cell="rnn", hidden=19, batch=2, layers=1, activation="Tanh", bidirectional=True),
]


def _ids(kw):
    return "-".join(f"{k}={v}" for k, v in kw.items())


def _case(kw, seq_len=7) -> RnnCase:
    case = RnnCase(seq_len=seq_len, input_size=12, seed=len(_ids(kw)), **kw)
    make_weights(case)
    return case


@pytest.fixture
def host(monkeypatch):
    """RowStack's kernel built for the host."""
    return use_host_kernels(monkeypatch, (row, "_compile", row_host_kernel))


def _errors(torch, case: RnnCase, dtype: str, stack, dev: str = "cpu", batch_major: bool = False) -> dict:
    """Largest difference from onnxruntime of every output of `stack` run on `case`."""
    return stack_errors(torch, case, dtype, make_inputs(case), stack, dev, batch_major)


def _stack(case, dtype, dev="cpu", **changes):
    problem = problem_for(node_specs(case), case.batch, case.seq_len, dtype)
    cfg, why = row.row_config(problem, DeviceLimits())
    assert cfg is not None, why
    return row.RowStack(problem, replace(cfg, **changes), [s.weights for s in node_specs(case)], device=dev)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("kw", CASES, ids=_ids)
def test_row_kernel_matches_onnxruntime(host, kw, dtype):
    case = _case(kw)
    errs = _errors(host, case, dtype, _stack(case, dtype))
    assert max(errs.values()) <= TOL[dtype], errs


# every way a build splits its work, on the forms with the most parts
SPLITS = [dict(kreg=0), dict(kreg=8), dict(bpc=2), dict(bpc=4, kreg=4), dict(rpt=2, threads=64),
          dict(cluster=2), dict(cluster=3, bpc=2), dict(cluster=4, kreg=0)]


@pytest.mark.parametrize("changes", SPLITS, ids=_ids)
@pytest.mark.parametrize("kw", [CASES[1], CASES[5]], ids=["lstm-peep-lens", "gru-reset-before-bidir"])
def test_every_split_of_the_work_gives_the_same_sequence(host, kw, changes):
    case = _case(kw)
    problem = problem_for(node_specs(case), case.batch, case.seq_len, "float32")
    base, _ = row.row_config(problem)
    if changes.get("rpt") == 2:  # two rows a thread: the fewest threads that cover the rows
        changes = dict(changes, threads=-(-(problem.gates * problem.hidden) // 64) * 32)
    assert replace(base, **changes) != base
    errs = _errors(host, case, "float32", _stack(case, "float32", **changes))
    assert max(errs.values()) <= 1e-4, (changes, errs)


def test_batch_major_input_and_shorter_calls(host):
    """x [B, T, in] seen time-major is projected in its own row order (no copy), and a call
    shorter than the planned sequence runs its own length."""
    case = _case(CASES[4])
    stack = _stack(case, "float32")
    errs = _errors(host, case, "float32", stack, batch_major=True)
    assert max(errs.values()) <= 1e-4, errs
    short = _case(CASES[4], seq_len=4)
    short.weights = case.weights
    errs = _errors(host, short, "float32", stack)
    assert max(errs.values()) <= 1e-4, errs


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_outputs_written_into_targets(host, dtype):
    """set_output_targets: y batch-major and hn/cn as float32, written by the kernel; an
    fp16 stack of two layers writes the lower layer's y in fp16 for the next layer and
    every layer's hn/cn in the targets' type (OTYPE; y of the lower layer: YTYPE)."""
    torch = host
    case = _case(CASES[0])
    stack = _stack(case, dtype)
    T, B, H, L = case.seq_len, case.batch, case.hidden, case.layers
    yb = torch.empty(B, T, H)  # batch-major [B, T, 1*H] seen as [T, 1, B, H]
    ystr = (H, B * T * H, T * H, 1)
    taken = stack.set_output_targets({"y": (torch.float32, yb.numel(), ystr, 0),
                                      "hn": (torch.float32, L * B * H, (B * H, H, 1), 0),
                                      "cn": (torch.float32, L * B * H, (B * H, H, 1), 0)})
    assert set(taken) == {"y", "hn", "cn"}
    assert stack.y.stride() == ystr and stack.hn.dtype == stack.cn.dtype == torch.float32
    assert stack.mid[0].dtype == stack.dt
    errs = _errors(torch, case, dtype, stack)
    assert max(errs.values()) <= TOL[dtype], errs


def test_planning_says_what_fits():
    """Small layers fit one SM; larger ones the smallest thread-block cluster that holds
    them (Hopper and later); the planner's builds stay within the register file and shared
    memory, and a layer too large for 8 SMs is refused with the reason."""
    limits = DeviceLimits()
    for cell, H, dtype, cluster in (("gru", 128, "float32", 1), ("lstm", 128, "float32", 1),
                                    ("lstm", 160, "float16", 1), ("rnn", 256, "float32", 1),
                                    ("gru", 64, "bfloat16", 1), ("gru", 256, "float32", 2),
                                    ("lstm", 256, "float32", 4), ("lstm", 512, "float16", 8)):
        cfg, why = row.row_config(_problem(cell, H, dtype), limits)
        assert cfg is not None, (cell, H, dtype, why)
        assert cfg.cluster == cluster, (cell, H, dtype, cfg)
        assert cfg.smem_bytes <= limits.smem_per_block and cfg.threads <= 1024 and cfg.kreg % 4 == 0
        assert cfg.threads * cfg.rpt >= cfg.gates * cfg.upc and cfg.upc * cluster >= H
    cfg, why = row.row_config(_problem("lstm", 1024, "float32"), limits)
    assert cfg is None and "do not fit a cluster of 8 SMs" in why
    cfg, why = row.row_config(_problem("lstm", 8192, "float16"), limits)
    assert cfg is None and "gate rows a CTA" in why
    ampere = DeviceLimits(compute_capability=(8, 0))
    cfg, why = row.row_config(_problem("gru", 256, "float32"), ampere)
    assert cfg is None and "compute capability 9.0" in why
    # many CTAs: more batch rows each, so one wave covers the batch
    cfg, _ = row.row_config(_problem("gru", 64, "float32", batch=256, directions=2), limits)
    assert cfg.bpc == 4
    cfg, _ = row.row_config(_problem("gru", 64, "float32", batch=64, directions=2), limits)
    assert cfg.bpc == 1


def _problem(cell, H, dtype, batch=1, directions=1):
    from tf2rt.backends.cuda.problem import RnnProblem

    return RnnProblem(cell=cell, hidden=H, input_size=64, batch=batch, seq_len=50, directions=directions,
                      dtype=dtype)


PLANNED = [("gru", 128, "float32", 1), ("gru", 128, "float32", 64), ("lstm", 128, "float32", 1),
           ("lstm", 64, "float32", 8), ("lstm", 160, "float16", 1), ("gru", 160, "float16", 64),
           ("rnn", 256, "float32", 1), ("gru", 100, "bfloat16", 300),
           # thread-block clusters: 2, 4 and 8 CTAs a layer
           ("gru", 256, "float32", 1), ("lstm", 256, "float32", 8), ("lstm", 512, "float16", 1),
           ("gru", 384, "bfloat16", 16)]


@pytest.mark.parametrize("cell,H,dtype,batch", PLANNED)
def test_planned_builds_compile_for_sm90_without_spills(cell, H, dtype, batch):
    from nvrtc import Nvrtc, find_nvrtc

    from tf2rt.backends.cuda.persistent import kernel_source

    path = find_nvrtc()
    if path is None:
        pytest.fail("NVRTC (the nvidia-cuda-nvrtc wheel, a test dependency) is not installed")
    cfg, why = row.row_config(_problem(cell, H, dtype, batch))
    assert cfg is not None, why
    options = ["--std=c++17", "-arch=sm_90"] + [f"-D{k}={v}" for k, v in sorted(cfg.defines().items())]
    regs, spills, report = Nvrtc(path).resources(kernel_source("row_rnn.cu"), options, "row_rnn")
    assert spills == 0, report
    assert regs * cfg.threads <= row.SM_REGISTERS, report


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("kw", CASES, ids=_ids)
def test_row_kernel_on_the_gpu_matches_onnxruntime(kw, dtype):
    torch = _gpu()
    case = _case(kw, seq_len=23)
    stack = _stack(case, dtype, dev="cuda")
    for batch_major in (False, True):
        errs = _errors(torch, case, dtype, stack, dev="cuda", batch_major=batch_major)
        assert max(errs.values()) <= TOL[dtype], errs


@pytest.mark.gpu
@pytest.mark.parametrize("cell,H,dtype,batch", PLANNED)
def test_planned_builds_on_the_gpu_match_onnxruntime(cell, H, dtype, batch):
    """The planner's own builds (registers and shared memory as planned) at real sizes."""
    torch = _gpu()
    kw = dict(cell=cell, hidden=H, batch=batch, layers=1, initial=True, seq_lens=batch > 1)
    case = RnnCase(seq_len=20, input_size=64, seed=H + batch, **kw)
    make_weights(case)
    errs = _errors(torch, case, dtype, _stack(case, dtype, dev="cuda"), dev="cuda")
    assert max(errs.values()) <= TOL[dtype], errs


@pytest.mark.parametrize("op,layers,bidirectional,seq,states", CONFORMANCE)
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_engines_on_the_row_kernel_learn_output_targets_and_copy_nothing(host, monkeypatch, op, layers,
                                                                         bidirectional, seq, states, precision):
    """The conformance suite's recurrent engines (every cell; 1 layer, 2 bidirectional, 3;
    with and without lengths and initial states; batch-major x, outputs y, h_n, c_n; fp32,
    and fp32 engines with the stack in fp16) through the executor with their stacks on the
    host build of the row kernel: from the second call on the kernel writes every output
    where and in the type the engine wants it (no copy around the stack), values as the
    reference backend."""
    from helpers.rnn_networks import build_rnn, rnn_feeds

    from tf2rt.backends.cuda import graph
    from tf2rt.backends.cuda.graph import GraphExecutor
    from tf2rt.backends.cuda.plan import Plan

    torch = host

    def make_stack(specs, batch, seq_len, dtype, limits, **kw):
        problem = problem_for(specs, batch, seq_len, dtype)
        cfg, why = row.row_config(problem, limits)
        assert cfg is not None, why
        return row.RowStack(problem, cfg, [s.weights for s in specs], device="cpu"), Plan("row", "host", row=cfg)

    monkeypatch.setattr(graph, "make_stack", make_stack)
    H, E, N, S = 10, 6, 3, 9
    engine, _ = build_rnn(op, layers, bidirectional, H, E, N, S, 4, seq=seq, states=states)
    feeds = rnn_feeds(op, layers, bidirectional, H, E, N, S, 4, seq, states)
    ex = GraphExecutor(engine.onnx, DeviceLimits(), device="cpu",
                       rnn_dtype="float16" if precision == "fp16" else None)
    want = engine.run(feeds, backend="reference")
    first = ex({k: torch.as_tensor(v) for k, v in feeds.items()})
    second = ex({k: torch.as_tensor(v) for k, v in feeds.items()})
    assert ex.copies == [] and set(ex.chains[0].taken) == set(ex.chains[0].targets), ex.copies
    assert ex.chains[0].stack.dt == (torch.float16 if precision == "fp16" else torch.float32)
    for out in (first, second):
        for k in want:
            # fp32 sums in another order: relative to values that reach ~300 (3 relu layers);
            # fp16: rounding of the largest values (relu layers) carried into the next layer
            big = float(np.abs(want[k]).max())
            atol, rtol = (2e-5, 1e-5) if precision == "fp32" else (3e-2 + 2e-3 * big, 1e-2)
            np.testing.assert_allclose(np.asarray(out[k], np.float32), want[k], atol=atol, rtol=rtol, err_msg=k)


def test_the_planner_gives_the_row_kernel_where_asked_and_says_why_not():
    from tf2rt.backends.cuda.plan import make_plan

    small = _problem("gru", 128, "float32", batch=64)
    plan = make_plan(small, DeviceLimits(), prefer="row")
    assert plan.engine == "row" and plan.row == row.row_config(small)[0]
    assert plan.describe()["mode"] == "row" and plan.describe()["register_columns"] == plan.row.kreg
    assert make_plan(small, DeviceLimits()).engine != "row"  # not by default: only where asked or measured
    big = _problem("lstm", 1024, "float16")
    plan = make_plan(big, DeviceLimits(), prefer="row")
    assert plan.engine != "row" and plan.reason.startswith("row kernel: ") and "do not fit" in plan.reason
    assert make_plan(small, DeviceLimits(compute_capability=(6, 1)), prefer="row").engine != "row"


def test_the_keras_gru_classifier_on_the_row_kernel(host, monkeypatch):
    """The benchmark's Keras GRU(128) classifier (converted from a .keras file; x [B, 50, 64]
    -> GRU -> Dense -> softmax) through the executor with its GRU on the host build of the
    row kernel at the planner's own build: the reference backend's classes."""
    from pathlib import Path

    from tf2rt.backends.cuda import graph
    from tf2rt.backends.cuda.graph import GraphExecutor
    from tf2rt.backends.cuda.plan import Plan
    from tf2rt.engine import load_engine

    torch = host
    built = []

    def make_stack(specs, batch, seq_len, dtype, limits, **kw):
        problem = problem_for(specs, batch, seq_len, dtype)
        cfg, why = row.row_config(problem, limits)
        assert cfg is not None, why
        built.append(cfg)
        return row.RowStack(problem, cfg, [s.weights for s in specs], device="cpu"), Plan("row", "host", row=cfg)

    monkeypatch.setattr(graph, "make_stack", make_stack)
    engine = load_engine(Path(__file__).resolve().parents[2] / "benchmarks" / "assets" / "keras_gru_classifier.onnx")
    x = np.random.default_rng(0).standard_normal((2, 50, 64)).astype(np.float32)
    want = engine.run({"input_layer": x}, backend="reference")["classes"]
    ex = GraphExecutor(engine.onnx, DeviceLimits(), device="cpu")
    for _ in range(2):
        got = ex({"input_layer": torch.from_numpy(x)})["classes"]
        np.testing.assert_allclose(np.asarray(got), want, atol=1e-5, rtol=0)
    assert built and built[0].hidden == 128 and built[0].kreg > 0 and ex.copies == []


@pytest.mark.gpu
@pytest.mark.parametrize("op,layers,bidirectional,seq,states", CONFORMANCE)
def test_conformance_engines_on_the_row_kernel_match_torch(op, layers, bidirectional, seq, states):
    """The conformance suite's engines on the GPU with runner prefer="row": torch.nn's
    outputs within 1e-5, zeros past each length, and the stack really on the row kernel."""
    import zlib

    from helpers.rnn_networks import build_rnn, rnn_feeds, torch_rnn

    torch = _gpu()
    H, E, N, S = 6, 4, 3, 5
    seed = zlib.crc32(repr((op, layers, bidirectional, seq, states)).encode()) % 1000
    engine, w = build_rnn(op, layers, bidirectional, H, E, N, S, seed, seq=seq, states=states)
    feeds = rnn_feeds(op, layers, bidirectional, H, E, N, S, seed, seq, states)
    want = torch_rnn(torch, op, layers, bidirectional, H, E, w, feeds)
    runner = engine.runner("cuda", prefer="row")
    got = runner.run(feeds)
    assert [d.get("engine") for d in runner.describe()["recurrent"]] == ["row"]
    for k in want:
        np.testing.assert_allclose(got[k], want[k], atol=1e-5, rtol=0, err_msg=k)
    if seq:
        for b, n in enumerate(feeds["lens"]):
            assert not got["y"][b, n:].any()

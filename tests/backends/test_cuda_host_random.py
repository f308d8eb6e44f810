"""Random recurrent stacks on the host builds of the persistent kernel and of the row kernel
(tests/helpers/cuda_host.h), against onnxruntime: sizes that are no multiple of anything
(K padding, partial tiles and copy groups, units a cluster rank does not have), every cell
form, lengths, states, directions, dtypes, and the build switches and work splits a user or
the planner can pick. Seeded: the same draws every run."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from cuda_models import RnnCase, make_inputs, make_weights, node_specs, stack_errors
from helpers.cuda_host import persistent_host_kernel, row_host_kernel, use_host_kernels

from tf2rt.backends.cuda import persistent, row
from tf2rt.backends.cuda.options import CudaOptions
from tf2rt.backends.cuda.plan import DeviceLimits, make_plan
from tf2rt.backends.cuda.rnn import problem_for

TOL = {"float32": 1e-4, "float16": 2e-2, "bfloat16": 3e-2}


def _draw(rng: random.Random, hiddens, batches) -> tuple[RnnCase, str]:
    cell = rng.choice(["lstm", "gru", "rnn"])
    kw = dict(cell=cell, hidden=rng.choice(hiddens), batch=rng.choice(batches), layers=rng.choice([1, 2, 3]),
              seq_len=rng.choice([1, 2, 3, 5]), input_size=rng.choice([5, 16, 24]),
              seq_lens=rng.random() < 0.5, initial=rng.random() < 0.5)
    d = rng.random()
    kw.update(bidirectional=d < 0.3, reverse=0.3 <= d < 0.45)
    if cell == "gru":
        kw["lbr"] = rng.choice([0, 1])
    if cell == "rnn":
        kw["activation"] = rng.choice(["Tanh", "Relu"])
    if cell == "lstm":
        kw["peepholes"] = rng.random() < 0.3
    if rng.random() < 0.2:
        kw["clip"] = 1.5
    case = RnnCase(seed=rng.randrange(1000), **kw)
    make_weights(case)
    return case, rng.choice(["float32", "float16", "bfloat16"])


@pytest.fixture
def host(monkeypatch):
    return use_host_kernels(monkeypatch, (persistent, "compile_kernel", persistent_host_kernel),
                            (row, "_compile", row_host_kernel))


OPTIONS = [{}, {}, {"wreg": False}, {"step": "2"}, {"step": "1"}, {"wpart": "1"}, {"tf32x3": "1"}, {"bf16x3": "0"}]


@pytest.mark.parametrize("seed", range(8))
def test_random_stacks_on_the_persistent_kernel(host, seed):
    rng = random.Random(1000 + seed)
    case, dtype = _draw(rng, [8, 20, 33, 48, 72, 100], [1, 3, 4, 5, 9, 16, 17, 24, 33])
    options = CudaOptions(**rng.choice(OPTIONS))
    problem = problem_for(node_specs(case), case.batch, case.seq_len, dtype)
    plan = make_plan(problem, DeviceLimits(sm_count=rng.choice([4, 6, 8])), prefer="persistent", options=options)
    assert plan.engine == "persistent", plan.reason
    stack = persistent.PersistentStack(problem, plan, [s.weights for s in node_specs(case)], device="cpu",
                                       options=options)
    for _ in range(2):
        errs = stack_errors(host, case, dtype, make_inputs(case), stack, dev="cpu")
        assert max(errs.values()) <= TOL[dtype], (case, dtype, options, plan.describe(), errs)


@pytest.mark.parametrize("seed", range(8))
def test_random_stacks_on_the_row_kernel(host, seed):
    rng = random.Random(2000 + seed)
    case, dtype = _draw(rng, [5, 20, 33, 48, 71], [1, 2, 3, 5, 9])
    problem = problem_for(node_specs(case), case.batch, case.seq_len, dtype)
    cfg, why = row.row_config(problem)
    assert cfg is not None, why
    changes = {}
    if rng.random() < 0.5:
        changes["kreg"] = rng.choice(range(0, cfg.kp + 1, 4))
    if rng.random() < 0.4:
        changes["bpc"] = rng.choice([1, 2, 4])
    if rng.random() < 0.5:
        changes["cluster"] = rng.choice([2, 3, 4, 8])
    cfg = replace(cfg, **changes)
    stack = row.RowStack(problem, cfg, [s.weights for s in node_specs(case)], device="cpu")
    for batch_major in (False, True):
        errs = stack_errors(host, case, dtype, make_inputs(case), stack, dev="cpu", batch_major=batch_major)
        assert max(errs.values()) <= TOL[dtype], (case, dtype, cfg, errs)

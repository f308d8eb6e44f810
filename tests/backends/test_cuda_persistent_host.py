"""The persistent kernel (kernels/persistent_rnn.cu) on the CPU: its own source built by the
host C++ compiler against the emulation of CUDA (tests/helpers/cuda_host.h: a whole grid of
fibers that meet at barriers and poll each other's tagged words and flags; tensor-core
mma.sync computed from the warp's fragments as the PTX ISA lays them out), driven by the
real PersistentStack on a CPU torch device and checked against onnxruntime.

Each case names the build it covers (step form, product form, where the fragments live,
schedule) and asserts that the planner gave that build, on a small device (few SMs, and
for the split-fragment and ring builds less shared memory) so that small layers take
the forms large ones take on an H100. Timing, memory ordering on a real GPU and the
streaming (RESIDENT) build need the GPU tests (test_cuda_persistent.py)."""

from __future__ import annotations

import numpy as np
import pytest

from cuda_models import RnnCase, make_inputs, make_weights, node_specs, stack_errors, stack_inputs
from helpers.cuda_host import persistent_host_kernel, use_host_kernels
from test_conformance import CASES as CONFORMANCE

from tf2rt.backends.cuda import persistent
from tf2rt.backends.cuda.options import CudaOptions
from tf2rt.backends.cuda.plan import DeviceLimits, make_plan
from tf2rt.backends.cuda.rnn import problem_for

TOL = {"float32": 1e-4, "float16": 2e-2, "bfloat16": 3e-2}

# (case, dtype, device: sm_count and shared memory in KB, options, the build it must get)
CASES = [
    ("original step, GRU reset-before, wavefront",
     dict(cell="gru", hidden=48, batch=3, layers=2, lbr=0, seq_lens=True, initial=True), "float32", (8, 227), {},
     dict(step="original", mode="wavefront")),
    ("fp32 CUDA cores, wavefront with the split input product",
     dict(cell="lstm", hidden=64, batch=1, layers=2), "float32", (8, 227), {},
     dict(step="two-barrier", products="fp32 CUDA cores", mode="wavefront", split_x=True)),
    ("three bf16 passes, split fragments, bidirectional",
     dict(cell="lstm", hidden=64, batch=8, layers=2, bidirectional=True, seq_lens=True, initial=True), "float32",
     (8, 227), {}, dict(step="two-barrier", products="fp32 as three bf16 tensor-core passes", wpart=True)),
    ("three TF32 passes",
     dict(cell="gru", hidden=256, batch=4, layers=1, initial=True), "float32", (16, 227), {},
     dict(step="two-barrier", products="fp32 as three TF32 tensor-core passes")),
    ("fp16 fragments in registers, peepholes and clip",
     dict(cell="lstm", hidden=64, batch=2, layers=2, peepholes=True, clip=1.5, initial=True), "float16", (8, 227),
     {}, dict(step="two-barrier", products="fp16 tensor cores", weights="registers", mode="wavefront")),
    ("fp16 fragments in shared memory",
     dict(cell="gru", hidden=64, batch=4, layers=2), "float16", (8, 227), dict(wreg=False),
     dict(step="two-barrier", weights="shared memory")),
    ("fp16, two h per exchange word, reverse with lengths",
     dict(cell="lstm", hidden=256, batch=8, layers=1, reverse=True, seq_lens=True, initial=True), "float16",
     (16, 227), {}, dict(step="two-barrier", products="fp16 tensor cores")),
    ("bf16, first layer's input products in the kernel (short sequence)",
     dict(cell="lstm", hidden=64, batch=1, layers=3, seq_len=3), "bfloat16", (8, 227), {},
     dict(products="bf16 tensor cores", fuse_input=True)),
    ("large batch fp16, five n-tiles (a partial copy group)",
     dict(cell="gru", hidden=64, batch=40, layers=2, seq_lens=True, initial=True), "float16", (8, 227), {},
     dict(step="large-batch", products="fp16 tensor cores", mode="wavefront", row_copies="16-byte cp.async")),
    ("large batch wavefront, the layer below's rows multicast too (TF2RT_CUDA_BULK=2)",
     dict(cell="gru", hidden=64, batch=40, layers=2, seq_lens=True, initial=True), "float16", (8, 227),
     dict(bulk="2"), dict(step="large-batch", mode="wavefront", row_copies="bulk, multicast across clusters of 2 CTAs")),
    ("large batch, three bf16 passes, wavefront",
     dict(cell="lstm", hidden=64, batch=24, layers=2, initial=True), "float32", (8, 227), {},
     dict(step="large-batch", products="fp32 as three bf16 tensor-core passes", mode="wavefront")),
    ("large batch, split fragments",
     dict(cell="lstm", hidden=256, batch=32, layers=1, seq_len=3, seq_lens=True), "float32", (8, 150), {},
     dict(step="large-batch", wpart=True, ring_slots=0)),
    ("large batch, split fragments and a ring of staged rows",
     dict(cell="lstm", hidden=256, batch=64, layers=1, seq_len=2, seq_lens=True, initial=True), "float32",
     (8, 120), {}, dict(step="large-batch", wpart=True, ring=True)),
    ("large batch fp16, bidirectional: rows multicast across clusters of two within each direction",
     dict(cell="lstm", hidden=64, batch=16, layers=1, bidirectional=True, seq_lens=True, initial=True), "float16",
     (8, 227), {}, dict(step="large-batch", mode="layerwise", row_copies="bulk, multicast across clusters of 2 CTAs")),
    ("large batch GRU, multicast rows, five n-tiles (a partial copy group)",
     dict(cell="gru", hidden=64, batch=40, layers=1, initial=True), "float16", (8, 227), {},
     dict(step="large-batch", row_copies="bulk, multicast across clusters of 2 CTAs")),
    ("large batch, three bf16 passes, rows by bulk copies without clusters (TF2RT_CUDA_BULK=1)",
     dict(cell="gru", hidden=64, batch=24, layers=1, seq_lens=True), "float32", (8, 227), dict(bulk="1"),
     dict(step="large-batch", products="fp32 as three bf16 tensor-core passes", row_copies="bulk")),
    ("large batch, one launch a layer, 16-byte copies (TF2RT_CUDA_BULK=0)",
     dict(cell="lstm", hidden=64, batch=16, layers=1), "float16", (8, 227), dict(bulk="0"),
     dict(step="large-batch", row_copies="16-byte cp.async")),
    ("tanh/relu RNN, bidirectional with lengths",
     dict(cell="rnn", hidden=64, batch=8, layers=2, activation="Relu", bidirectional=True, seq_lens=True),
     "float32", (8, 227), {}, dict(mode="layerwise")),
    ("original step forced (TF2RT_CUDA_STEP=1), fp16",
     dict(cell="lstm", hidden=64, batch=4, layers=2, initial=True), "float16", (8, 227), dict(step="1"),
     dict(step="original")),
]


def _ids(case):
    return case[0].replace(" ", "-").replace(",", "").replace("(", "").replace(")", "")


@pytest.fixture
def host(monkeypatch):
    """PersistentStack's kernel built for the host (every block at once: they wait for
    each other)."""
    return use_host_kernels(monkeypatch, (persistent, "compile_kernel", persistent_host_kernel))


def _build(kw, dtype, device, options):
    kw = {"seq_len": 5, "input_size": 24, **kw}
    case = RnnCase(seed=len(str(kw)), **kw)
    make_weights(case)
    problem = problem_for(node_specs(case), case.batch, case.seq_len, dtype)
    sm, smem_kb = device
    plan = make_plan(problem, DeviceLimits(sm_count=sm, smem_per_block=smem_kb * 1024), prefer="persistent",
                     options=CudaOptions(**options))
    assert plan.engine == "persistent", plan.reason
    stack = persistent.PersistentStack(problem, plan, [s.weights for s in node_specs(case)], device="cpu",
                                       options=CudaOptions(**options))
    return case, plan, stack


def _check_build(plan, want):
    d, k = plan.describe(), plan.kernel
    got = {key: d.get(key) for key in ("step", "products", "weights", "mode", "row_copies") if key in want}
    got.update({key: getattr(k, key) for key in ("split_x", "fuse_input", "ring_slots") if key in want})
    if "wpart" in want:
        got["wpart"] = k.wpart > 0
    if "ring" in want:
        got["ring"] = k.ring_slots > 0
    assert got == want, plan.describe()


@pytest.mark.parametrize("name,kw,dtype,device,options,want", CASES, ids=[_ids(c) for c in CASES])
def test_persistent_kernel_on_the_host_matches_onnxruntime(host, name, kw, dtype, device, options, want):
    case, plan, stack = _build(kw, dtype, device, options)
    _check_build(plan, want)
    for i in range(2):  # one stack, a second launch: its exchange buffers carry the new epoch
        feeds = make_inputs(case)
        feeds = {k: (v * (1.0 + 0.4 * i)).astype(v.dtype) if v.dtype == np.float32 else v for k, v in feeds.items()}
        errs = stack_errors(host, case, dtype, feeds, stack, dev="cpu")
        assert max(errs.values()) <= TOL[dtype], (i, errs)


@pytest.mark.parametrize("kw,dtype", [
    (dict(cell="lstm", hidden=64, batch=16, layers=1, seq_lens=True, initial=True), "float16"),
    (dict(cell="gru", hidden=64, batch=24, layers=2, initial=True), "bfloat16"),  # wavefront: input products too
    (dict(cell="lstm", hidden=64, batch=16, layers=1, seq_lens=True), "float32"),  # three bf16 passes
], ids=["lstm-fp16", "gru-bf16-wavefront", "lstm-fp32-bf16x3"])
def test_large_batch_warps_sharing_staged_values_across_row_tiles(host, kw, dtype):
    """MT_SHARE: each warp multiplies every row tile over its own K slice (fragments of two
    tiles in its registers, twice the partial sums): the same outputs as onnxruntime."""
    from dataclasses import replace

    case, plan, stack = _build(kw, dtype, (8, 227), {})
    k = replace(plan.kernel, mt_share=True)
    assert k.large_batch and k.wreg and k.rows_padded // 16 >= 2 and k.ksplit == k.threads // 32
    shared = persistent.PersistentStack(stack.problem, replace(plan, kernel=k), [s.weights for s in node_specs(case)],
                                        device="cpu")
    errs = stack_errors(host, case, dtype, make_inputs(case), shared, dev="cpu")
    assert max(errs.values()) <= TOL[dtype], errs


def test_a_shorter_call_and_outputs_written_in_another_type_and_layout(host):
    """A call shorter than planned runs its own length (the rest of the exchange buffer is
    stamped), and an fp16 stack writes y batch-major and h_n/c_n as float32 itself (the
    kernel's YTYPE/OTYPE build)."""
    torch = host
    case, plan, stack = _build(dict(cell="lstm", hidden=64, batch=3, layers=2, initial=True, seq_len=6), "float16",
                               (8, 227), {})
    T, B, H, L = case.seq_len, case.batch, case.hidden, case.layers
    taken = stack.set_output_targets({"y": (torch.float32, B * T * H, (H, B * T * H, T * H, 1), 0),
                                      "hn": (torch.float32, L * B * H, (B * H, H, 1), 0),
                                      "cn": (torch.float32, L * B * H, (B * H, H, 1), 0)})
    assert set(taken) == {"y", "hn", "cn"} and stack.y[-1].dtype == torch.float32
    errs = stack_errors(torch, case, "float16", make_inputs(case), stack, dev="cpu")
    assert max(errs.values()) <= TOL["float16"], errs
    short = RnnCase(**{**case.__dict__, "seq_len": 3})
    errs = stack_errors(torch, short, "float16", make_inputs(short), stack, dev="cpu")
    assert max(errs.values()) <= TOL["float16"], errs



@pytest.mark.parametrize("op,layers,bidirectional,seq,states", CONFORMANCE)
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_conformance_engines_on_the_host_kernel(host, monkeypatch, op, layers, bidirectional, seq, states,
                                                precision):
    """The conformance suite's recurrent engines (fp32, and fp16 engines with the stack in
    fp16) through the executor with their stacks on the host build of the persistent
    kernel: the reference backend's outputs, and from the second call no copy around the
    stack (the kernel writes each output where and in the type the engine wants it)."""
    from helpers.rnn_networks import build_rnn, rnn_feeds

    from tf2rt.backends.cuda import graph
    from tf2rt.backends.cuda.graph import GraphExecutor

    torch = host
    limits = DeviceLimits(sm_count=6)

    def make_stack(specs, batch, seq_len, dtype, limits_, **kw):
        problem = problem_for(specs, batch, seq_len, dtype)
        plan = make_plan(problem, limits, prefer="persistent")
        assert plan.engine == "persistent", plan.reason
        return persistent.PersistentStack(problem, plan, [s.weights for s in specs], device="cpu"), plan

    monkeypatch.setattr(graph, "make_stack", make_stack)
    H, E, N, S = 10, 6, 3, 7
    engine, _ = build_rnn(op, layers, bidirectional, H, E, N, S, 5, seq=seq, states=states, precision=precision)
    feeds = rnn_feeds(op, layers, bidirectional, H, E, N, S, 5, seq, states)
    rnn_dtype = "float16" if precision == "fp16" else None
    ex = GraphExecutor(engine.onnx, limits, device="cpu", rnn_dtype=rnn_dtype)
    want = engine.run(feeds, backend="reference")
    outs = [ex({k: torch.as_tensor(v) for k, v in feeds.items()}) for _ in range(2)]
    assert ex.copies == [] and set(ex.chains[0].taken) == set(ex.chains[0].targets), ex.copies
    atol, rtol = (2e-5, 1e-5) if precision == "fp32" else (3e-2, 1e-2)
    for out in outs:
        for k in want:
            np.testing.assert_allclose(np.asarray(out[k], np.float32), want[k], atol=atol, rtol=rtol, err_msg=k)


@pytest.mark.parametrize("kw", [dict(cell="gru", hidden=64, batch=4, layers=1, seq_lens=True, initial=True),
                                dict(cell="lstm", hidden=48, batch=6, layers=2, initial=True)],
                         ids=["layerwise", "wavefront"])
def test_two_fp32_h_per_exchange_word(host, monkeypatch, kw):
    """PACKF (TF32X3 builds gathering many values a step: two fp32 h a word, the tag in the
    lowest bit, the parity of the launch's epoch) forced on a small layer: three launches
    of one stack, so the parity flips and comes back, each against onnxruntime."""
    from tf2rt.backends.cuda import builds

    monkeypatch.setattr(builds, "PACKF_MIN_VALUES", 64)
    case, plan, stack = _build(kw, "float32", (8, 227), dict(tf32x3="1"))
    assert plan.kernel.packf and plan.kernel.tf32, plan.describe()
    for i in range(3):
        feeds = make_inputs(case)
        feeds = {k: (v * (1.0 - 0.3 * i)).astype(v.dtype) if v.dtype == np.float32 else v for k, v in feeds.items()}
        errs = stack_errors(host, case, "float32", feeds, stack, dev="cpu")
        assert max(errs.values()) <= TOL["float32"], (i, errs)


@pytest.mark.parametrize("kw,dependent", [
    (dict(cell="lstm", hidden=64, batch=2, layers=2, initial=True), [True]),  # wavefront after its GEMM
    (dict(cell="gru", hidden=64, batch=2, layers=1, bidirectional=True, initial=True), [True]),
    (dict(cell="lstm", hidden=64, batch=1, layers=3, seq_len=3), [False]),  # in-kernel input products: no GEMM
])
def test_dependent_launches_only_behind_a_projection_gemm(host, monkeypatch, kw, dependent):
    """With dependent launches on (options.pdl True, Hopper), a launch is a programmatic
    dependent only where the input-projection GEMM is the kernel just ahead of it (what the
    kernel overlaps is that GEMM's end; a stack projecting x itself has none). The outputs
    are those of ordinary launches."""
    case, plan, stack = _build(kw, "float16", (8, 227), {})
    seen = []
    ordinary = stack.launch
    monkeypatch.setattr(stack, "launch", lambda *a, dependent=False: (seen.append(dependent), ordinary(*a))[1])
    stack.pdl = True
    errs = stack_errors(host, case, "float16", make_inputs(case), stack, dev="cpu")
    assert max(errs.values()) <= TOL["float16"], errs
    assert seen == dependent, (seen, plan.describe())


def test_a_dependent_launch_the_driver_refuses_falls_back_to_an_ordinary_one(host, monkeypatch):
    """cuLaunchKernelEx refusing the dependent cooperative launch (outside a graph capture):
    the stack launches the ordinary way, then and from then on."""
    from tf2rt.backends.cuda import launch as launch_mod
    from tf2rt.errors import Tf2rtError

    case, plan, stack = _build(dict(cell="gru", hidden=64, batch=2, layers=2), "float16", (8, 227), {})
    tried, ran = [], []

    def refuse(kernel, grid, block, args, **kw):
        tried.append(kw)
        raise Tf2rtError("cuLaunchKernelEx failed")

    class Stream:
        ptr = 7

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(launch_mod, "launch_dependent", refuse)
    monkeypatch.setattr(host.cuda, "is_current_stream_capturing", lambda: False)
    stack.pdl = True
    table = stack._desc[(False, False, False)][0]
    kernel = lambda grid, block, args, shared_mem=0: ran.append((grid, block, shared_mem))  # noqa: E731
    stack.launch(table, 5, 0, Stream(), kernel=kernel, dependent=True)
    assert tried == [dict(stream=7, shared_mem=plan.kernel.smem_bytes, cooperative=True)]
    assert ran == [((table.shape[0] * plan.kernel.ctas_per_group,), (plan.kernel.threads,), plan.kernel.smem_bytes)]
    assert stack.pdl is False


@pytest.mark.parametrize("kw,dtype,device,want", [
    (dict(cell="lstm", hidden=64, batch=1, layers=2, seq_len=7, initial=True), "float16", (8, 227),
     dict(step="two-barrier", mode="wavefront")),
    (dict(cell="gru", hidden=64, batch=2, layers=2, bidirectional=True, seq_lens=True), "bfloat16", (8, 227),
     dict(mode="layerwise")),
    (dict(cell="lstm", hidden=64, batch=16, layers=1, seq_lens=True, initial=True), "float16", (8, 227),
     dict(step="large-batch")),
], ids=["wavefront-fp16", "layerwise-bidirectional-bf16", "large-batch-fp16"])
def test_first_layer_projection_as_one_tf32_gemm_from_fp32_x(host, kw, dtype, device, want):
    """TF2RT_CUDA_XPROJ=tf32: an fp16/bf16 stack's first-layer projection is one TF32 GEMM
    that reads fp32 x as given (no cast ahead of it) and writes fp32 projections, which the
    kernel reads as such (PTYPE=0); deeper layers keep their own GEMMs. Given fp32 x and given
    x in the stack's type, it matches onnxruntime, and stays within twice that tolerance of the
    default build."""
    torch = host
    case, plan, stack = _build(kw, dtype, device, dict(xproj="tf32"))
    _check_build(plan, want)
    _, _, plain = _build(kw, dtype, device, {})
    assert stack.proj[0].mode == "tf32" and stack.xp[0].dtype == torch.float32
    assert all(pj is None or pj.mode == "plain" for pj in stack.proj[1:]) and plain.proj[0].mode == "plain"
    feeds = make_inputs(case)
    for x_dtype in ("float32", dtype):
        errs = stack_errors(torch, case, dtype, feeds, stack, dev="cpu", x_dtype=x_dtype)
        assert max(errs.values()) <= TOL[dtype], (x_dtype, errs)
    a = stack(*stack_inputs(torch, case, dtype, feeds, "cpu", x_dtype="float32"))
    b = plain(*stack_inputs(torch, case, dtype, feeds, "cpu"))
    for u, v in zip(a, b):
        if u is not None:
            assert float((u.float() - v.float()).abs().max()) <= 2 * TOL[dtype]  # each within TOL of ORT

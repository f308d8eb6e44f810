"""The cuda backend's single-step kernels (kernels/single_step.cu) run on the CPU: the same
source built by the host C++ compiler against an emulation of the CUDA built-ins
(tests/helpers/cuda_host.h), driven by the real SingleStepStack on a CPU torch device, and
checked against onnxruntime like the GPU tests. This covers what NVRTC's compile tests
cannot: the kernels' arithmetic and indexing (the one-launch layer's early weight loads and
column runs, the embedding lookup, the state ping-pong, output layouts and types), without
a GPU. Timing and inline PTX (dependent launches) need the GPU tests."""

from __future__ import annotations

import numpy as np
import pytest

from cuda_models import make_inputs, node_specs, stack_inputs
from helpers.cuda_host import host_kernels, use_host_kernels
from test_cuda_single_step import CASES, SMALL, TOL, _case, _ids, _stack_errors

from tf2rt.backends.cuda import single_step
from tf2rt.backends.cuda.rnn import problem_for

torch = pytest.importorskip("torch")


@pytest.fixture
def host(monkeypatch):
    """SingleStepStack's kernels built for the host."""

    def build(defines):
        k = host_kernels("single_step.cu", dict(defines))
        # every layer in one launch: its blocks wait for each other, so they run at once, the
        # last one far behind the others
        layers = host_kernels("single_step.cu", dict(defines, EMU_SLOW_LAST=1), concurrent=True)[
            "step_gemv_layers"] if dict(defines).get("GEMV") else None
        return single_step.StepKernels(k["stage_operands"], k["step_gates"], k.get("step_gemv"), layers)

    use_host_kernels(monkeypatch, (single_step, "_compile", build))


def _stack(case, dtype, options=None):
    problem = problem_for(node_specs(case), case.batch, 1, dtype)
    return single_step.SingleStepStack(problem, [s.weights for s in node_specs(case)], device="cpu",
                                       options=options)


# the one-launch form's cases, and the GEMM form's (batch 8 and 64: split bf16 parts in fp32)
HOST_CASES = SMALL + CASES


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("kw", HOST_CASES, ids=_ids)
def test_single_step_kernels_match_onnxruntime(host, kw, dtype):
    case = _case(kw)
    stack = _stack(case, dtype)
    assert stack.gemv == (case.batch <= single_step.GEMV_MAX_BATCH)
    for i in range(2):  # the same stack, new inputs
        feeds = make_inputs(case)
        feeds = {k: (v * (1.0 + 0.3 * i)).astype(v.dtype) if v.dtype == np.float32 else v for k, v in feeds.items()}
        errs = _stack_errors(torch, case, dtype, feeds, stack, dev="cpu")
        assert max(errs.values()) <= TOL[dtype], (i, errs)


def test_the_gemm_form_of_small_batches_matches_the_one_launch_form(host):
    """TF2RT_CUDA_GEMV=0 (the GEMM form) and the one-launch form: the same step."""
    from tf2rt.backends.cuda.options import CudaOptions

    case = _case(dict(cell="lstm", hidden=40, batch=4, layers=2, peepholes=True, clip=1.5, initial=True,
                      bidirectional=True))
    feeds = make_inputs(case)
    a = _stack_errors(torch, case, "float32", feeds, _stack(case, "float32"), dev="cpu")
    b = _stack_errors(torch, case, "float32", feeds, _stack(case, "float32", CudaOptions(gemv=False)), dev="cpu")
    assert max(a.values()) <= 1e-6 and max(b.values()) <= 1e-6, (a, b)


# every SMALL case has two or three layers: all of them run in one launch with gemv_fuse
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("kw", SMALL, ids=_ids)
def test_all_layers_in_one_launch_match_onnxruntime_and_the_launch_a_layer_form(host, kw, dtype):
    """step_gemv_layers (every block at once, as on a GPU): the layers meet at the grid-wide
    count, each block reading its next layer's h0 columns before it waits. Outputs as
    onnxruntime's and within float rounding of a launch a layer (the deeper layers sum their
    h0 columns first); over three calls the count grows by (layers - 1) x blocks a call, so
    no call's boundary is met early by a count the one before left."""
    from tf2rt.backends.cuda.options import CudaOptions

    case = _case(kw)
    fused = _stack(case, dtype, CudaOptions(gemv_fuse=True))
    plain = _stack(case, dtype, CudaOptions(gemv_fuse=False))
    assert fused.fused and not plain.fused and "all layers in one launch" in fused.products
    blocks, _ = single_step.gemv_blocks(fused.problem)
    for i in range(3):
        feeds = make_inputs(case)
        feeds = {k: (v * (1.0 + 0.3 * i)).astype(v.dtype) if v.dtype == np.float32 else v for k, v in feeds.items()}
        errs = _stack_errors(torch, case, dtype, feeds, fused, dev="cpu")
        assert max(errs.values()) <= TOL[dtype], (i, errs)
        a = [t.float().clone() for t in fused(*stack_inputs(torch, case, dtype, feeds, "cpu")) if t is not None]
        b = [t.float().clone() for t in plain(*stack_inputs(torch, case, dtype, feeds, "cpu")) if t is not None]
        for u, v in zip(a, b):
            np.testing.assert_allclose(u.numpy(), v.numpy(), atol=1e-5 if dtype == "float32" else 2e-3, rtol=0)
        assert int(fused.count.item()) == 2 * (i + 1) * (case.layers - 1) * blocks  # two calls a round


# calls from a zero state (no h0/c0): an input length that is no multiple of 4 (the input's last
# column run holds h0 columns), bidirectional layers, GRU's recurrent-only block, the GEMM form
ZERO_STATE = [
    dict(cell="lstm", hidden=40, batch=2, layers=2, bidirectional=True, peepholes=True, clip=1.5),
    dict(cell="gru", hidden=50, batch=3, layers=2, bidirectional=True, seq_lens=True),
    dict(cell="rnn", hidden=33, batch=1, layers=3, activation="Relu"),
    dict(cell="gru", hidden=36, batch=8, layers=2),
    dict(cell="lstm", hidden=24, batch=64, layers=2, bidirectional=True),
]


@pytest.mark.parametrize("fuse", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("kw", ZERO_STATE, ids=_ids)
def test_a_call_from_a_zero_state_leaves_the_recurrent_weights_out_and_matches(host, kw, dtype, fuse):
    """Without h0 the products skip the h0 columns (the one-launch layers' column runs, the
    GEMM's K): the outputs match onnxruntime, and a call given explicit zero states (which
    reads every column) gives the same values."""
    from cuda_models import RnnCase, make_weights

    from tf2rt.backends.cuda.options import CudaOptions

    case = RnnCase(seq_len=1, input_size=21, seed=len(_ids(kw)), **kw)
    make_weights(case)
    if fuse and case.batch > single_step.GEMV_MAX_BATCH:
        pytest.skip("every layer in one launch: the one-launch form's batches only")
    stack = _stack(case, dtype, CudaOptions(gemv_fuse=fuse))
    assert stack.fused == fuse
    feeds = make_inputs(case)
    errs = _stack_errors(torch, case, dtype, feeds, stack, dev="cpu")
    assert max(errs.values()) <= TOL[dtype], errs
    x, _, _, sl = stack_inputs(torch, case, dtype, feeds, "cpu")
    got = [t.float().clone() for t in stack(x, None, None, sl) if t is not None]
    zeros = torch.zeros(case.layers * case.dirs, case.batch, case.hidden, dtype=getattr(torch, dtype))
    full = [t.float().clone() for t in stack(x, zeros, zeros if case.cell == "lstm" else None, sl) if t is not None]
    for a, b in zip(got, full):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6 if dtype == "float32" else 1e-3, rtol=0)
    # the recurrent weights (every column from the input's end, rounded up to 8) made NaN: a
    # call from a zero state never reads them
    for layer in range(case.layers):
        kt = -(-stack._kin(layer) // 8) * 8
        if stack.gemv:
            stack.wT[layer][:, kt:] = float("nan")
        else:
            stack.w[layer][kt:] = float("nan")
    again = [t.float() for t in stack(x, None, None, sl) if t is not None]
    for a, b in zip(again, got):
        assert torch.equal(a, b)


def test_all_layers_in_one_launch_read_table_rows_and_write_ping_pong_states(host):
    """The decoder's calls in the one-launch form: x as table rows, states into given buffers."""
    from tf2rt.backends.cuda.options import CudaOptions

    case = _case(dict(cell="gru", hidden=36, batch=3, layers=3, initial=True))
    fused = _stack(case, "float32", CudaOptions(gemv_fuse=True))
    ref = _stack(case, "float32", CudaOptions(gemv_fuse=False))
    rng = np.random.default_rng(0)
    table = torch.from_numpy(rng.standard_normal((11, case.input_size)).astype(np.float32))
    rows = torch.tensor([7, 0, 10], dtype=torch.int64)
    L, B, H = case.layers, case.batch, case.hidden
    h = [torch.zeros(L, B, H), torch.zeros(L, B, H)]
    hr = torch.zeros(L, B, H)
    for step in range(3):
        cur = step % 2
        y, hn, _ = fused(table, h[cur], x_rows=rows, into=(h[1 - cur], None))
        yr, hn_r, _ = ref(table[rows][None], hr)
        hr = hn_r.clone()
        np.testing.assert_allclose(hn.numpy(), hn_r.numpy(), atol=1e-5, rtol=0)
        np.testing.assert_allclose(y.numpy(), yr.numpy(), atol=1e-5, rtol=0)
        assert hn.abs().sum() > 0


def test_table_rows_and_ping_pong_states(host):
    """The decoder's calls: x read as rows x_rows[b] of an embedding table (no lookup of its
    own) and the states written into given buffers (into=), fed back as the next h0/c0."""
    case = _case(dict(cell="lstm", hidden=36, batch=3, layers=2, initial=True))
    stack = _stack(case, "float32")
    rng = np.random.default_rng(0)
    table = torch.from_numpy(rng.standard_normal((11, case.input_size)).astype(np.float32))
    rows = torch.tensor([7, 0, 10], dtype=torch.int64)
    L, B, H = case.layers, case.batch, case.hidden
    h = [torch.zeros(L, B, H), torch.zeros(L, B, H)]
    c = [torch.zeros(L, B, H), torch.zeros(L, B, H)]
    ref = _stack(case, "float32")
    hr, cr = torch.zeros(L, B, H), torch.zeros(L, B, H)
    for step in range(3):
        cur = step % 2
        y, hn, cn = stack(table, h[cur], c[cur], x_rows=rows, into=(h[1 - cur], c[1 - cur]))
        assert hn.data_ptr() == h[1 - cur].data_ptr() and cn.data_ptr() == c[1 - cur].data_ptr()
        yr, hn_r, cn_r = ref(table[rows][None], hr, cr)
        hr, cr = hn_r.clone(), cn_r.clone()
        assert torch.equal(y, yr) and torch.equal(hn, hn_r) and torch.equal(cn, cn_r), step
    with pytest.raises(Exception, match="x_rows"):
        stack(table, x_rows=rows[:2])


@pytest.mark.parametrize("one_launch", [False, True])
def test_the_fused_decoder_gives_onnxruntimes_text_and_the_torch_forms_samples(monkeypatch, host, tmp_path,
                                                                               one_launch):
    """The decoder's GPU form on the CPU: the first layer reading embedding rows (xrow), the
    ping-pong states, and head_pick (kernels/decode.cu) choosing the next token. Greedy text
    equals the char-RNN app's on onnxruntime; sampled tokens (same noise) equal the torch-op
    form's, with a temperature and with top-k. one_launch: both LSTM layers in one launch
    (TF2RT_CUDA_GEMV_FUSE=1)."""
    from tf2rt.backends.cuda.options import CudaOptions

    from tf2rt import convert
    from tf2rt.apps.charrnn import CharRNN, Vocab
    from tf2rt.apps.charrnn.cuda_stream import char_rnn_parts
    from tf2rt.backends.cuda import decode
    from tf2rt.backends.cuda.graph import GraphExecutor
    from tf2rt.backends.cuda.plan import DeviceLimits
    from tf2rt.cli.demo import EXAMPLE

    monkeypatch.setattr(decode, "_head_kernel", lambda ytype: host_kernels(
        "decode.cu", {"YTYPE": ytype, "DECODE_THREADS": decode.DECODE_THREADS})["head_pick"])
    engine = convert(EXAMPLE / "model", tmp_path / "charrnn.onnx", states=True)
    vocab = Vocab.load(EXAMPLE / "vocab.json")
    ort = CharRNN(engine, vocab)
    ex = GraphExecutor(engine.onnx, DeviceLimits(), device="cpu")
    parts = char_rnn_parts(engine, ex.chains, ort.input_name, ort.logits_name)
    specs = ex.chains[0].specs

    def loop(fused):
        lp = decode.DecodeLoop(specs, *parts, device="cpu", steps_per_launch=8)
        if fused:  # the GPU form: single-step stack (host kernels) and head_pick
            problem = problem_for(specs, 1, 1, "float32")
            lp.stack = single_step.SingleStepStack(problem, [s.weights for s in specs], device="cpu",
                                                   options=CudaOptions(gemv_fuse=one_launch))
            assert lp.stack.fused == one_launch
            lp.fused = lp.head_kernel = True
        return lp

    fused, plain = loop(True), loop(False)
    prompt = vocab.encode("ROMEO:")
    # (every block at once is slow to emulate: fewer tokens in one launch)
    n, samples = (10, [{"temperature": 1.3, "top_k": 5, "seed": 4}]) if one_launch else \
        (24, [{"temperature": 0.9, "seed": 3}, {"temperature": 1.3, "top_k": 5, "seed": 4}])
    assert vocab.decode(fused.generate(prompt, n, greedy=True)[0]) == ort.generate("ROMEO:", n, greedy=True)
    for kw in samples:
        a, b = fused.generate(prompt, n // 2, **kw), plain.generate(prompt, n // 2, **kw)
        assert np.array_equal(a, b), kw


@pytest.mark.parametrize("rnn_dtype,precision,fuse", [(None, "fp32", False), ("float16", "fp32", False),
                                                      ("float16", "fp16", False), (None, "fp32", True),
                                                      ("float16", "fp16", True)])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_engines_on_host_kernels_learn_output_targets_and_then_copy_nothing(host, monkeypatch, bidirectional,
                                                                            rnn_dtype, precision, fuse):
    """A one-step engine through the executor with the single-step stack on host kernels:
    where the engine's layout of an output is no view of the stack's (a bidirectional y
    [1, 2, B, H] as [B, 1, 2H]), the first call copies it and learns it as the stack's
    target; from the second call on the stack writes it there and nothing is copied;
    values as the reference backend. With rnn_dtype="float16" the stack computes in fp16 and
    writes the engine's float32 outputs itself (OTYPE), rounded as fp16. An fp16 engine
    (precision="fp16": Casts to fp16 after the node and back to fp32 at the outputs) too:
    there the bidirectional y is copied by its Reshape and then again by the Cast, and the
    stack learns to write it in the final type (an H100 run found those copies left). fuse:
    the stack runs both layers in one launch (step_gemv_layers), which writes every layer's
    hn/cn and the last layer's y into the same learned targets."""
    from helpers.rnn_networks import build_rnn, rnn_feeds

    from tf2rt.backends.cuda import graph
    from tf2rt.backends.cuda.graph import GraphExecutor
    from tf2rt.backends.cuda.plan import DeviceLimits, Plan

    from tf2rt.backends.cuda.options import CudaOptions

    def make_stack(specs, batch, seq_len, dtype, limits, **kw):
        problem = problem_for(specs, batch, seq_len, dtype)
        stack = single_step.SingleStepStack(problem, [s.weights for s in specs], device="cpu",
                                            options=CudaOptions(gemv_fuse=fuse))
        assert stack.fused == fuse
        return stack, Plan("step", "host")

    monkeypatch.setattr(graph, "make_stack", make_stack)
    H, E, N = 6, 5, 3
    engine, _ = build_rnn("lstm", 2, bidirectional, H, E, N, 1, 9, states=True, precision=precision)
    feeds = rnn_feeds("lstm", 2, bidirectional, H, E, N, 1, 9, False, True)
    ex = GraphExecutor(engine.onnx, DeviceLimits(), device="cpu", rnn_dtype=rnn_dtype)
    want = engine.run(feeds, backend="reference")
    tol = 1e-5 if rnn_dtype is None else 2e-2
    first = ex({k: torch.as_tensor(v) for k, v in feeds.items()})
    if bidirectional:  # the Reshape of y copies once and is learned
        reshapes = {n.name for n in ex.nodes if n.op_type == "Reshape"}
        assert reshapes & set(ex.copies) and "y" in ex.chains[0].targets, ex.copies
    second = ex({k: torch.as_tensor(v) for k, v in feeds.items()})
    assert ex.copies == [] and set(ex.chains[0].taken) == set(ex.chains[0].targets), ex.copies
    for out in (first, second):
        for k in want:
            assert out[k].dtype == torch.float32
            np.testing.assert_allclose(np.asarray(out[k]), want[k], atol=tol, rtol=0, err_msg=k)


def _random_decoder_parts(cell, E=6, H=10, V=7, layers=2, peepholes=False, seed=0):
    """Specs of a random forward stack (ONNX weights with distinct values in every gate),
    an embedding table and a dense head."""
    from tf2rt.backends.cuda.rnn import node_spec

    rng = np.random.default_rng(seed)
    G = {"lstm": 4, "gru": 3, "rnn": 1}[cell]
    op = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}[cell]
    attrs = {"hidden_size": H, "linear_before_reset": 1}
    specs = []
    for layer in range(layers):
        n_in = E if layer == 0 else H
        W = rng.standard_normal((1, G * H, n_in)).astype(np.float32) * 0.6
        R = rng.standard_normal((1, G * H, H)).astype(np.float32) * 0.6
        B = rng.standard_normal((1, 2 * G * H)).astype(np.float32) * 0.3
        P = rng.standard_normal((1, 3 * H)).astype(np.float32) * 0.5 if peepholes else None
        specs.append(node_spec(op, attrs, W, R, B, P))
    table = (rng.standard_normal((V + 2, E)) * 3.75).astype(np.float32)  # inputs that move the state
    head_w = (rng.standard_normal((H, V)) * 2).astype(np.float32)
    head_b = rng.standard_normal(V).astype(np.float32)
    return specs, table, head_w, head_b


@pytest.fixture
def resident_host(monkeypatch):
    """The resident decoder's kernel built for the host (every block at once), 64 threads a
    CTA, launches of 8 tokens."""
    from tf2rt.backends.cuda import decode, resident_decode

    use_host_kernels(monkeypatch, (resident_decode, "RESIDENT_THREADS", 64),
                     (resident_decode, "_host_kernel", lambda defines: host_kernels(
                         "decode_resident.cu", dict(defines, EMU_SLOW_LAST=1), concurrent=True)["resident_decode"]),
                     (decode, "RESIDENT_CHUNK", 8))


# seeds whose greedy text moves (random stacks often settle on one token)
# (a vocabulary above the CTA's threads: a logit is one thread's whole sum; xtab=False: the
# first layer's products from the embedding row at every step)
@pytest.mark.parametrize("cell,peepholes,batch,seed,V,xtab", [
    ("lstm", False, 2, 7, 7, True), ("lstm", False, 2, 7, 7, False), ("lstm", True, 2, 7, 7, True),
    ("gru", False, 2, 5, 7, True), ("rnn", False, 1, 0, 7, True), ("gru", False, 1, 0, 70, True),
    ("lstm", False, 2, "wide", 7, False)])
def test_the_resident_decoder_gives_the_torch_forms_tokens(resident_host, monkeypatch, cell, peepholes, batch, seed, V,
                                                           xtab):
    """kernels/decode_resident.cu on the CPU, every CTA at once: layer CTAs holding a few
    units each (four CTAs a layer), the head CTA choosing tokens, tagged words between them,
    launches of 8 tokens carrying state and token. Greedy and sampled tokens (the same noise:
    8 tokens a fill on both sides) and the last step's logits equal the torch-op form's, from a
    given initial state, with a prompt of forced tokens."""
    from tf2rt.backends.cuda.decode import DecodeLoop
    from tf2rt.backends.cuda.plan import DeviceLimits

    # "wide": input 8 and 12 units, so every product runs four values a lane (rows_dot's vector
    # form), the first layer's from the embedding row
    E, H = (8, 12) if seed == "wide" else (6, 10)
    specs, table, head_w, head_b = _random_decoder_parts(cell, E=E, H=H, V=V, peepholes=peepholes,
                                                         seed=9 if seed == "wide" else seed)
    from tf2rt.backends.cuda import resident_decode

    if not xtab:
        monkeypatch.setattr(resident_decode, "XTAB_MAX_BYTES", 0)
    limits = DeviceLimits(sm_count=9)  # 10 units: 3 a CTA -> 4 CTAs a layer, 2 layers + the head
    res = DecodeLoop(specs, table, head_w, head_b, batch=batch, device="cpu", limits=limits, resident=True)
    plain = DecodeLoop(specs, table, head_w, head_b, batch=batch, device="cpu", steps_per_launch=8)
    assert res.resident is not None and res.resident.plan.ncta == 4 and res.resident.plan.grid == 9
    assert res.resident.plan.xtab == xtab
    rng = np.random.default_rng(1)
    prompt = np.array([[8, 0, 3], [1, 2, 6]][:batch])  # row 8: a table row past the head's tokens
    h0 = rng.standard_normal((2, batch, H)).astype(np.float32) * 0.5
    c0 = rng.standard_normal((2, batch, H)).astype(np.float32) * 0.5 if cell == "lstm" else None
    a = res.generate(prompt, 14, greedy=True, h0=h0, c0=c0)  # 16 steps: two whole launches on both sides
    b = plain.generate(prompt, 14, greedy=True, h0=h0, c0=c0)
    assert np.array_equal(a, b) and len(set(a.ravel().tolist())) >= 3, (a, b)
    np.testing.assert_allclose(res.logits.numpy(), plain.logits.numpy(), atol=2e-5, rtol=0)
    kw = {"temperature": 1.3, "top_k": 4, "seed": 7}
    assert np.array_equal(res.generate(prompt, 11, **kw), plain.generate(prompt, 11, **kw))


@pytest.mark.parametrize("failure", ["refused", "timed out"])
def test_a_failed_resident_launch_falls_back_to_a_launch_a_layer(resident_host, monkeypatch, failure):
    """A cooperative launch the driver refuses (nothing ran), or one whose error word says a
    hand-off timed out (as the kernel sets it), warns once and decodes the whole call again,
    and later ones, with the per-layer loop: the same tokens."""
    from tf2rt.backends.cuda.decode import DecodeLoop
    from tf2rt.backends.cuda.plan import DeviceLimits
    from tf2rt.backends.cuda.resident_decode import ResidentDecoder

    ran = ResidentDecoder.run

    def fail(self, *a, **k):
        if failure == "refused":
            raise RuntimeError("cudaErrorCooperativeLaunchTooLarge")
        ran(self, *a, **k)
        self.sync[self.problem.layers] = 1  # the kernel's error word

    specs, table, head_w, head_b = _random_decoder_parts("gru" if failure == "refused" else "lstm", seed=5)
    res = DecodeLoop(specs, table, head_w, head_b, device="cpu", limits=DeviceLimits(sm_count=9), resident=True)
    plain = DecodeLoop(specs, table, head_w, head_b, device="cpu", steps_per_launch=8)
    monkeypatch.setattr(ResidentDecoder, "run", fail)
    why = "CooperativeLaunchTooLarge" if failure == "refused" else "did not complete in time"
    with pytest.warns(UserWarning, match=f"resident decoding unavailable.*{why}"):
        got = res.generate(np.array([1, 2]), 10, greedy=True)
    assert res.resident is None and np.array_equal(got, plain.generate(np.array([1, 2]), 10, greedy=True))


@pytest.mark.parametrize("mask", ["1", "3", "7", "13"])
def test_l2_prefetches_change_no_value(host, mask):
    """The one-launch layers with L2 prefetches (TF2RT_CUDA_GEMV_L2PF: the next layer's rows,
    the rest of the own row, streaming own loads, the last layer the first layer's rows for
    the next call) give exactly what they give without, call after call: three
    layers (two boundaries with a next layer), a bidirectional first layer whose rows have two
    column runs, fp16 rows longer than the loads held in registers (two a lane here)."""
    from tf2rt.backends.cuda.options import CudaOptions

    for kw, dtype in ((dict(cell="lstm", hidden=40, batch=2, layers=3, initial=True), "float32"),
                      (dict(cell="gru", hidden=36, batch=1, layers=2, bidirectional=True, initial=True), "float32"),
                      (dict(cell="lstm", hidden=640, batch=1, layers=2, initial=True), "float16")):
        case = _case(kw)
        feeds = make_inputs(case)
        held = 2 if dtype == "float16" else 0  # 0: the planner's count
        base = _stack(case, dtype, CudaOptions(gemv_l2pf="0", gemv_prefetch=held))
        pf = _stack(case, dtype, CudaOptions(gemv_l2pf=mask, gemv_prefetch=held))
        assert base.gemv and pf.gemv
        inputs = stack_inputs(torch, case, dtype, feeds, dev="cpu")
        want = [t.clone() for t in base(*inputs) if t is not None]
        for _ in range(2):
            got = [t for t in pf(*inputs) if t is not None]
            assert all(torch.equal(w, g) for w, g in zip(want, got))
        nxt = [pf._next_rows(layer) for layer in range(case.layers)]
        assert all(int(p) == pf.wT[i + 1].data_ptr() for i, (p, _) in enumerate(nxt[:-1]))
        assert int(nxt[-1][0]) == (pf.wT[0].data_ptr() if int(mask) & 8 else 0)
        assert max(_stack_errors(torch, case, dtype, feeds, pf, dev="cpu").values()) <= TOL[dtype]


def test_held_loads_from_the_rows_tail_every_other_call_change_no_value(host):
    """TF2RT_CUDA_GEMV_ALT=1: every other call the one-launch layers hold each row's tail in
    registers and load its head after the wait. Call after call (both parities, with and
    without a state: rows of one and of two column runs, fp16 rows of several held loads)
    the outputs equal the plain build's exactly, and the last layer counts the calls (one a
    block); GV_L2PF bit 2 is refused with a message."""
    from tf2rt.backends.cuda.options import CudaOptions
    from tf2rt.errors import UnsupportedError

    for kw, dtype, held in ((dict(cell="lstm", hidden=100, batch=2, layers=3, initial=True), "float32", 1),
                            (dict(cell="gru", hidden=90, batch=1, layers=2, bidirectional=True), "float32", 1),
                            (dict(cell="lstm", hidden=640, batch=1, layers=2, initial=True), "float16", 2)):
        case = _case(kw)
        feeds = make_inputs(case)
        base = _stack(case, dtype, CudaOptions(gemv_prefetch=held))
        alt = _stack(case, dtype, CudaOptions(gemv_alt=True, gemv_prefetch=held))
        assert base.gemv and alt.gemv and alt.calls is not None and base.calls is None
        inputs = stack_inputs(torch, case, dtype, feeds, dev="cpu")
        want = [t.clone() for t in base(*inputs) if t is not None]
        for _ in range(3):
            got = [t for t in alt(*inputs) if t is not None]
            assert all(torch.equal(w, g) for w, g in zip(want, got))
        assert int(alt.calls[0]) == 3 * single_step.gemv_blocks(alt.problem)[0]
    with pytest.raises(UnsupportedError, match="GEMV_L2PF bit 2"):
        _stack(case, dtype, CudaOptions(gemv_alt=True, gemv_l2pf="2"))
    # rows no longer than the loads a lane holds: nothing to alternate
    assert _stack(_case(dict(cell="lstm", hidden=40, batch=1, layers=2)), "float32",
                  CudaOptions(gemv_alt=True)).calls is None


def test_a_stack_launched_another_way_shares_the_packed_weights(host):
    """A single-step stack built with weights_of= (the runner's first-run candidates that
    differ only in how they launch) uses the other stack's packed weights, not a copy, and
    computes the same; one whose weights are packed another way (the GEMM form) packs its
    own."""
    from tf2rt.backends.cuda.options import CudaOptions

    case = _case(dict(cell="gru", hidden=40, batch=2, layers=2, initial=True))
    feeds = make_inputs(case)
    problem = problem_for(node_specs(case), case.batch, 1, "float32")
    layers = [s.weights for s in node_specs(case)]
    base = single_step.SingleStepStack(problem, layers, device="cpu")
    pf = single_step.SingleStepStack(problem, layers, device="cpu", options=CudaOptions(gemv_l2pf="5"), weights_of=base)
    assert pf.gemv and all(a is b for a, b in zip(pf.wT, base.wT)) and pf.bias is base.bias
    inputs = stack_inputs(torch, case, "float32", feeds, dev="cpu")
    want = [t.clone() for t in base(*inputs) if t is not None]
    assert all(torch.equal(w, g) for w, g in zip(want, [t for t in pf(*inputs) if t is not None]))
    gemm = single_step.SingleStepStack(problem, layers, device="cpu", options=CudaOptions(gemv=False), weights_of=base)
    assert not gemm.gemv and gemm.w and not gemm.wT
    assert max(_stack_errors(torch, case, "float32", feeds, gemm, dev="cpu").values()) <= TOL["float32"]

"""Token decoding with the whole model on the device (backends/cuda/decode.py).

The loop (prompt fed as forced tokens, state carried across launches, greedy and sampled
choices) runs on a CPU torch device in CI: its greedy text must equal the char-RNN app's
on onnxruntime (itself checked against TensorFlow in tests/apps), its top-k picks must lie
in onnxruntime's top k, and its sampled first characters must follow softmax(z / T). On a
GPU the fused kernels (the embedding lookup inside the first layer, the head and the
choice in one launch) are checked against the same oracles and against the torch-op form.
"""

from __future__ import annotations

import numpy as np
import pytest

from tf2rt.apps.charrnn import CharRNN, Vocab
from tf2rt.cli.demo import EXAMPLE
from tf2rt.errors import ShapeError, Tf2rtError, UnsupportedError

torch = pytest.importorskip("torch")

PROMPT = "First Citizen:\n"
GPU = torch.cuda.is_available()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from tf2rt import convert

    engine = convert(EXAMPLE / "model", tmp_path_factory.mktemp("dec") / "charrnn.onnx", states=True)
    vocab = Vocab.load(EXAMPLE / "vocab.json")
    return engine, vocab, CharRNN(engine, vocab)


def _loop(engine, oracle, device="cpu", **kw):
    from tf2rt.apps.charrnn.cuda_stream import char_rnn_parts
    from tf2rt.backends.cuda.decode import DecodeLoop
    from tf2rt.backends.cuda.graph import GraphExecutor
    from tf2rt.backends.cuda.plan import DeviceLimits

    ex = GraphExecutor(engine.onnx, DeviceLimits(), device=device)
    parts = char_rnn_parts(engine, ex.chains, oracle.input_name, oracle.logits_name)
    return DecodeLoop(ex.chains[0].specs, *parts, device=device, **kw), parts


def _softmax(z):
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max())
    return e / e.sum()


@pytest.mark.parametrize("launch", [2, 8, 32])
def test_greedy_text_equals_onnxruntime_across_launches(demo, launch):
    """Prompt of 15 characters and 50 chosen ones (64 steps) over launches of 2, 8 and 32
    steps: the state and the token carry across launches and the prompt's forced tokens
    override the picks."""
    engine, vocab, ort = demo
    loop, _ = _loop(engine, ort, steps_per_launch=launch)
    got = loop.generate(vocab.encode(PROMPT), 50, greedy=True)
    assert got.shape == (1, 50) and got.dtype == np.int64
    assert vocab.decode(got[0]) == ort.generate(PROMPT, 50, greedy=True)
    # the last step's logits are left in `logits`: those onnxruntime gives for the same text
    text = PROMPT + vocab.decode(got[0])[:-1]
    want = ort.logits(text)[-1]
    assert np.abs(loop.logits.numpy()[0] - want).max() <= 1e-4


def test_rows_of_a_batch_decode_independently(demo):
    engine, vocab, ort = demo
    prompts = ["First Citizen:\n", "MENENIUS:\nWhat ", "You are all re", "Let us kill hi"]
    ids = np.stack([vocab.encode(p[:14]) for p in prompts])
    loop, _ = _loop(engine, ort, batch=4, steps_per_launch=8)
    got = loop.generate(ids, 40, greedy=True)
    for row, p in zip(got, prompts):
        assert vocab.decode(row) == ort.generate(p[:14], 40, greedy=True)


def test_top_k_picks_lie_in_onnxruntimes_top_k(demo):
    engine, vocab, ort = demo
    loop, _ = _loop(engine, ort, steps_per_launch=8)
    greedy = ort.generate(PROMPT, 50, greedy=True)
    assert vocab.decode(loop.generate(vocab.encode(PROMPT), 50, top_k=1, seed=1)[0]) == greedy
    got = vocab.decode(loop.generate(vocab.encode(PROMPT), 80, temperature=2.0, top_k=3, seed=7)[0])
    assert got != ort.generate(PROMPT, 80, greedy=True)  # a temperature of 2 does leave the greedy path
    logits = ort.logits(PROMPT + got[:-1])[len(PROMPT) - 1:]
    for t, ch in enumerate(vocab.encode(got)):
        top3 = np.argsort(-logits[t], kind="stable")[:3]
        assert ch in top3, (t, ch, top3)
    # the same seed, the same text; another seed, other text
    again = vocab.decode(loop.generate(vocab.encode(PROMPT), 80, temperature=2.0, top_k=3, seed=7)[0])
    other = vocab.decode(loop.generate(vocab.encode(PROMPT), 80, temperature=2.0, top_k=3, seed=8)[0])
    assert again == got and other != got


def _first_pick_distance(engine, vocab, ort, T, top_k=None, device="cpu", rows=20000, fused=True):
    """Total-variation distance between the first sampled character of `rows` rows with
    the same prompt and softmax(z / T) (over the top k), with the spread expected by chance."""
    loop, _ = _loop(engine, ort, device=device, batch=rows, steps_per_launch=2, fused=fused)
    ids = np.tile(vocab.encode(PROMPT), (rows, 1))
    first = loop.generate(ids, 1, temperature=T, top_k=top_k, seed=11)[:, 0]
    z = ort.logits(PROMPT)[-1]
    p = _softmax(z / T)
    if top_k:
        keep = np.argsort(-z, kind="stable")[:top_k]
        p = np.where(np.isin(np.arange(p.size), keep), p, 0.0)
        p /= p.sum()
        assert set(first.tolist()) <= set(keep.tolist())
    freq = np.bincount(first, minlength=p.size) / rows
    chance = 0.5 * np.sum(np.sqrt(2 * p * (1 - p) / (np.pi * rows)))
    return 0.5 * float(np.abs(freq - p).sum()), float(chance), p


@pytest.mark.parametrize("T,top_k", [(1.5, None), (0.7, 4)])
def test_sampled_characters_follow_the_softmax(demo, T, top_k):
    engine, vocab, ort = demo
    tv, chance, p = _first_pick_distance(engine, vocab, ort, T, top_k)
    assert tv <= 4 * chance, (tv, chance)
    # the test can tell temperatures apart: T and 1 differ by far more than the bound
    q = _softmax(ort.logits(PROMPT)[-1])
    assert 0.5 * np.abs(q - p).sum() > 8 * chance


def test_bad_requests_are_refused(demo):
    engine, vocab, ort = demo
    loop, (table, kernel, bias) = _loop(engine, ort, steps_per_launch=4)
    with pytest.raises(Tf2rtError, match="outside the embedding table's"):
        loop.generate(np.array([1, 99999]), 5, greedy=True)
    with pytest.raises(Tf2rtError, match="outside the embedding table's"):
        loop.generate(np.array([-1]), 5, greedy=True)
    with pytest.raises(ShapeError, match="P >= 1"):
        loop.generate(np.zeros((1, 0), np.int64), 5, greedy=True)
    with pytest.raises(Tf2rtError, match="integer token ids"):
        loop.generate(np.array([1.5]), 5, greedy=True)
    with pytest.raises(Tf2rtError, match="temperature must be > 0"):
        loop.generate(np.array([1]), 5, temperature=0.0)
    with pytest.raises(Tf2rtError, match="length must be >= 0"):
        loop.generate(np.array([1]), -1, greedy=True)
    with pytest.raises(ShapeError, match="h0 must have shape"):
        loop.generate(np.array([1]), 3, greedy=True, h0=np.zeros((1, 1, 192), np.float32))
    assert loop.generate(np.array([1]), 0, greedy=True).shape == (1, 0)
    from tf2rt.backends.cuda.decode import DecodeLoop
    from tf2rt.backends.cuda.graph import GraphExecutor
    from tf2rt.backends.cuda.plan import DeviceLimits

    chain_specs = GraphExecutor(engine.onnx, DeviceLimits(), device="cpu").chains[0].specs
    with pytest.raises(ShapeError, match="embedding table has"):
        DecodeLoop(chain_specs, table[:10], kernel, bias, device="cpu")
    with pytest.raises(ShapeError, match="the head must be"):
        DecodeLoop(chain_specs, table, kernel.T, bias, device="cpu")
    with pytest.raises(Tf2rtError, match="even number"):
        DecodeLoop(chain_specs, table, kernel, bias, device="cpu", steps_per_launch=3)


def test_a_given_initial_state_is_used(demo):
    """h0/c0 of the stack: decoding from the state the prompt left equals decoding the prompt."""
    engine, vocab, ort = demo
    loop, _ = _loop(engine, ort, steps_per_launch=4)
    ids = vocab.encode(PROMPT)
    whole = loop.generate(ids, 30, greedy=True)
    feeds = {ort.input_name: ids[None, :-1].astype(np.int32)}
    for name, _ in engine.states:
        feeds[name] = np.zeros((1, 2, 192), np.float32)
    out = engine.run(feeds)
    (_, h_out), (_, c_out) = engine.states  # initial/final h, then c: [batch, layers, hidden]
    h0, c0 = out[h_out].transpose(1, 0, 2), out[c_out].transpose(1, 0, 2)
    with pytest.raises(ShapeError, match="h0 must have shape"):
        loop.generate(ids[-1:], 30, greedy=True, h0=out[h_out], c0=c0)
    assert np.array_equal(loop.generate(ids[-1:], 30, greedy=True, h0=h0, c0=c0), whole)
    assert not np.array_equal(loop.generate(ids[-1:], 30, greedy=True), whole)  # zero state: other text


def test_reverse_stacks_are_refused():
    from tf2rt.backends.cuda.decode import DecodeLoop
    from tf2rt.backends.cuda.packing import split_onnx_weights
    from tf2rt.backends.cuda.rnn import RnnNodeSpec

    rng = np.random.default_rng(0)
    H, E = 8, 4
    w = split_onnx_weights("gru", rng.standard_normal((2, 3 * H, E)).astype(np.float32),
                           rng.standard_normal((2, 3 * H, H)).astype(np.float32), None, None)
    spec = RnnNodeSpec("gru", H, "bidirectional", w, ["sigmoid", "tanh"] * 2, [], [], None, True)
    with pytest.raises(UnsupportedError, match="forward, unidirectional"):
        DecodeLoop([spec], np.zeros((5, E)), np.zeros((H, 5)), np.zeros(5), device="cpu")


@pytest.mark.parametrize("ytype", [0, 1, 2])
def test_head_kernel_compiles(ytype):
    """kernels/decode.cu for each type of the stack's output (NVRTC, no GPU needed)."""
    from nvrtc import Nvrtc, find_nvrtc

    from tf2rt.backends.cuda.decode import DECODE_THREADS
    from tf2rt.backends.cuda.persistent import kernel_source

    path = find_nvrtc()
    if path is None:
        pytest.fail("NVRTC is missing: the test extras install nvidia-cuda-nvrtc (pip install -e '.[test]')")
    ok, out = Nvrtc(path).compile(kernel_source("decode.cu"), ["--std=c++17", "-arch=sm_90", f"-DYTYPE={ytype}",
                                                                 f"-DDECODE_THREADS={DECODE_THREADS}"])
    assert ok and ".entry head_pick" in out, out


# ---- GPU ------------------------------------------------------------------------------------
gpu = pytest.mark.skipif(not GPU, reason="needs an NVIDIA GPU with CUDA")


@pytest.mark.gpu
@gpu
def test_fused_decoding_on_the_gpu_matches_onnxruntime_and_the_torch_form(demo):
    pytest.importorskip("cupy")
    engine, vocab, ort = demo
    loop, _ = _loop(engine, ort, device="cuda", steps_per_launch=16, resident=False)
    d = loop.describe()
    assert d["fused_lookup"] and d["head"] == "head_pick kernel", d
    want = ort.generate(PROMPT, 200, greedy=True)
    assert vocab.decode(loop.generate(vocab.encode(PROMPT), 200, greedy=True)[0]) == want
    plain, _ = _loop(engine, ort, device="cuda", steps_per_launch=16, fused=False, resident=False)
    assert not plain.describe()["fused_lookup"]
    for kw in ({"temperature": 0.9, "seed": 3}, {"temperature": 1.3, "top_k": 5, "seed": 4}):
        a = loop.generate(vocab.encode(PROMPT), 120, **kw)
        b = plain.generate(vocab.encode(PROMPT), 120, **kw)
        assert np.array_equal(a, b), kw


@pytest.mark.gpu
@gpu
def test_fused_decoding_with_dependent_launches_gives_the_same_tokens(demo):
    """Dependent launches (the decoder's default; TF2RT_CUDA_PDL=0 turns them off): each layer
    launch may start before the kernel ahead of it ends (kernels/pdl.cuh); greedy text and
    sampled tokens are those of ordinary launches."""
    pytest.importorskip("cupy")
    from tf2rt.backends.cuda.options import CudaOptions

    engine, vocab, ort = demo
    plain, _ = _loop(engine, ort, device="cuda", steps_per_launch=16, options=CudaOptions(pdl=False), resident=False)
    dep, _ = _loop(engine, ort, device="cuda", steps_per_launch=16, options=CudaOptions(), resident=False)
    assert dep.stack.pdl == (torch.cuda.get_device_capability() >= (9, 0)) and not plain.stack.pdl
    want = ort.generate(PROMPT, 200, greedy=True)
    assert vocab.decode(dep.generate(vocab.encode(PROMPT), 200, greedy=True)[0]) == want
    kw = {"temperature": 1.1, "top_k": 7, "seed": 5}
    assert np.array_equal(dep.generate(vocab.encode(PROMPT), 150, **kw), plain.generate(vocab.encode(PROMPT), 150, **kw))


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("T,top_k", [(1.5, None), (0.7, 4)])
def test_gpu_kernel_samples_follow_the_softmax(demo, T, top_k):
    """The head_pick kernel at batch 20000 (the stack in its GEMM form)."""
    pytest.importorskip("cupy")
    engine, vocab, ort = demo
    tv, chance, _ = _first_pick_distance(engine, vocab, ort, T, top_k, device="cuda")
    assert tv <= 4 * chance, (tv, chance)


@pytest.mark.gpu
@gpu
def test_char_rnn_app_decodes_on_the_gpu(demo):
    pytest.importorskip("cupy")
    engine, vocab, ort = demo
    app = CharRNN(engine, vocab, backend="cuda")
    want = ort.generate(PROMPT, 300, greedy=True)
    assert app.generate(PROMPT, 300, greedy=True) == want
    assert app.decoding_on_device
    # step() still works after generation (streaming session or graph path)
    assert np.abs(app.logits("Before we") - ort.logits("Before we")).max() <= 1e-4
    app.close()


def test_the_decoder_asks_for_dependent_launches_unless_told_not_to(demo, monkeypatch):
    """Options left open mean dependent launches for the decoder's layers (measured faster
    on an H100); TF2RT_CUDA_PDL=0, or options that say so, keep ordinary launches."""
    from tf2rt.backends.cuda.options import CudaOptions

    engine, _, ort = demo
    monkeypatch.delenv("TF2RT_CUDA_PDL", raising=False)
    assert _loop(engine, ort)[0].options.pdl is True
    assert _loop(engine, ort, options=CudaOptions(pdl=False))[0].options.pdl is False
    monkeypatch.setenv("TF2RT_CUDA_PDL", "0")
    assert _loop(engine, ort)[0].options.pdl is False
    assert CudaOptions.from_env().pdl is False and CudaOptions.from_env({}).pdl is None


def test_a_gru_decoder_matches_a_torch_loop():
    """A 2-layer GRU (reset-after) decoder with random weights against torch.nn.GRU driven
    one token at a time in Python, greedy and from a given initial state."""
    from tf2rt.backends.cuda.decode import DecodeLoop
    from tf2rt.backends.cuda.rnn import node_spec
    from tf2rt.layouts import ONNX_GRU, TORCH_GRU, reorder_gates

    torch.manual_seed(3)
    E, H, V = 12, 20, 9
    mod = torch.nn.GRU(E, H, num_layers=2)
    sd = {k: v.numpy() for k, v in mod.state_dict().items()}
    to_onnx = lambda a: reorder_gates(a, TORCH_GRU, ONNX_GRU)[None]  # noqa: E731
    specs = [node_spec("GRU", {"hidden_size": H, "linear_before_reset": 1}, to_onnx(sd[f"weight_ih_l{i}"]),
                       to_onnx(sd[f"weight_hh_l{i}"]),
                       np.concatenate([to_onnx(sd[f"bias_ih_l{i}"]), to_onnx(sd[f"bias_hh_l{i}"])], 1), None)
             for i in range(2)]
    rng = np.random.default_rng(4)
    table = (rng.standard_normal((V + 3, E)) * 2).astype(np.float32)  # more rows than the head's tokens
    kernel = (rng.standard_normal((H, V)) * 2).astype(np.float32)
    bias = rng.standard_normal(V).astype(np.float32)
    h0 = rng.standard_normal((2, 1, H)).astype(np.float32) * 0.5
    loop = DecodeLoop(specs, table, kernel, bias, device="cpu", steps_per_launch=6)
    prompt = [V + 2, 0, 5]  # a prompt may use any row of the table
    got = loop.generate(np.array(prompt), 25, greedy=True, h0=h0)[0].tolist()
    toks, want, h = list(prompt), [], torch.from_numpy(h0)
    with torch.no_grad():
        for t in range(len(prompt) + 24):
            y, h = mod(torch.from_numpy(table[toks[t]])[None, None], h)
            nxt = int(np.argmax(y[0, 0].numpy() @ kernel + bias))
            if t >= len(prompt) - 1:
                want.append(nxt)
            if t + 1 >= len(toks):
                toks.append(nxt)
    assert got == want
    assert len(set(got)) >= 2  # the weights do move the text


@pytest.mark.parametrize("cell,dtype,H,B", [("lstm", "float32", 512, 1), ("gru", "float16", 768, 1),
                                            ("rnn", "bfloat16", 192, 4), ("lstm", "float16", 256, 8)])
def test_resident_kernel_compiles_without_spills(cell, dtype, H, B):
    """kernels/decode_resident.cu for H100 plans (NVRTC, sm_90): no register spills."""
    from nvrtc import Nvrtc, find_nvrtc

    from tf2rt.backends.cuda.persistent import kernel_source
    from tf2rt.backends.cuda.plan import DeviceLimits
    from tf2rt.backends.cuda.problem import RnnProblem
    from tf2rt.backends.cuda.resident_decode import resident_defines, resident_plan

    path = find_nvrtc()
    if path is None:
        pytest.fail("NVRTC is missing: the test extras install nvidia-cuda-nvrtc (pip install -e '.[test]')")
    problem = RnnProblem(cell, H, H, B, 1, layers=2, dtype=dtype, peepholes=cell == "lstm")
    lim = DeviceLimits()
    plan = resident_plan(problem, 65, lim.sm_count, lim.smem_per_block)
    assert plan is not None and plan.grid <= lim.sm_count and plan.smem <= lim.smem_per_block, plan
    defines = resident_defines(problem, plan)
    options = ["--std=c++17", "-arch=sm_90"] + [f"-D{k}={v}" for k, v in defines.items()]
    regs, spills, report = Nvrtc(path).resources(kernel_source("decode_resident.cu"), options, "resident_decode")
    assert spills == 0 and regs <= 255, report


def test_the_resident_plan_fits_the_gpu_or_declines():
    """Fewest units a CTA such that every layer CTA and the head CTA are resident at once and
    a CTA's weight rows (the head's: all of them) fit its shared memory; stacks and heads
    that cannot fit get no plan."""
    from tf2rt.backends.cuda.problem import RnnProblem
    from tf2rt.backends.cuda.resident_decode import layer_smem, resident_plan

    p = RnnProblem("lstm", 512, 512, 1, 1, layers=2)
    plan = resident_plan(p, 65, 132, 227 * 1024)
    assert plan.ncta * 2 + 1 == plan.grid <= 132 and plan.upc == 8 and plan.xtab
    assert layer_smem(p, plan.upc) <= plan.smem <= 227 * 1024
    assert resident_plan(RnnProblem("lstm", 2048, 2048, 1, 1, layers=4), 65, 132, 227 * 1024) is None
    assert resident_plan(RnnProblem("gru", 64, 32, 1, 1, directions=2), 65, 132, 227 * 1024) is None
    # a head whose weights do not fit the head CTA's shared memory: the per-layer loop
    assert resident_plan(p, 65, 132, 227 * 1024) is not None and resident_plan(p, 200, 132, 227 * 1024) is None


@pytest.mark.gpu
@gpu
def test_resident_decoding_on_the_gpu_matches_onnxruntime(demo, monkeypatch):
    """One cooperative launch for a whole generate call (TF2RT_CUDA_RESIDENT=1): greedy text
    equals onnxruntime's, also over launches of 64 tokens; the same seed gives the same
    sample; top_k=1 sampling is greedy."""
    pytest.importorskip("cupy")
    from tf2rt.backends.cuda import decode

    engine, vocab, ort = demo
    loop, _ = _loop(engine, ort, device="cuda", resident=True)
    assert loop.describe()["stack"] == "resident", loop.describe()
    want = ort.generate(PROMPT, 300, greedy=True)
    assert vocab.decode(loop.generate(vocab.encode(PROMPT), 300, greedy=True)[0]) == want
    kw = {"temperature": 1.1, "top_k": 7, "seed": 5}
    a, b = loop.generate(vocab.encode(PROMPT), 150, **kw), loop.generate(vocab.encode(PROMPT), 150, **kw)
    assert np.array_equal(a, b) and len(set(a[0].tolist())) > 5
    one = loop.generate(vocab.encode(PROMPT), 100, top_k=1, seed=2)
    assert vocab.decode(one[0]) == want[:100]
    monkeypatch.setattr(decode, "RESIDENT_CHUNK", 64)
    chunked, _ = _loop(engine, ort, device="cuda", resident=True)
    assert vocab.decode(chunked.generate(vocab.encode(PROMPT), 300, greedy=True)[0]) == want


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_resident_decoding_in_half_precision_gives_the_fused_loops_logits(demo, dtype):
    """fp16 / bf16 stacks (state rounded to the type each step, as the fused loop keeps it):
    the logits after a 15-character prompt and two chosen characters agree with the fused
    loop's in the same type."""
    pytest.importorskip("cupy")
    engine, vocab, ort = demo
    res, _ = _loop(engine, ort, device="cuda", dtype=dtype, resident=True)
    fused, _ = _loop(engine, ort, device="cuda", dtype=dtype, steps_per_launch=2, resident=False)
    assert res.describe()["stack"] == "resident" and fused.describe()["fused_lookup"]
    a = res.generate(vocab.encode(PROMPT), 2, greedy=True)  # 16 steps on both sides
    b = fused.generate(vocab.encode(PROMPT), 2, greedy=True)
    assert np.array_equal(a, b)
    tol = 3e-2 if dtype == "float16" else 2e-1
    np.testing.assert_allclose(res.logits.cpu().numpy(), fused.logits.cpu().numpy(), atol=tol, rtol=0)

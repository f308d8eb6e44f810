"""Streaming sessions (one resident kernel launch, one step per call) against onnxruntime.

GPU only. Every step's output and the final states are compared with onnxruntime running
the whole sequence; sessions are reopened with carried state, and a session left without
input stops itself.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from cuda_models import RnnCase, build_model, make_inputs, make_weights, node_specs, run_onnxruntime

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():  # pragma: no cover - CPU CI
    pytest.skip("needs an NVIDIA GPU with CUDA", allow_module_level=True)
pytest.importorskip("cupy")

from tf2rt.backends.cuda.resident import StreamSession  # noqa: E402
from tf2rt.errors import Tf2rtError  # noqa: E402

TOL = {"float32": 1e-4, "float16": 2e-2, "bfloat16": 6e-2}


def _case(cell, hidden, batch, layers, seq_len=12, **kw):
    case = RnnCase(cell=cell, hidden=hidden, batch=batch, layers=layers, seq_len=seq_len, input_size=40,
                   seed=hidden + batch + layers, **kw)
    make_weights(case)
    feeds = make_inputs(case)
    return case, feeds, run_onnxruntime(build_model(case), feeds)


def _err(a, b):
    return float(np.abs(np.asarray(a, np.float64) - b).max())


@pytest.mark.gpu
@pytest.mark.parametrize("cell,dtype,batch,layers,hidden", [
    ("lstm", "float16", 1, 2, 512), ("lstm", "float32", 2, 2, 128), ("gru", "float32", 3, 3, 96),
    ("gru", "float16", 8, 2, 256), ("rnn", "float16", 1, 1, 256), ("lstm", "bfloat16", 4, 1, 64)])
def test_stream_steps_match_onnxruntime(cell, dtype, batch, layers, hidden):
    case, feeds, ref = _case(cell, hidden, batch, layers)
    sess = StreamSession(node_specs(case), batch, dtype)
    with sess:
        ys = np.stack([sess.step(feeds["X"][t]) for t in range(case.seq_len)])
    h, c = sess.close()
    tol = TOL[dtype]
    assert _err(ys, ref[f"x_{layers}"]) <= tol
    for layer in range(layers):
        assert _err(h[layer], ref[f"Yh_{layer}"][0]) <= tol
        if cell == "lstm":
            assert _err(c[layer], ref[f"Yc_{layer}"][0]) <= tol
    print(cell, dtype, batch, layers, hidden, "max step error", _err(ys, ref[f"x_{layers}"]))


@pytest.mark.gpu
def test_reopened_session_carries_state_and_ignores_stale_words():
    case, feeds, ref = _case("lstm", 128, 2, 2, seq_len=10)
    sess = StreamSession(node_specs(case), 2, "float32")
    with sess:
        first = [sess.step(feeds["X"][t]) for t in range(4)]
    h, c = sess.close()
    with sess.open(h0=h, c0=c):  # the exchange slots still hold the first session's words
        rest = [sess.step(feeds["X"][t]) for t in range(4, 10)]
    assert _err(np.stack(first + rest), ref["x_2"]) <= 1e-4
    # a fresh start from zeros reproduces the first steps exactly
    with sess.open():
        again = [sess.step(feeds["X"][t]) for t in range(4)]
    assert _err(np.stack(again), np.stack(first)) == 0.0


@pytest.mark.gpu
def test_idle_session_stops_itself_and_can_be_reopened():
    case, feeds, ref = _case("gru", 64, 1, 2, seq_len=3)
    sess = StreamSession(node_specs(case), 1, "float32", timeout_s=0.2)
    sess.open()
    sess.step(feeds["X"][0])
    time.sleep(0.6)
    with pytest.raises(Tf2rtError, match="without input"):
        sess.step(feeds["X"][1])
    with sess.open():
        ys = [sess.step(feeds["X"][t]) for t in range(3)]
    assert _err(np.stack(ys), ref["x_2"]) <= 1e-4


@pytest.mark.gpu
def test_step_rejects_wrong_shapes_and_closed_sessions():
    case, feeds, _ = _case("lstm", 64, 2, 1, seq_len=2)
    sess = StreamSession(node_specs(case), 2, "float32")
    with pytest.raises(Tf2rtError, match="not open"):
        sess.step(feeds["X"][0])
    with sess:
        with pytest.raises(Tf2rtError, match="batch x input"):
            sess.step(np.zeros(7, np.float32))
        sess.step(feeds["X"][0])


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_engine_runner_streams_its_recurrent_stack(precision):
    from helpers.rnn_networks import build_rnn, rnn_feeds

    engine, _ = build_rnn("lstm", 2, False, 128, 24, 2, 9, 5, precision=precision)
    feeds = rnn_feeds("lstm", 2, False, 128, 24, 2, 9, 5, False, False)
    want = engine.run(feeds, backend="reference")["y"]  # [batch, steps, hidden]
    runner = engine.runner("cuda")
    with runner.stream_session(batch=2) as sess:
        ys = np.stack([sess.step(feeds["x"][:, t]) for t in range(9)], axis=1)
    assert _err(ys, want.reshape(ys.shape)) <= (1e-4 if precision == "fp32" else 2e-2)
    with pytest.raises(Tf2rtError, match="stack must be"):
        runner.stream_session(stack=3)


@pytest.mark.gpu
def test_char_rnn_app_streams_on_cuda_and_matches_onnxruntime(tmp_path):
    import time

    from tf2rt import convert
    from tf2rt.apps.charrnn import CharRNN, Vocab
    from tf2rt.cli.demo import EXAMPLE

    engine = convert(EXAMPLE / "model", tmp_path / "charrnn.onnx", states=True)
    vocab = Vocab.load(EXAMPLE / "vocab.json")
    cpu = CharRNN(engine, vocab)  # onnxruntime, checked against TensorFlow in tests/apps
    gpu = CharRNN(engine, vocab, backend="cuda")
    assert gpu.streaming
    text = "First Citizen:\nBefore we proceed any further, hear me speak."
    assert _err(gpu.logits(text), cpu.logits(text)) <= 1e-4
    want = cpu.generate("First Citizen:\n", 200, greedy=True)
    t0 = time.perf_counter()
    got = gpu.generate("First Citizen:\n", 200, greedy=True)
    dt = time.perf_counter() - t0
    assert got == want
    print(f"char-RNN on cuda, streaming: {dt / 214 * 1e6:.1f} us per character")
    gpu.close()
    assert not gpu.streaming

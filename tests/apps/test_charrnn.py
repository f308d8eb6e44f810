"""The char-RNN application: vocabularies, sampling, the CLI and the bundled demo model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tf2rt.apps.charrnn import CharRNN, Vocab, VocabError
from tf2rt.apps.charrnn.generate import _sample
from tf2rt.cli import main
from tf2rt.cli.demo import EXAMPLE
from tf2rt.errors import FormatError


def test_vocab_forms(tmp_path):
    chars = ["\n", " ", "a", "b", "\\", "é"]
    (tmp_path / "d.json").write_text(json.dumps({c: i for i, c in enumerate(chars)}), encoding="utf-8")
    (tmp_path / "l.json").write_text(json.dumps(chars), encoding="utf-8")
    (tmp_path / "lines.txt").write_text("\\n\n\\s\na\nb\n\\\\\n\\u00e9\n", encoding="utf-8")
    for name in ("d.json", "l.json", "lines.txt"):
        v = Vocab.load(tmp_path / name)
        assert v.chars == chars, name
    v = Vocab(chars)
    assert v.decode(v.encode("ab é\n")) == "ab é\n"
    v.save(tmp_path / "round.json")
    assert Vocab.load(tmp_path / "round.json").chars == chars


def test_vocab_from_text_orders():
    text = "abracadabra"
    assert Vocab.from_text(text).chars == ["a", "b", "c", "d", "r"]
    # by decreasing count, ties in order of first appearance (common char-rnn TextLoader order)
    assert Vocab.from_text(text, "frequency").chars == ["a", "b", "r", "c", "d"]


def test_characters_outside_the_vocabulary_are_all_named():
    v = Vocab(list("abc"))
    with pytest.raises(VocabError) as e:
        v.encode("abxcyx")
    assert "'x'" in str(e.value) and "'y'" in str(e.value)


@pytest.mark.parametrize("content,match", [
    ('{"a": 0, "b": 2}', "without gaps"),
    ('{"a": "zero"}', "not an integer"),
    ("ab\nc\n", "not one character"),
    ('["a", "a"]', "more than once"),
    ("{not json", "not valid JSON"),
])
def test_bad_vocab_files(tmp_path, content, match):
    p = tmp_path / ("v.json" if content.startswith(("{", "[")) else "v.txt")
    p.write_text(content, encoding="utf-8")
    with pytest.raises(FormatError, match=match):
        Vocab.load(p)


def test_sampling_follows_the_softmax():
    rng = np.random.default_rng(0)
    logits = np.log(np.array([0.1, 0.6, 0.3]))
    draws = np.bincount([_sample(logits, 1.0, None, rng) for _ in range(20000)], minlength=3) / 20000
    assert np.allclose(draws, [0.1, 0.6, 0.3], atol=0.015)
    assert {_sample(logits, 1.0, 1, rng) for _ in range(50)} == {1}  # top-1 = greedy
    cold = np.bincount([_sample(logits, 0.25, None, rng) for _ in range(5000)], minlength=3) / 5000
    p = np.array([0.1, 0.6, 0.3]) ** 4
    assert np.allclose(cold, p / p.sum(), atol=0.02)


@pytest.fixture(scope="module")
def demo_engine(tmp_path_factory):
    from tf2rt import convert

    return convert(EXAMPLE / "model", tmp_path_factory.mktemp("demo") / "charrnn.onnx", states=True)


def test_generation_is_reproducible_and_uses_carried_state(demo_engine):
    vocab = Vocab.load(EXAMPLE / "vocab.json")
    gen = CharRNN(demo_engine, vocab)
    a = gen.generate("First Citizen:\n", 120, temperature=0.9, seed=5)
    b = gen.generate("First Citizen:\n", 120, temperature=0.9, seed=5)
    assert a == b and len(a) == 120
    # one call per character with carried state equals one whole-sequence call from zero state
    text = "Before we proceed any further"
    stepped = gen.logits(text)
    feeds = {demo_engine.input_names[0]: vocab.encode(text)[None, :]}
    for name, _ in demo_engine.states:
        spec = next(s for s in demo_engine.inputs if s.name == name)
        feeds[name] = np.zeros((1,) + tuple(spec.shape[1:]), np.float32)
    logits = demo_engine.run(feeds)["logits"]
    whole = logits.reshape(-1, logits.shape[-1])  # the TF graph's logits are [batch*time, V]
    assert np.abs(stepped - whole).max() <= 1e-5


def test_cli_rejects_unknown_characters(demo_engine, tmp_path, capsys):
    path = tmp_path / "m.onnx"
    demo_engine.save(path)
    rc = main(["charrnn", str(path), "--vocab", str(EXAMPLE / "vocab.json"), "--start", "Hello ~ world{"])
    err = capsys.readouterr().err
    assert rc == 2 and "'~'" in err and "'{'" in err and "Traceback" not in err


def test_cli_vocab_size_mismatch(demo_engine, tmp_path, capsys):
    path = tmp_path / "m.onnx"
    demo_engine.save(path)
    (tmp_path / "v.json").write_text(json.dumps(list("abc")))
    assert main(["charrnn", str(path), "--vocab", str(tmp_path / "v.json"), "--start", "a"]) == 2
    assert "vocabulary has 3" in capsys.readouterr().err


def test_demo_matches_tensorflow(capsys):
    """`tf2rt demo` converts the bundled model and checks TensorFlow writes the same greedy text."""
    assert main(["demo", "--length", "60"]) == 0
    out = capsys.readouterr().out
    assert "identical to TensorFlow's: yes" in out and "forget_bias = 1.0  [.meta graph]" in out


class _FakeRunner:
    """What StreamedCharRNN needs from a cuda runner: the recurrent chains and a session."""

    def __init__(self, engine):
        from tf2rt.backends.cuda.graph import GraphExecutor
        from tf2rt.backends.cuda.plan import DeviceLimits

        self.executor = GraphExecutor(engine.onnx, DeviceLimits(), device="cpu")

    def stream_session(self, batch):
        return object()


def test_streamed_char_rnn_finds_the_embedding_and_the_dense_head(demo_engine):
    """CPU part of the cuda char-RNN path: the engine is split into its embedding table, the
    recurrent stack (streamed on a GPU) and the dense head, read from the engine itself."""
    torch = pytest.importorskip("torch")  # noqa: F841 - GraphExecutor builds torch constants
    from onnx import numpy_helper

    from tf2rt.apps.charrnn.cuda_stream import NotStreamable, StreamedCharRNN

    inits = {t.name: numpy_helper.to_array(t) for t in demo_engine.onnx.graph.initializer}
    s = StreamedCharRNN(demo_engine, _FakeRunner(demo_engine), demo_engine.input_names[0], "logits")
    nodes = demo_engine.onnx.graph.node
    gather = next(n for n in nodes if n.op_type == "Gather")
    matmul = next(n for n in nodes if n.op_type in ("MatMul", "Gemm") and n.input[1] in inits)
    bias = next(n for n in nodes if n.op_type == "Add" and matmul.output[0] in n.input)
    assert np.array_equal(s.table, inits[gather.input[0]])
    assert np.array_equal(s.kernel, inits[matmul.input[1]])
    assert np.array_equal(s.bias, inits[next(i for i in bias.input if i in inits)])
    V = len(Vocab.load(EXAMPLE / "vocab.json"))
    assert s.table.shape[0] == V and s.kernel.shape == (192, V) and s.bias.shape == (V,)
    # the head must read the recurrent stack: asking for another output is refused
    with pytest.raises(NotStreamable):
        StreamedCharRNN(demo_engine, _FakeRunner(demo_engine), demo_engine.input_names[0], demo_engine.states[0][1])
    # an engine whose stack is fed by a float input (no embedding lookup) is refused
    from tf2rt.engine import build_engine
    from tf2rt.network import Network

    rng = np.random.default_rng(0)
    net = Network("plain")
    rnn = net.add_rnn_v2(net.add_input("x", "float32", (1, 5, 8)), 1, 16, 5, "lstm", "unidirection", "linear")
    for gate in ("input", "forget", "cell", "output"):
        rnn.set_weights_for_gate(0, gate, True, rng.standard_normal((16, 8)).astype(np.float32))
        rnn.set_weights_for_gate(0, gate, False, rng.standard_normal((16, 16)).astype(np.float32))
        rnn.set_bias_for_gate(0, gate, True, np.zeros(16, np.float32))
        rnn.set_bias_for_gate(0, gate, False, np.zeros(16, np.float32))
    net.mark_output(rnn.get_output(0), "y")
    plain = build_engine(net)
    with pytest.raises(NotStreamable, match="embedding"):
        StreamedCharRNN(plain, _FakeRunner(plain), "x", "y")

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
    whole = demo_engine.run(feeds)["logits"][0]
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

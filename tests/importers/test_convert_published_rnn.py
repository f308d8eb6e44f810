"""TF1 recurrent checkpoints saved the way public projects save them convert from their
`.meta` graph with the plain command and match TensorFlow within 1e-5."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import published_rnn_models as pm  # noqa: E402
from tf2rt.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def models(tf, tmp_path_factory):
    root = tmp_path_factory.mktemp("published_rnn")
    return {name: write(tf, root / name) for name, write in pm.WRITERS.items()}


@pytest.mark.parametrize("name", list(pm.WRITERS))
def test_converts_and_matches_tensorflow(models, name, tmp_path, capsys):
    m = models[name]
    engine_path = tmp_path / "model.onnx"
    assert main(["convert", m["prefix"], "-o", str(engine_path)]) == 0, capsys.readouterr().err
    from tf2rt import load_engine

    engine = load_engine(engine_path)
    out = engine.run(m["feeds"])
    for key, want in m["oracle"].items():
        got = out[key].reshape(want.shape)
        err = float(np.abs(got - want).max())
        assert err <= 1e-5, (key, err)
    card = engine.metadata["model"]
    graph = card["detected"]["graph"]
    assert not any(v.startswith(("lr", "learning_rate", "global_step", "evaluation/", "batch_pointer",
                                 "epoch_pointer")) or "Adam" in v for v in graph["variables_used"])
    assert [r["cells"] for r in graph["recurrences"]]  # the steps became a native recurrence


def test_stray_variables_are_counted_not_refused(models):
    from tf2rt import convert

    engine = convert(models["char_rnn_monitors"]["prefix"])
    graph = engine.metadata["model"]["detected"]["graph"]
    ignored = set(graph["variables_ignored"])
    assert {"learning_rate", "global_step", "evaluation/loss_monitor/count"} <= ignored
    assert [r["cells"] for r in graph["recurrences"]] and len(graph["recurrences"][0]["cells"]) == 2
    words = convert(models["word_rnn_pointers"]["prefix"]).metadata["model"]["detected"]["graph"]
    assert {"batch_pointer", "epoch_pointer", "lr"} <= set(words["variables_ignored"])


def test_state_placeholder_stays_an_ordinary_input(models):
    from tf2rt import convert

    engine = convert(models["projected_lstm"]["prefix"])
    assert "istate" in engine.input_names and "x" in engine.input_names
    assert engine.states == []  # the graph feeds its own state: no streaming state of tf2rt's


def test_seq2seq_has_two_recurrences(models):
    from tf2rt import convert

    engine = convert(models["seq2seq"]["prefix"])
    recs = engine.metadata["model"]["detected"]["graph"]["recurrences"]
    assert sorted(r["loop"] for r in recs) == ["decoder/rnn", "encoder/rnn"]


def test_inspect_meta_graph_shows_what_convert_uses(models, capsys):
    import json

    meta = models["char_rnn_monitors"]["prefix"] + ".meta"
    assert main(["inspect", meta, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [i["name"] for i in report["inputs"]] == ["input"]
    assert [o["name"] for o in report["outputs"]] == ["logits", "probs"]
    assert [len(r["cells"]) for r in report["recurrences"]] == [2]
    assert {"learning_rate", "global_step", "evaluation/loss_monitor/count"} <= set(report["variables_ignored"])
    assert report["unsupported"] == {}
    assert main(["inspect", meta]) == 0
    text = capsys.readouterr().out
    assert "recurrent stack rnn" in text and "ignored" in text


def test_unrolled_char_rnn_is_native_and_generates_like_tensorflow(tf, models, tmp_path, capsys):
    """The unrolled training graph (fixed [4, 6] placeholders) becomes native LSTM layers
    that run any length: greedy text one character per call equals TensorFlow's sampler."""
    from tf2rt.apps.charrnn import Vocab
    from tf2rt import load_engine

    prefix = models["char_rnn_unrolled"]["prefix"]
    vocab = Vocab([chr(ord("a") + i) for i in range(pm.UNROLLED["vocab"])])
    (tmp_path / "vocab.json").write_text("")
    vocab.save(tmp_path / "vocab.json")
    engine = tmp_path / "m.onnx"
    assert main(["convert", prefix, "-o", str(engine)]) == 0
    ops = [n.op_type for n in load_engine(engine).onnx.graph.node]
    assert ops.count("LSTM") == pm.UNROLLED["layers"] and "Split" not in ops  # one LSTM per layer, no per-step ops
    prime, length = [1, 2, 3], 200
    want, _logits = pm.unrolled_greedy(tf, prefix, prime, length)
    assert len(set(want)) >= 2
    capsys.readouterr()
    assert main(["charrnn", str(engine), "--vocab", str(tmp_path / "vocab.json"), "--start", vocab.decode(prime),
                 "--length", str(length), "--greedy", "--no-prime"]) == 0
    assert capsys.readouterr().out.rstrip("\n") == vocab.decode(want)


@pytest.mark.parametrize("name", ["char_rnn_monitors", "char_rnn_unrolled"])
def test_compare_against_the_training_graph(models, tmp_path, capsys, name):
    """`compare --against tf:CKPT` feeds the training graph's fixed [batch, seq] sizes and
    leaves the engine's streaming states at zeros, as the graph starts."""
    engine = tmp_path / "m.onnx"
    assert main(["convert", models[name]["prefix"], "-o", str(engine)]) == 0
    capsys.readouterr()
    rc = main(["compare", str(engine), "--against", "tf:" + models[name]["prefix"]])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "all outputs match" in out.out and "Traceback" not in out.err


def test_ptb_style_test_model_streams_like_tensorflow(tf, tmp_path):
    """The PTB tutorial's checkpoint holds Train and Test copies of the model sharing their
    variables, fed from queues: cutting at the Test model's input slice gives a one-step
    engine with native LSTM layers and streaming state, whose greedy words equal TF's."""
    import tf2rt

    m = pm.ptb_style(tf, tmp_path / "ptb")
    engine = tf2rt.convert(m["prefix"], inputs=[m["input"]], outputs=[m["output"]],
                           input_shapes={m["input"]: [1, 1]})  # an inner node has no declared shape
    ops = [n.op_type for n in engine.onnx.graph.node]
    assert ops.count("LSTM") == pm.PTB["layers"] and "Sigmoid" not in ops
    assert len(engine.states) == 2
    stream = engine.stream()
    c, words = m["start"], []
    for _ in range(len(m["greedy"])):
        logits = stream.step({m["input"]: np.array([[c]], np.int32)})[m["output"]]
        c = int(np.argmax(logits[0, -1]))
        words.append(c)
    assert len(set(m["greedy"])) >= 2 and words == m["greedy"]


def test_inspect_checkpoint_points_at_its_graph(models, capsys):
    prefix = models["char_rnn_monitors"]["prefix"]
    assert main(["inspect", prefix]) == 0
    out = capsys.readouterr().out
    assert f"Graph: {prefix}.meta" in out


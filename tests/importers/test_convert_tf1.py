"""`tf2rt convert` + `tf2rt charrnn` on TF1 char-RNN checkpoints vs TensorFlow's own graph.

Checkpoints are written by charrnn_models.py in the style of common char-rnn training code
(MultiRNNCell of BasicLSTMCell / LSTMCell / GRUCell / BasicRNNCell, embedding or one-hot,
softmax_w/softmax_b, Adam slots) with distinct random values in every weight and bias.
The oracle is the same model rebuilt by TensorFlow for sampling, fed one character at a
time with its state: greedy text must be identical for 500 characters and the per-step
logits within 1e-5.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # charrnn_models, whatever the import mode
import charrnn_models as cm  # noqa: E402
from tf2rt.apps.charrnn import CharRNN, Vocab  # noqa: E402
from tf2rt.cli import main  # noqa: E402
from tf2rt.errors import UnsupportedError  # noqa: E402

LENGTH = 500
PRIME = [1, 2, 3]

# (spec, with .meta, extra convert flags). Covers 1-3 layers, every cell class, embedding
# and one-hot inputs, forget_bias 0.0 / 1.0 / 0.5, relu, with and without .meta.
# Checkpoints with a .meta graph convert from the graph, whose training placeholders are fixed
# at [4, 7]; sampling one character at a time relaxes them, as a user would.
ANY = ["--input-shape", "input_data=-1,-1"]
CASES = {
    "basic_lstm2-emb-fb1-meta": (cm.CharRNNSpec("lstm", 2, forget_bias=1.0), True, ANY),
    "basic_lstm2-emb-fb0-meta": (cm.CharRNNSpec("lstm", 2, forget_bias=0.0, seed=1), True, ANY),
    "basic_lstm2-emb-fb0-tf1graph": (cm.CharRNNSpec("lstm", 2, forget_bias=0.0, seed=1, legacy_graph=True),
                                     True, ANY),
    "basic_lstm1-onehot-fb0-nometa": (cm.CharRNNSpec("lstm", 1, embedding=None, forget_bias=0.0, seed=2), False,
                                      ["--forget-bias", "0"]),
    "lstm_cell3-emb-fb0.5-meta": (cm.CharRNNSpec("lstm_cell", 3, forget_bias=0.5, seed=8, scale=4.5), True, ANY),
    "gru2-onehot-meta": (cm.CharRNNSpec("gru", 2, embedding=None, seed=4), True, ANY),
    "gru3-emb-nometa": (cm.CharRNNSpec("gru", 3, seed=5), False, []),
    "rnn3-emb-meta": (cm.CharRNNSpec("rnn", 3, seed=6), True, ANY),
    "rnn1-relu-onehot-meta": (cm.CharRNNSpec("rnn", 1, embedding=None, activation="relu", seed=7), True, ANY),
    "basic_lstm3-sizes-24-8-16-meta": (cm.CharRNNSpec("lstm", 3, hidden_sizes=(24, 8, 16), seed=11, scale=3.5),
                                       True, ANY),
}


@pytest.fixture(scope="module")
def models(tf, tmp_path_factory):
    """name -> (spec, checkpoint prefix, TF greedy ids, TF per-step logits)."""
    out = {}
    root = tmp_path_factory.mktemp("tf1_charrnn")
    for name, (spec, meta, _flags) in CASES.items():
        prefix = cm.write_charrnn(tf, spec, root / name, meta=meta)
        sampler = cm.TFSampler(tf, spec, prefix)
        ids, logits = sampler.greedy(PRIME, LENGTH)
        sampler.close()
        out[name] = (spec, prefix, ids, logits)
    return out


def _vocab(n: int) -> Vocab:
    return Vocab([chr(ord("a") + i) for i in range(n)])


@pytest.mark.parametrize("name", list(CASES))
def test_cli_greedy_text_matches_tensorflow(name, models, tmp_path, capsys):
    spec, prefix, tf_ids, _ = models[name]
    flags = CASES[name][2]
    vocab = _vocab(spec.vocab)
    vocab_file = tmp_path / "vocab.json"
    vocab.save(vocab_file)
    engine = tmp_path / "model.onnx"
    assert main(["convert", str(prefix), "-o", str(engine), *flags]) == 0
    capsys.readouterr()
    assert main(["charrnn", str(engine), "--vocab", str(vocab_file), "--start", vocab.decode(PRIME),
                 "--length", str(LENGTH), "--greedy", "--no-prime"]) == 0
    text = capsys.readouterr().out.rstrip("\n")
    expected = vocab.decode(tf_ids)
    assert len(set(expected)) >= 2, "the oracle text is constant; the test would prove little"
    assert text == expected


@pytest.mark.parametrize("name", list(CASES))
def test_per_step_logits_within_1e5(name, models):
    spec, prefix, tf_ids, tf_logits = models[name]
    flags = CASES[name][2]
    options = {"forget_bias": float(flags[1])} if flags[:1] == ["--forget-bias"] else \
        {"input_shapes": {"input_data": [-1, -1]}} if flags else {}
    vocab = _vocab(spec.vocab)
    gen = CharRNN(str(prefix), vocab, **options)
    ours = gen.logits(vocab.decode(PRIME + tf_ids[:-1]))
    err = float(np.abs(ours - tf_logits).max())
    assert err <= 1e-5, f"max |logits - TF| = {err:.3g}"


def test_meta_graph_settings_are_recorded(models):
    _spec, prefix, _ids, _ = models["lstm_cell3-emb-fb0.5-meta"]
    card = CharRNN(str(prefix), _vocab(11)).engine.metadata["model"]
    fb = {k: v for k, v in card["settings"].items() if k.endswith("forget_bias")}
    assert len(fb) == 3 and all(v == {"value": 0.5, "from": ".meta graph"} for v in fb.values())
    assert card["assumptions"] == []
    graph = card["detected"]["graph"]
    assert graph["inputs"] == ["input_data"] and graph["outputs"] == ["logits", "probs"]
    assert [len(r["cells"]) for r in graph["recurrences"]] == [3]
    # the optimizer's slots, its step counter and the other bookkeeping are off the path
    assert card["ignored_tensors"] > 0 and not any("Adam" in v for v in graph["variables_used"])


def test_without_meta_the_default_is_assumed_and_matters(models):
    """A forget_bias 0 model converted without the flag uses TF's default 1.0 - and says so."""
    spec, prefix, tf_ids, tf_logits = models["basic_lstm1-onehot-fb0-nometa"]
    gen = CharRNN(str(prefix), _vocab(spec.vocab))
    card = gen.engine.metadata["model"]
    assert any("forget_bias" in a and "1.0" in a for a in card["assumptions"])
    ours = gen.logits(_vocab(spec.vocab).decode(PRIME + tf_ids[:-1]))
    assert np.abs(ours - tf_logits).max() > 1e-3  # the setting is not cosmetic


def test_fp16_engine(models):
    spec, prefix, tf_ids, tf_logits = models["basic_lstm2-emb-fb1-meta"]
    gen = CharRNN(str(prefix), _vocab(spec.vocab), precision="fp16")
    ours = gen.logits(_vocab(spec.vocab).decode(PRIME + tf_ids[:-1]))
    assert np.abs(ours - tf_logits).max() <= 2e-2 * max(1.0, float(np.abs(tf_logits).max()))


def test_reference_backend(models):
    spec, prefix, tf_ids, tf_logits = models["gru2-onehot-meta"]
    gen = CharRNN(str(prefix), _vocab(spec.vocab), backend="reference")
    ours = gen.logits(_vocab(spec.vocab).decode(PRIME + tf_ids[:20]))
    assert np.abs(ours - tf_logits[:23]).max() <= 1e-5


@pytest.mark.parametrize("stack,cell", [(True, "lstm_cell"), (False, "gru")])
def test_bidirectional_tagger_with_sequence_lengths(tf, tmp_path, stack, cell):
    prefix, oracle = cm.write_tagger(tf, tmp_path / "tagger", cell=cell, stack=stack)
    from tf2rt import convert

    engine = convert(prefix, tmp_path / "tagger.onnx")
    assert engine.input_names == ["word_ids", "lengths"]
    assert engine.output_names == ["tag_logits", "tag_probs"]
    assert engine.states == []  # bidirectional: no streaming state by default
    out = engine.run({"word_ids": oracle["ids"], "lengths": oracle["lengths"]})
    err = float(np.abs(out["tag_logits"] - oracle["logits"]).max())
    assert err <= 1e-5, err


def test_inspect_shows_the_model_card(models, tmp_path, capsys):
    _spec, prefix, _ids, _ = models["rnn3-emb-meta"]
    engine = tmp_path / "m.onnx"
    assert main(["convert", str(prefix), "-o", str(engine), "--json"]) == 0
    card = json.loads(capsys.readouterr().out)["model"]
    assert card["summary"] == "input_data -> 3x rnn tanh(16) -> logits, probs"
    assert main(["inspect", str(engine), "--json"]) == 0
    assert "3x rnn tanh(16)" in capsys.readouterr().out


def test_unknown_variable_is_named(tf, tmp_path, capsys):
    tf1 = tf.compat.v1
    spec = cm.CharRNNSpec("gru", 1)
    graph = tf.Graph()
    with graph.as_default():
        cm.CharRNNGraph(tf, spec, batch=2, seq=3, training=False)
        tf1.get_variable("rnnlm/attention_scale", [5])
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            prefix = tf1.train.Saver().save(sess, str(tmp_path / "model.ckpt"))
    # with its .meta graph, a variable off the inference path is ignored and counted
    assert main(["convert", prefix, "-o", str(tmp_path / "x.onnx")]) == 0
    from tf2rt import load_engine

    card = load_engine(tmp_path / "x.onnx").metadata["model"]
    assert card["ignored_tensors"] >= 1 and "rnnlm/attention_scale" in card["detected"]["graph"]["variables_ignored"]
    # without a graph, the name-based reader cannot place it: it is left out with a warning naming it
    capsys.readouterr()
    assert main(["convert", prefix, "--no-meta", "-o", str(tmp_path / "y.onnx")]) == 0
    out = capsys.readouterr()
    assert "rnnlm/attention_scale [5]" in out.out + out.err and "Traceback" not in out.err
    card = load_engine(tmp_path / "y.onnx").metadata["model"]
    assert any("rnnlm/attention_scale" in a for a in card["assumptions"])
    # --ignore drops it without a warning; a name the checkpoint lacks is an error
    assert main(["convert", prefix, "--no-meta", "--ignore", "rnnlm/attention_scale", "-o",
                 str(tmp_path / "z.onnx")]) == 0
    card = load_engine(tmp_path / "z.onnx").metadata["model"]
    assert not any("attention_scale" in a for a in card["assumptions"])
    capsys.readouterr()
    assert main(["convert", prefix, "--no-meta", "--ignore", "rnnlm/nope", "-o", str(tmp_path / "w.onnx")]) == 2
    assert "rnnlm/nope" in capsys.readouterr().err


def test_custom_cell_is_named(tf, tmp_path):
    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        with tf1.variable_scope("rnn/my_peephole_cell"):
            tf1.get_variable("w_x", [4, 8])
            tf1.get_variable("w_h", [8, 8])
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            prefix = tf1.train.Saver().save(sess, str(tmp_path / "model.ckpt"))
    from tf2rt import convert

    with pytest.raises(UnsupportedError) as e:
        convert(prefix)
    assert "rnn/my_peephole_cell/w_x" in str(e.value) and "rnn/my_peephole_cell/w_h" in str(e.value)


def test_lstm_cell_peepholes_from_meta(tf, tmp_path):
    spec = cm.CharRNNSpec("lstm_cell", 2, peepholes=True, forget_bias=0.25, seed=21, scale=2.0)
    prefix = cm.write_charrnn(tf, spec, tmp_path / "peep")
    sampler = cm.TFSampler(tf, spec, prefix)
    ids, tf_logits = sampler.greedy(PRIME, 200)
    sampler.close()
    vocab = _vocab(spec.vocab)
    gen = CharRNN(str(prefix), vocab)
    assert gen.generate(vocab.decode(PRIME), 200, greedy=True) == vocab.decode(ids)
    assert np.abs(gen.logits(vocab.decode(PRIME + ids[:-1])) - tf_logits).max() <= 1e-5


def test_lstm_cell_clip_is_refused_by_name(tf, tmp_path):
    """TF clips the cell state; ONNX LSTM's clip is on gate inputs - not the same, so refuse."""
    spec = cm.CharRNNSpec("lstm_cell", 1, cell_clip=3.0, seed=22)
    prefix = cm.write_charrnn(tf, spec, tmp_path / "clip")
    from tf2rt import convert

    with pytest.raises(UnsupportedError) as e:
        convert(prefix)
    assert "cell_clip" in str(e.value)


def test_cudnn_compatible_lstm_names(tf, tmp_path):
    """CudnnCompatibleLSTMCell checkpoints (BasicLSTMCell math, forget_bias 0, own scope name)."""
    spec = cm.CharRNNSpec("lstm", 2, forget_bias=0.0, seed=23)
    rename = lambda n: n.replace("basic_lstm_cell", "cudnn_compatible_lstm_cell")  # noqa: E731
    prefix = cm.write_charrnn(tf, spec, tmp_path / "cudnn", meta=False, rename=rename)
    restored = cm.write_charrnn(tf, spec, tmp_path / "plain", meta=False)  # same seed = same weights
    sampler = cm.TFSampler(tf, spec, restored)
    ids, tf_logits = sampler.greedy(PRIME, 100)
    sampler.close()
    vocab = _vocab(spec.vocab)
    gen = CharRNN(str(prefix), vocab)
    card = gen.engine.metadata["model"]
    assert card["detected"]["rnn"]["layers"][0]["class"] == "CudnnCompatibleLSTMCell"
    assert not any("forget_bias" in a for a in card["assumptions"])  # known: 0 for this cell
    assert np.abs(gen.logits(vocab.decode(PRIME + ids[:-1])) - tf_logits).max() <= 1e-5


def test_corrupt_meta_graph_is_a_clear_error(models, tmp_path, capsys):
    import shutil

    _spec, prefix, _ids, _ = models["gru3-emb-nometa"]
    for f in prefix.parent.iterdir():
        shutil.copy(f, tmp_path / f.name)
    bad = tmp_path / (prefix.name + ".meta")
    bad.write_bytes(b"\x0a\xff\xff\xff\xff\x0f garbage")  # a field claiming far more bytes than exist
    assert main(["convert", str(tmp_path / prefix.name), "-o", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert "MetaGraphDef" in err and "--no-meta" in err and "Traceback" not in err
    assert main(["convert", str(tmp_path / prefix.name), "-o", str(tmp_path / "x.onnx"), "--no-meta"]) == 0


@pytest.mark.parametrize("precision,backend,tol", [("fp32", "reference", 1e-5), ("fp16", "onnxruntime", 2e-2)])
def test_cli_run_converted_engine(models, tmp_path, precision, backend, tol):
    """`tf2rt convert --precision` then `tf2rt run --backend` on npz files, vs TF's logits."""
    spec, prefix, tf_ids, tf_logits = models["gru2-onehot-meta"]
    engine = tmp_path / "m.onnx"
    assert main(["convert", str(prefix), "-o", str(engine), "--precision", precision]) == 0
    seq = np.array([PRIME + tf_ids[:7]], np.int32)
    np.savez(tmp_path / "in.npz", input_data=seq)  # the streaming state inputs are optional (zeros)
    assert main(["run", str(engine), "--inputs", str(tmp_path / "in.npz"), "--outputs", str(tmp_path / "out.npz"),
                 "--backend", backend]) == 0
    logits = np.load(tmp_path / "out.npz")["logits"].reshape(-1, spec.vocab)  # the graph's [batch*time, V]
    assert np.abs(logits - tf_logits[: seq.shape[1]]).max() <= tol * max(1.0, float(np.abs(tf_logits).max()))

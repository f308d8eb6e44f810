"""`tf2rt demo`: convert the bundled char-RNN, generate text, compare with TensorFlow when present.

The bundled model (package data tf2rt/data/charrnn/, linked from examples/charrnn/ in a
checkout) is a TF1 checkpoint + .meta graph of a 2-layer BasicLSTMCell char-RNN trained by
its train.py on the opening of Shakespeare's Coriolanus. No TensorFlow is needed; with TensorFlow installed the demo also
checks that TensorFlow's own graph writes the same greedy text and times both.
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path
from typing import Any

from .argtypes import MAX_LENGTH, int_range, nonneg_int, positive_finite_float



def example_dir() -> Path:
    """Folder of the bundled char-RNN (checkpoint in model/, vocab.json, train.py), shipped as package data."""
    from importlib.resources import files

    return Path(str(files("tf2rt.data") / "charrnn"))


EXAMPLE = example_dir()


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="convert the bundled char-RNN, generate text, and time it against TensorFlow if installed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", default=str(EXAMPLE / "model"), help="TF1 checkpoint (default: the bundled one)")
    p.add_argument("--vocab", default=str(EXAMPLE / "vocab.json"), help="vocabulary JSON (default: bundled)")
    p.add_argument("--start", default="MENENIUS:\n", help="priming text")
    p.add_argument("--length", type=int_range(0, MAX_LENGTH), default=400, help="characters to generate")
    p.add_argument("--temperature", type=positive_finite_float, default=0.8,
                   help="sampling temperature (default 0.8)")
    p.add_argument("--seed", type=nonneg_int, default=1, help="random seed for sampling (default 1)")
    p.add_argument("--out", default=None, help="where to write the engine (default: a temporary directory)")
    p.add_argument("--no-tensorflow", action="store_true", help="skip the TensorFlow comparison")
    p.set_defaults(func=run)


def _say(text: str) -> None:
    print(text, flush=True)


def run(args: argparse.Namespace) -> int:
    import logging

    from ..apps.charrnn import CharRNN, Vocab
    from ..errors import Tf2rtError
    from ..importers import convert
    from ..importers.card import card_lines

    logging.getLogger("tf2rt.convert").setLevel(logging.ERROR)
    model = Path(args.model)
    if not model.exists():
        raise Tf2rtError(f"demo model {model} not found: the bundled model ships in the package "
                         f"({EXAMPLE}); reinstall tf2rt, or pass --model and --vocab")
    out_dir = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="tf2rt_demo_"))
    out_dir.mkdir(parents=True, exist_ok=True)
    engine_path = out_dir / "charrnn.onnx"

    _say(f"== 1. convert {model} (TF1 checkpoint + .meta, no TensorFlow needed)")
    t0 = time.perf_counter()
    engine = convert(model, engine_path, states=True)
    _say(f"   wrote {engine_path} in {time.perf_counter() - t0:.2f} s")
    for line in card_lines(engine.metadata.get("model") or {}):
        _say("   " + line)

    vocab = Vocab.load(args.vocab)
    gen = CharRNN(engine, vocab)
    _say(f"\n== 2. generate {args.length} characters, one engine call per character "
         f"(temperature {args.temperature}, seed {args.seed})\n")
    gen.generate(args.start, 8, greedy=True)  # warm-up: the first call of a session allocates
    t0 = time.perf_counter()
    text = gen.generate(args.start, args.length, temperature=args.temperature, seed=args.seed)
    dt = time.perf_counter() - t0
    _say(args.start + text)
    steps = len(args.start) + args.length - 1
    ours_ms = dt / steps * 1e3
    _say(f"\n   {steps} steps in {dt * 1e3:.0f} ms: {ours_ms:.3f} ms per character ({1e3 / ours_ms:,.0f} chars/s)")

    if args.no_tensorflow:
        return 0
    if importlib.util.find_spec("tensorflow") is None:
        _say("\n== 3. TensorFlow is not installed: skipping the comparison (pip install tensorflow to see it)")
        return 0
    _say("\n== 3. the same model in TensorFlow (TF1 session, one character per call, as char-rnn samplers do)")
    greedy = gen.generate(args.start, 200, greedy=True)
    tf_text, tf_ms = _tensorflow_greedy(model, vocab, args.start, 200)
    same = tf_text == greedy
    _say(f"   greedy 200 characters identical to TensorFlow's: {'yes' if same else 'NO'}")
    t0 = time.perf_counter()
    gen.generate(args.start, 200, greedy=True)
    ours_greedy_ms = (time.perf_counter() - t0) / (len(args.start) + 199) * 1e3
    _say(f"   per character: tf2rt {ours_greedy_ms:.3f} ms, TensorFlow {tf_ms:.3f} ms "
         f"-> tf2rt is {tf_ms / ours_greedy_ms:.1f}x faster")
    return 0 if same else 1


def _tensorflow_greedy(model: Path, vocab: Any, start: str, length: int) -> tuple[str, float]:
    """Greedy text and ms per step from TensorFlow running the bundled model's graph."""
    import os

    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    from ..importers.tf1_rnn import checkpoint_prefix

    tf.get_logger().setLevel("ERROR")
    spec = importlib.util.spec_from_file_location("charrnn_train", EXAMPLE / "train.py")
    train = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    assert spec is not None and spec.loader is not None
    spec.loader.exec_module(train)
    prefix = checkpoint_prefix(model)
    shapes = dict(tf.train.list_variables(str(prefix)))
    hidden = shapes["rnnlm/softmax_w"][0]
    embed = shapes["rnnlm/embedding"][1]
    layers = sum(1 for n in shapes if n.endswith("basic_lstm_cell/kernel"))
    tf1 = tf.compat.v1
    g = tf.Graph()
    with g.as_default():
        m = train.build(tf, len(vocab), 1, 1, embed, hidden, layers)
        sess = tf1.Session(graph=g)
        tf1.train.Saver(var_list=tf1.trainable_variables()).restore(sess, str(prefix))
    init = tf.nest.flatten(m["initial_state"])
    final = tf.nest.flatten(m["final_state"])
    state = [np.zeros((1, hidden), np.float32) for _ in init]
    ids = vocab.encode(start)
    out: list[int] = []
    t0 = time.perf_counter()
    logits = None
    for c in ids:
        res = sess.run([m["logits"]] + final, {m["input_data"]: [[c]], **dict(zip(init, state))})
        logits, state = res[0], res[1:]
    for t in range(length):
        nxt = int(np.argmax(logits))
        out.append(nxt)
        if t + 1 < length:
            res = sess.run([m["logits"]] + final, {m["input_data"]: [[nxt]], **dict(zip(init, state))})
            logits, state = res[0], res[1:]
    ms = (time.perf_counter() - t0) / (len(ids) + length - 1) * 1e3
    sess.close()
    return vocab.decode(out), ms



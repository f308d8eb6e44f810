"""`tf2rt charrnn MODEL --vocab VOCAB --start TEXT --length N`: streaming char-RNN generation."""

from __future__ import annotations

import argparse
import sys
import time

from .argtypes import MAX_LENGTH, int_range, nonneg_int, positive_finite_float, positive_int
from .bench import THREADS_HELP, ort_threads


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "charrnn",
        help="generate text with a char-RNN, one character per call with carried state",
        description="Generate characters with a char-RNN engine (or any model `tf2rt convert` accepts), "
        "one character per engine call with the recurrent state carried between calls, as TensorRT's "
        "sampleCharRNN does. The vocabulary is a JSON file {char: id}, a file with one character per "
        "line, or (--vocab-text) the training text's distinct characters.",
    )
    p.add_argument("model", help="engine .onnx, or a checkpoint / SavedModel / .keras / .h5 to convert")
    v = p.add_mutually_exclusive_group(required=True)
    v.add_argument("--vocab", help="vocabulary: JSON {char: id} or list, or one character per line")
    v.add_argument("--vocab-text", help="build the vocabulary from this training text")
    p.add_argument("--vocab-order", choices=["sorted", "frequency"], default="sorted",
                   help="order of --vocab-text characters (default sorted by code point)")
    p.add_argument("--start", default="\n", help="priming text (default: a newline)")
    p.add_argument("--length", type=int_range(0, MAX_LENGTH), default=200,
                   help=f"characters to generate (default 200, at most {MAX_LENGTH})")
    m = p.add_mutually_exclusive_group()
    m.add_argument("--greedy", action="store_true", help="always take the most likely character (top-1)")
    m.add_argument("--temperature", type=positive_finite_float, default=1.0, help="sampling temperature (default 1.0)")
    p.add_argument("--top-k", type=positive_int, default=None, help="sample only among the k most likely characters")
    p.add_argument("--seed", type=nonneg_int, default=None, help="random seed for sampling")
    p.add_argument("--backend", default="onnxruntime", help="backend (onnxruntime, reference, cuda)")
    p.add_argument("--threads", type=ort_threads, default=None, help=THREADS_HELP)
    p.add_argument("--precision", choices=["fp32", "fp16"], default="fp32",
                   help="precision when MODEL is converted on the fly")
    p.add_argument("--forget-bias", type=float, default=None, help="as for `tf2rt convert`")
    p.add_argument("--no-prime", action="store_true", help="print only the generated text, not --start")
    p.add_argument("--stats", action="store_true", help="print per-step time to stderr")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging

    from ..apps.charrnn import CharRNN, Vocab

    logging.getLogger("tf2rt.convert").setLevel(logging.ERROR)
    if args.vocab:
        vocab = Vocab.load(args.vocab)
    else:
        from pathlib import Path

        from ..limits import max_bytes, read_capped

        text = read_capped(Path(args.vocab_text), max_bytes(), "--vocab-text file").decode("utf-8", "replace")
        vocab = Vocab.from_text(text, args.vocab_order)
    options = {}
    if args.forget_bias is not None:
        options["forget_bias"] = args.forget_bias
    backend_options = {"threads": args.threads} if args.threads is not None else {}
    gen = CharRNN(args.model, vocab, backend=args.backend, precision=args.precision,
                  backend_options=backend_options, **options)
    if args.stats and args.backend == "cuda":  # kernel builds and graph captures are not per-step time
        gen.generate(args.start, 1, greedy=True)
    t0 = time.perf_counter()
    text = gen.generate(args.start, args.length, temperature=args.temperature, seed=args.seed,
                        greedy=args.greedy, top_k=args.top_k)
    dt = time.perf_counter() - t0
    sys.stdout.write(text if args.no_prime else args.start + text)
    sys.stdout.write("\n")
    if args.stats:
        steps = len(args.start) + max(args.length - 1, 0)
        print(f"{steps} steps in {dt * 1e3:.1f} ms: {dt / max(steps, 1) * 1e3:.3f} ms/step "
              f"({args.backend}: {gen.path})", file=sys.stderr)
    return 0

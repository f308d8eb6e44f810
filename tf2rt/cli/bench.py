"""`tf2rt bench ENGINE`: latency (min/median/p90/p99) and throughput on a backend."""

from __future__ import annotations

import argparse

from .argtypes import nonneg_int, positive_int
from .jsonout import add_json_option, check_json_target, emit_json, report_stream


def ort_threads(text: str) -> "int | str":
    """--threads: a positive integer, "auto" (by workload) or "default" (onnxruntime's choice)."""
    if text.strip().lower() in ("auto", "default"):
        return text.strip().lower()
    return positive_int(text)


ort_threads.__name__ = "thread count"
THREADS_HELP = ("onnxruntime intra-op threads: N, 'auto' (1 thread without spinning for small graphs such as "
                "a char-RNN step, onnxruntime's default for larger ones) or 'default' (onnxruntime's choice); "
                "default: $TF2RT_ORT_THREADS, else auto")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench", help="measure an engine's latency and throughput",
        description="Run the engine repeatedly on random inputs (or --inputs) and report latency "
                    "min/median/p90/p99 in ms and throughput (items per second at the median).")
    p.add_argument("engine", help="engine file")
    p.add_argument("--backend", default="onnxruntime", help="onnxruntime (default), reference or cuda")
    p.add_argument("--iterations", type=positive_int, default=200, help="timed runs (default 200)")
    p.add_argument("--warmup", type=nonneg_int, default=20, help="untimed runs first (default 20)")
    p.add_argument("--batch", type=positive_int, default=None, help="size of a dynamic first dimension")
    p.add_argument("--threads", type=ort_threads, default=None, help=THREADS_HELP)
    p.add_argument("--io-binding", action="store_true", help="use onnxruntime IOBinding")
    p.add_argument("--no-spinning", action="store_true",
                   help="onnxruntime: idle threads do not spin (better on a busy machine)")
    p.add_argument("--inputs", help=".npz with inputs keyed by tensor name (default: random)")
    add_json_option(p, "the statistics (latency in ms, throughput, threads)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine import load_engine
    from ..engine.benchmark import benchmark
    from ..engine.inputs import check_names, load_npz
    from ..errors import Tf2rtError

    if args.iterations < 1 or args.warmup < 0:
        raise Tf2rtError("--iterations must be >= 1 and --warmup >= 0")
    inputs = [args.engine, *([args.inputs] if args.inputs else [])]
    check_json_target(args, inputs)  # refuse a bad output path (or an input) before measuring anything
    engine = load_engine(args.engine)
    feeds = None
    if args.inputs:
        feeds = load_npz(args.inputs)
        check_names(engine, feeds)
    options = {}
    if args.threads is not None:
        options["threads"] = args.threads
    if args.io_binding:
        options["io_binding"] = True
    if args.no_spinning:
        options["spinning"] = False
    stats = benchmark(engine, args.backend, args.iterations, args.warmup, args.batch, feeds, **options)
    out = report_stream(args)
    print(f"{args.engine} on {args.backend} ({stats['precision']}, batch {stats['batch']}, "
          f"{stats['iterations']} iterations, timer {stats['timer']})", file=out)
    print("| min ms | median ms | p90 ms | p99 ms | throughput /s |", file=out)
    print("|---|---|---|---|---|", file=out)
    print(f"| {stats['min_ms']:.4f} | {stats['median_ms']:.4f} | {stats['p90_ms']:.4f} | {stats['p99_ms']:.4f} "
          f"| {stats['throughput_per_s']:.1f} |", file=out)
    threading = stats.get("threading")
    if threading:
        n = threading["threads"]
        print(f"  threads: {'onnxruntime default' if n is None else n}, spinning "
              f"{'on' if threading['spinning'] else 'off'} - {threading['reason']}", file=out)
    for line in stats.get("providers", []):  # what ran where (cuda: engine, mode and floors per stack)
        print(f"  {line}", file=out)
    emit_json(args, {"engine": args.engine, **stats}, inputs)
    return 0

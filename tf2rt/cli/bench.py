"""`tf2rt bench ENGINE`: latency (min/median/p90/p99) and throughput on a backend."""

from __future__ import annotations

import argparse
import json

from .argtypes import nonneg_int, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench", help="measure an engine's latency and throughput",
        description="Run the engine repeatedly on random inputs (or --inputs) and report latency "
                    "min/median/p90/p99 in ms and throughput (items per second at the median).")
    p.add_argument("engine", help="engine file")
    p.add_argument("--backend", default="onnxruntime")
    p.add_argument("--iterations", type=positive_int, default=200)
    p.add_argument("--warmup", type=nonneg_int, default=20)
    p.add_argument("--batch", type=positive_int, default=None, help="size of a dynamic first dimension")
    p.add_argument("--threads", type=positive_int, default=None, help="intra-op threads (onnxruntime)")
    p.add_argument("--io-binding", action="store_true", help="use onnxruntime IOBinding")
    p.add_argument("--no-spinning", action="store_true",
                   help="onnxruntime: idle threads do not spin (better on a busy machine)")
    p.add_argument("--inputs", help=".npz with inputs keyed by tensor name (default: random)")
    p.add_argument("--json", metavar="OUT", help="write the results as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine import load_engine
    from ..engine.benchmark import benchmark
    from ..engine.inputs import check_names, load_npz
    from ..errors import Tf2rtError

    if args.iterations < 1 or args.warmup < 0:
        raise Tf2rtError("--iterations must be >= 1 and --warmup >= 0")
    from ..outputs import check_not_input, check_writable

    inputs = [args.engine, *([args.inputs] if args.inputs else [])]
    if args.json:  # refuse a bad output path (or an input) before measuring anything
        check_not_input(check_writable(args.json, "--json"), inputs, "--json")
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
    print(f"{args.engine} on {args.backend} ({stats['precision']}, batch {stats['batch']}, "
          f"{stats['iterations']} iterations, timer {stats['timer']})")
    print("| min ms | median ms | p90 ms | p99 ms | throughput /s |")
    print("|---|---|---|---|---|")
    print(f"| {stats['min_ms']:.4f} | {stats['median_ms']:.4f} | {stats['p90_ms']:.4f} | {stats['p99_ms']:.4f} "
          f"| {stats['throughput_per_s']:.1f} |")
    for line in stats.get("providers", []):  # what ran where (cuda: engine, mode and floors per stack)
        print(f"  {line}")
    if args.json:
        from ..outputs import write_text

        write_text(args.json, json.dumps({"engine": args.engine, **stats}, indent=2), inputs, "--json")
    return 0

"""Whole engines on the cuda backend against cuDNN, both replayed from CUDA graphs.

Run on an NVIDIA GPU:

    python benchmarks/bench_cuda_engine.py --out benchmarks/results/cuda_engine_h100.md

Each engine is built the way a user builds one: a `Network` with an RNNv2 layer (2 layers,
input size = hidden, batch-major input x [B, T, H], outputs y [B, T, H], h_n and c_n
[B, 2, H]) whose weights come from a `torch.nn.LSTM`/`GRU` through
`tf2rt.layouts.torch.from_torch`, `build_engine(net, precision)`, `engine.runner("cuda")`
(fp16 engines with rnn_precision="fp16": recurrent stacks on fp16 tensor cores) and timed
with `runner.benchmark` (CUDA events around the replay of the whole captured call).

cuDNN does the same computation in PyTorch, captured in a CUDA graph in the same process:
the same module (cast to fp16 for fp16 rows) with batch_first=True, x cast to the module's
type and the outputs cast back to float32 and h_n/c_n given batch-major (as views, as the
engine gives them). "stack" is the engine's recurrent stack alone (same CUDA-event timing of
its own graph), so "engine - stack" is what the ops around it cost. Grid: batch 1/8/64 x
hidden 256/512/1024 x T 1/100 x fp32/fp16 x LSTM/GRU, plus the bundled char-RNN
(examples/charrnn: embedding -> 2 LSTM -> dense -> softmax, one step with its state) against
the same engine graph run with cuDNN for the recurrent stack (runner prefer="cudnn"), and a
Keras GRU classifier (benchmarks/assets, made by make_keras_gru_classifier.py) against the
same model in PyTorch. `--row` (and always for the Keras classifier) also times each
engine with its stack on the row kernel (runner prefer="row"), where that kernel applies.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LAYERS = 2


def _times(fn, reps: int, warmup: int = 10) -> list[float]:
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        out.append(a.elapsed_time(b) * 1000.0)
    return out


def kernel_profile(fn, reps: int = 3) -> list[dict]:
    """The GPU kernels and copies of one call of `fn` (eager, so each is its own launch):
    name, launches a call and µs a call, longest first (torch.profiler, CUDA activity)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad():
        fn()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(reps):
                fn()
            torch.cuda.synchronize()
    rows = []
    for e in prof.key_averages():
        us = getattr(e, "device_time_total", None)
        us = e.cuda_time_total if us is None else us
        if us > 0:
            rows.append({"kernel": e.key[:90], "launches": e.count / reps, "us": us / reps})
    return sorted(rows, key=lambda r: -r["us"])


def build(cell: str, B: int, H: int, T: int, precision: str, seed: int = 0, state: bool = False):
    """(engine, torch module) with the same weights; state: the engine also takes initial
    states h0 (and c0) [B, layers, H] (the RNNv2 layer's hidden_state / cell_state)."""
    import torch

    from tf2rt import Network, build_engine
    from tf2rt.layouts.torch import from_torch

    torch.manual_seed(seed)
    mod = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](H, H, num_layers=LAYERS, batch_first=True)
    stack = from_torch(mod.state_dict(), cell.upper())
    net = Network(f"{cell}{LAYERS}_h{H}")
    x = net.add_input("x", "float32", (B, T, H))
    rnn = net.add_rnn_v2(x, LAYERS, H, T, cell, name="rnn")
    if state:
        rnn.hidden_state = net.add_input("h0", "float32", (B, LAYERS, H))
        if cell == "lstm":
            rnn.cell_state = net.add_input("c0", "float32", (B, LAYERS, H))
    for i, layer in enumerate(stack):
        rnn.set_cell(i, layer[0])
    for j in range(rnn.num_outputs):
        net.mark_output(rnn.get_output(j), ("y", "h_n", "c_n")[j])
    return build_engine(net, precision), mod


def state_names(cell: str) -> tuple[str, ...]:
    """The initial-state inputs of an engine built with state=True."""
    return ("h0", "c0") if cell == "lstm" else ("h0",)


def state_feeds(cell: str, B: int, H: int, rng: np.random.Generator) -> dict:
    """Random initial states [B, layers, H] for an engine built with state=True."""
    return {n: (0.5 * rng.standard_normal((B, LAYERS, H))).astype(np.float32) for n in state_names(cell)}


def cudnn_call(mod, cell: str, x, precision: str, states: tuple = ()):
    """The same computation in PyTorch (cuDNN), returning the engine's outputs; states: the
    engine's initial states [B, layers, H] (h0, and c0 for an LSTM), made layer-major here."""
    import torch

    dt = torch.float16 if precision == "fp16" else torch.float32
    mod = mod.to("cuda", dt).eval()

    def call():
        with torch.no_grad():
            hx = tuple(s.transpose(0, 1).contiguous().to(dt) for s in states)
            y, st = mod(x.to(dt), (hx if cell == "lstm" else hx[0]) if hx else None)
            hs = st if cell == "lstm" else (st,)
            outs = [y] + [s.transpose(0, 1) for s in hs]
            return [o.float() for o in outs]  # no-ops in fp32

    return call


def measure_row(engine, feeds: dict, want: list, reps: int, **runner_options) -> dict:
    """The engine with its recurrent stack on the row kernel (runner prefer="row"): time,
    largest difference from cuDNN's outputs, copies around the stack; {} where the row
    kernel does not apply."""
    runner = engine.runner("cuda", prefer="row", **runner_options)
    try:
        got = runner.run(feeds)
        if runner.describe()["recurrent"][0].get("engine") != "row":
            return {}
        names = [o for o in ("y", "h_n", "c_n", "classes") if o in got]
        return {"row_us": statistics.median(runner.benchmark(feeds, reps, 10)) * 1e6,
                "row_err": max(float(np.abs(got[k] - w).max()) for k, w in zip(names, want)),
                "row_copies": list(runner.executor.copies)}
    finally:
        runner.close()


def measure(cell: str, B: int, H: int, T: int, precision: str, reps: int, profile: bool = False,
            row: bool = False, state: bool = False) -> dict:
    import torch

    from tf2rt.backends.cuda.cudagraph import CapturedCall

    engine, mod = build(cell, B, H, T, precision, state=state)
    rng = np.random.default_rng(1)
    feeds = {"x": rng.standard_normal((B, T, H)).astype(np.float32)}
    names = state_names(cell)
    if state:
        feeds.update(state_feeds(cell, B, H, rng))
    runner = engine.runner("cuda", rnn_precision="fp16" if precision == "fp16" else None)
    warm_up_gpu(0.2)  # building the engine left the GPU idle: its clocks drop between shapes
    got = runner.run(feeds)
    ours = statistics.median(runner.benchmark(feeds, reps, 10)) * 1e6
    ex = runner.executor
    copies = list(ex.copies)  # copies the captured call makes around the stacks
    chain = ex.chains[0]
    run_dt = torch.float16 if precision == "fp16" else torch.float32
    xs = torch.randn(T, B, H, device="cuda", dtype=run_dt)
    hs = [torch.randn(LAYERS, B, H, device="cuda", dtype=run_dt) for _ in names] if state else []
    stack_us = statistics.median(_times(CapturedCall(lambda: chain.stack(xs, *hs)), reps))
    # the stack given x as the engine has it (fp32): with the conversion an fp16 stack makes
    x32 = xs.float()
    stack_x32_us = stack_us if run_dt == torch.float32 else statistics.median(
        _times(CapturedCall(lambda: chain.stack(x32, *hs)), reps))
    x = torch.from_numpy(feeds["x"]).cuda()
    states = tuple(torch.from_numpy(feeds[n]).cuda() for n in names) if state else ()
    call = cudnn_call(mod, cell, x, precision, states)
    want = [o.cpu().numpy() for o in call()]
    cud = statistics.median(_times(CapturedCall(call), reps))
    err = max(float(np.abs(got[k] - w).max()) for k, w in zip(("y", "h_n", "c_n"), want))
    d = runner.describe()["recurrent"][0]
    kernels = {}
    if profile:  # what one call launches: the engine's ops and the stack alone
        inputs = runner._prepare(runner.check_feeds(feeds))["inputs"]
        kernels = {"engine": kernel_profile(lambda: ex(inputs)), "stack": kernel_profile(lambda: chain.stack(xs, *hs))}
    runner.close()
    extra = measure_row(engine, feeds, want, reps, rnn_precision="fp16" if precision == "fp16" else None) \
        if row and T > 1 else {}
    return {**extra, "kernels": kernels, "state": state, "cell": cell, "batch": B, "hidden": H, "T": T, "precision": precision, "engine_us": ours,
            "stack_us": stack_us, "stack_x32_us": stack_x32_us, "cudnn_us": cud, "speedup": cud / ours, "around_us": ours - stack_us,
            "copies": copies, "stack_engine": d.get("engine"),
            "mode": d.get("mode") or ("L2" if d.get("engine") == "step" and d.get("weights") else None), "max_abs_err": err,
            "output_targets": d.get("output_targets"), "outputs_in_place": d.get("outputs_in_place"),
            "measured_us": d.get("measured_us")}


def measure_charrnn(reps: int) -> dict:
    """The bundled char-RNN, one character per call with its state, B=1."""
    from tf2rt.apps.charrnn.generate import load_model

    engine = load_model(Path(__file__).resolve().parents[1] / "examples" / "charrnn" / "model")
    feeds = {}
    for s in engine.inputs:
        shape = [1 if (d is None or (isinstance(d, int) and d < 0) or isinstance(d, str)) else d for d in s.shape]
        feeds[s.name] = np.zeros(shape, s.np_dtype)
    out = {}
    res = {}
    for name, opts in (("engine", {}), ("cudnn", {"prefer": "cudnn"})):
        r = engine.runner("cuda", **opts)
        res[name] = r.run(feeds)
        out[name] = statistics.median(r.benchmark(feeds, reps, 10)) * 1e6
        out[name + "_copies"] = list(r.executor.copies)
        out[name + "_describe"] = r.describe()["recurrent"]
        r.close()
    out["max_abs_err"] = max(float(np.abs(res["engine"][k] - res["cudnn"][k]).max()) for k in res["engine"])
    out["speedup"] = out["cudnn"] / out["engine"]
    return out


def measure_keras_gru(reps: int, batches=(1, 64, 256)) -> list[dict]:
    """The Keras GRU classifier (benchmarks/make_keras_gru_classifier.py: x [B, 50, 64] ->
    GRU(128) -> Dense(10, softmax)) against the same model in PyTorch (nn.GRU, batch_first,
    + Linear + softmax, from the Keras weights) in a CUDA graph."""
    import torch

    from tf2rt.backends.cuda.cudagraph import CapturedCall
    from tf2rt.engine import load_engine

    assets = Path(__file__).resolve().parent / "assets"
    engine = load_engine(assets / "keras_gru_classifier.onnx")
    w = np.load(assets / "keras_gru_classifier.npz")
    H = w["recurrent_kernel"].shape[0]
    z, r, n = slice(0, H), slice(H, 2 * H), slice(2 * H, 3 * H)
    torch_order = lambda a: np.concatenate([a[..., r], a[..., z], a[..., n]], -1)  # noqa: E731 - Keras z,r,h -> torch r,z,n
    gru = torch.nn.GRU(w["kernel"].shape[0], H, batch_first=True)
    lin = torch.nn.Linear(H, w["dense_kernel"].shape[1])
    with torch.no_grad():
        gru.weight_ih_l0.copy_(torch.from_numpy(torch_order(w["kernel"]).T.copy()))
        gru.weight_hh_l0.copy_(torch.from_numpy(torch_order(w["recurrent_kernel"]).T.copy()))
        gru.bias_ih_l0.copy_(torch.from_numpy(torch_order(w["bias"][0])))
        gru.bias_hh_l0.copy_(torch.from_numpy(torch_order(w["bias"][1])))
        lin.weight.copy_(torch.from_numpy(w["dense_kernel"].T.copy()))
        lin.bias.copy_(torch.from_numpy(w["dense_bias"]))
    gru, lin = gru.cuda().eval(), lin.cuda().eval()
    rows = []
    for B in batches:
        x = np.random.default_rng(B).standard_normal((B, 50, w["kernel"].shape[0])).astype(np.float32)
        runner = engine.runner("cuda")
        got = runner.run({"input_layer": x})["classes"]
        ours = statistics.median(runner.benchmark({"input_layer": x}, reps, 10)) * 1e6
        xd = torch.from_numpy(x).cuda()

        def call():
            with torch.no_grad():
                y, _ = gru(xd)
                return torch.softmax(lin(y[:, -1]), -1)

        want = call().cpu().numpy()
        peer = statistics.median(_times(CapturedCall(call), reps))
        row = measure_row(engine, {"input_layer": x}, [want], reps)
        rows.append({**row, "batch": B, "engine_us": ours, "cudnn_us": peer, "speedup": peer / ours,
                     "max_abs_err": float(np.abs(got - want).max()), "copies": list(runner.executor.copies),
                     "describe": runner.describe()["recurrent"]})
        runner.close()
    return rows


def _row_cell(r: dict) -> str:
    """The row-kernel column: time, speed-up over cuDNN, error and copies, or "-"."""
    if "row_us" not in r:
        return "-"
    return (f"{r['row_us']:.1f} ({r['cudnn_us'] / r['row_us']:.2f}x, err {r['row_err']:.1e}, "
            f"{len(r['row_copies'])} copies)")


def to_markdown(rows: list[dict], meta: dict, char: dict | None, keras_gru: list | None = None) -> str:
    lines = [f"# Whole engines on the cuda backend vs cuDNN in a CUDA graph — {meta['gpu']}", "",
             f"{meta['date']}; torch {meta['torch']}, cuDNN {meta['cudnn']}. Command: `{meta['command']}`", "",
             "Times in µs, medians of CUDA-event-timed replays (inputs on the GPU). engine = `runner.benchmark` "
             "of an engine built with `build_engine` from a `Network` (2 layers, weights from torch via "
             "`from_torch`, batch-major x [B, T, H], outputs y, h_n, c_n); stack = its recurrent stack alone "
             "(given x in its own type; fp32 x = given the engine's fp32 x, which an fp16 stack converts first); "
             "cuDNN = torch.nn.LSTM/GRU (batch_first, same casts) in a CUDA graph; speedup = cuDNN / engine; "
             "copies = launches the engine's call makes around its stack (layout or type copies); state = "
             "whether the engine takes initial states h0/c0 (given to cuDNN too; without, both start from zeros).", "",
             "| cell | prec | B | H | T | state | engine | stack | stack, fp32 x | engine − stack | cuDNN | speedup | stack engine "
             "| copies | max abs err | row kernel |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['cell']} | {r['precision']} | {r['batch']} | {r['hidden']} | {r['T']} | "
                     f"{'h0' if r.get('state') else '-'} | {r['engine_us']:.1f} | {r['stack_us']:.1f} | {r.get('stack_x32_us', r['stack_us']):.1f} | "
                     f"{r['around_us']:+.1f} | {r['cudnn_us']:.1f} | "
                     f"{r['speedup']:.2f}x | {r['stack_engine']} {r.get('mode') or ''} | {len(r['copies'])} | "
                     f"{r['max_abs_err']:.1e} | {_row_cell(r)} |")
    if rows:
        sp = [r["speedup"] for r in rows]
        ar = [r["around_us"] for r in rows]
        lines += ["", f"{len(rows)} shapes: speedup min {min(sp):.2f}x, median {statistics.median(sp):.2f}x, "
                  f"max {max(sp):.2f}x; {sum(s >= 1.0 for s in sp)} of {len(sp)} at least as fast as cuDNN; "
                  f"engine − stack max {max(ar):+.1f} µs, median {statistics.median(ar):+.1f} µs."]
    for r in rows:
        for what, ks in (r.get("kernels") or {}).items():
            lines += ["", f"### Kernels of one eager call: {r['cell']} {r['precision']} B={r['batch']} "
                      f"H={r['hidden']} T={r['T']}, {what}", "", "| kernel | launches | µs |", "|---|---|---|"]
            lines += [f"| `{k['kernel']}` | {k['launches']:g} | {k['us']:.1f} |" for k in ks]
    if char:
        lines += ["", "## char-RNN (examples/charrnn), one character per call with its state, batch 1", "",
                  f"engine {char['engine']:.1f} µs, the same engine with cuDNN for the recurrent stack "
                  f"(runner prefer=\"cudnn\") {char['cudnn']:.1f} µs: {char['speedup']:.2f}x; "
                  f"copies {len(char['engine_copies'])}; outputs differ by at most {char['max_abs_err']:.1e}."]
    if keras_gru:
        lines += ["", "## Keras GRU classifier (x [B, 50, 64] -> GRU(128) -> Dense(10, softmax), fp32)", "",
                  "Engine converted from a .keras file (benchmarks/make_keras_gru_classifier.py); cuDNN = the same "
                  "model in PyTorch (nn.GRU batch_first + Linear + softmax, the Keras weights) in a CUDA graph.", "",
                  "| batch | tf2rt engine | cuDNN in a CUDA graph | speed-up | stack engine | copies | max abs err "
                  "| row kernel |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in keras_gru:
            d = (r["describe"] or [{}])[0]
            lines.append(f"| {r['batch']} | {r['engine_us']:.1f} | {r['cudnn_us']:.1f} | {r['speedup']:.2f}x | "
                         f"{d.get('engine')} {d.get('mode') or ''} | {len(r['copies'])} | {r['max_abs_err']:.1e} | "
                         f"{_row_cell(r)} |")
    return "\n".join(lines) + "\n"


def grid_arguments(ap: argparse.ArgumentParser, out: str, batches: str) -> None:
    """The options of a benchmark over the grid of cells, batches, sizes and precisions."""
    ap.add_argument("--out", default=out)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--cells", default="lstm,gru")
    ap.add_argument("--batches", default=batches)
    ap.add_argument("--hiddens", default="256,512,1024")
    ap.add_argument("--precisions", default="fp32,fp16")
    ap.add_argument("--state", default="0", help="engines without (0) and/or with (1) initial-state inputs h0/c0, "
                    "e.g. 0,1 (a one-step call from a zero state reads no recurrent weights)")


def warm_up_gpu(seconds: float = 0.5) -> None:
    """Keep the GPU busy for `seconds` first: a run's first shape was otherwise timed while
    the clocks were still rising (an H100's first one-step row once took 19.1 µs against
    11.8 later in the same build)."""
    import torch

    a = torch.randn(4096, 4096, device="cuda")
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(20):
            a = torch.tanh(a @ a * 1e-3)
        torch.cuda.synchronize()


def gpu_meta(script: str, argv: list[str] | None) -> dict:
    """The GPU, date, versions and command of a run (TF32 turned off for the peers' fp32),
    after warming the GPU up (warm_up_gpu)."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    warm_up_gpu()
    return {"gpu": torch.cuda.get_device_name(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "torch": torch.__version__, "cudnn": torch.backends.cudnn.version(),
            "command": f"python benchmarks/{script} " + " ".join(argv if argv is not None else sys.argv[1:])}


def report_head(title: str, meta: dict, intro: str) -> list[str]:
    """The first lines of a results file: title with the GPU, date, torch and command, intro."""
    return [f"# {title} — {meta['gpu']}", "", f"{meta['date']}; torch {meta['torch']}. Command: `{meta['command']}`",
            "", intro, ""]


def write_report(path: str, lines: list[str]) -> None:
    """Write a results file (its folder made where missing)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    grid_arguments(ap, "benchmarks/results/cuda_engine.md", "1,8,64")
    ap.add_argument("--steps", default="1,100")
    ap.add_argument("--no-charrnn", action="store_true")
    ap.add_argument("--no-keras", action="store_true", help="skip the Keras GRU classifier")
    ap.add_argument("--row", action="store_true",
                    help="also time each engine with its stack on the row kernel (runner prefer=\"row\"), where it applies")
    ap.add_argument("--profile", action="store_true",
                    help="list the kernels of one eager call of each engine and of its stack alone")
    ap.add_argument("--merge", nargs="*", default=[], help="JSON results of other runs to put in the same table")
    args = ap.parse_args(argv)

    meta = gpu_meta("bench_cuda_engine.py", argv)
    rows = []
    for m in args.merge:
        rows += json.loads(Path(m).read_text())["rows"]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    char = None
    keras_gru = None

    def save() -> None:
        out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows, "charrnn": char,
                                                        "keras_gru": keras_gru}, indent=1, default=str))
        out.write_text(to_markdown(rows, meta, char, keras_gru))

    for cell in args.cells.split(","):
        for prec in args.precisions.split(","):
            for B in map(int, args.batches.split(",")):
                for H in map(int, args.hiddens.split(",")):
                    for T, st in ((t, s) for t in map(int, args.steps.split(","))
                                  for s in map(int, args.state.split(","))):
                        try:
                            r = measure(cell, B, H, T, prec, args.reps, args.profile, args.row, bool(st))
                        except Exception as e:  # report and go on
                            print(f"{cell} {prec} B={B} H={H} T={T} state={st}: {type(e).__name__}: {e}", flush=True)
                            continue
                        rows.append(r)
                        print(f"{cell} {prec} B={B} H={H} T={T} state={st}: engine {r['engine_us']:.1f} stack {r['stack_us']:.1f} "
                              f"cudnn {r['cudnn_us']:.1f} ({r['speedup']:.2f}x) copies {r['copies']} "
                              f"{r['stack_engine']} err {r['max_abs_err']:.1e} targets {r['output_targets']} "
                              f"in place {r['outputs_in_place']} first call {r['measured_us']}", flush=True)
                        save()
    if not args.no_charrnn:
        try:
            char = measure_charrnn(args.reps)
            print("charrnn", {k: v for k, v in char.items() if not k.endswith("describe")}, flush=True)
        except Exception as e:
            print(f"charrnn: {type(e).__name__}: {e}", flush=True)
    if not args.no_keras:
        try:
            keras_gru = measure_keras_gru(args.reps)
            print("keras gru", [{k: v for k, v in r.items() if k != "describe"} for r in keras_gru], flush=True)
        except Exception as e:
            print(f"keras gru: {type(e).__name__}: {e}", flush=True)
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())

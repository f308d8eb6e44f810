"""Char-RNN generation on a GPU: tf2rt's decoder against PyTorch cuDNN, same process.

Run on an NVIDIA GPU:

    python benchmarks/bench_cuda_charrnn.py --out benchmarks/results/cuda_charrnn_h100.md

Models: the bundled char-RNN (examples/charrnn: embedding 65x32 -> 2 x LSTM 192 -> dense
65) through the app a user calls (`CharRNN(..., backend="cuda").generate`), and a larger
one with random weights (embedding 65x512 -> 2 x LSTM 512 -> dense 65) through the
runner-level decoder (`DecodeLoop`). Greedy generation, batch 1, characters per second of
wall time for the whole `generate` call (prompt of 15 characters included).

Peers, built from the same weights in the same process:
- "cuDNN graph/step": torch.nn.Embedding -> torch.nn.LSTM (cuDNN) -> torch.nn.Linear ->
  argmax, one CUDA graph per character; the token and the state stay on the device and
  each character's graph is replayed without waiting for the host (the fastest way to
  drive cuDNN one step at a time).
- "cuDNN graph/step + host": the same graph, the token read on the host after each step
  (what a sampling loop on the host does).
- "LSTMCell graph/step": the same per-character graph with one torch.nn.LSTMCell per layer
  (PyTorch's fused cell kernels instead of cuDNN's RNN API), for context.
- "tf2rt step()": the app's per-character path (streaming session, logits to the host,
  choice in numpy), for context.
The texts of all greedy runs must be identical.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_cuda_engine import gpu_meta  # noqa: E402
PROMPT = "First Citizen:\n"


class TorchCharRNN:
    """The same model in PyTorch: one CUDA graph per character, state and token on device.
    cells=False: the stack is torch.nn.LSTM (cuDNN); cells=True: one torch.nn.LSTMCell per
    layer (PyTorch's own fused cell kernels, no cuDNN)."""

    def __init__(self, table, specs, kernel, bias, cells=False):
        import torch

        from tf2rt.backends.cuda.fallback import CudnnStack
        from tf2rt.backends.cuda.rnn import problem_for

        dev = torch.device("cuda")
        self.emb = torch.nn.Embedding.from_pretrained(torch.from_numpy(table)).to(dev)
        self.lstm = CudnnStack(problem_for(specs, 1, 1, "float32"), [s.weights for s in specs], device=dev).module
        self.cells = None
        if cells:  # the same weights, one LSTMCell per layer
            self.cells = []
            for i in range(self.lstm.num_layers):
                cell = torch.nn.LSTMCell(self.lstm.input_size if i == 0 else self.lstm.hidden_size,
                                         self.lstm.hidden_size).to(dev)
                with torch.no_grad():
                    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                        getattr(cell, name).copy_(getattr(self.lstm, f"{name}_l{i}"))
                self.cells.append(cell)
        self.lin = torch.nn.Linear(kernel.shape[0], kernel.shape[1]).to(dev)
        with torch.no_grad():
            self.lin.weight.copy_(torch.from_numpy(kernel.T))
            self.lin.bias.copy_(torch.from_numpy(bias))
        L, H = len(specs), specs[0].hidden
        self.tok = torch.zeros(1, dtype=torch.int64, device=dev)
        self.h = torch.zeros(L, 1, H, device=dev)
        self.c = torch.zeros(L, 1, H, device=dev)
        self.rec = torch.zeros(1 << 16, dtype=torch.int64, device=dev)
        self.ctr = torch.zeros(1, dtype=torch.int64, device=dev)
        self.torch = torch
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(2):
                self._step()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.no_grad():
            self._step()

    def _step(self):
        torch = self.torch
        if self.cells is None:
            y, (hn, cn) = self.lstm(self.emb(self.tok).view(1, 1, -1), (self.h, self.c))
            self.h.copy_(hn)
            self.c.copy_(cn)
            top = y[0]
        else:
            top = self.emb(self.tok)
            for i, cell in enumerate(self.cells):
                h, c = cell(top, (self.h[i], self.c[i]))
                self.h[i].copy_(h)
                self.c[i].copy_(c)
                top = h
        nxt = torch.argmax(self.lin(top), dim=1)
        self.tok.copy_(nxt)
        self.rec.index_copy_(0, self.ctr, nxt)
        self.ctr.add_(1)

    def generate(self, ids, length, host_each_step=False):
        self.h.zero_()
        self.c.zero_()
        self.ctr.zero_()
        for i in ids:  # the prompt: the fed token is set before each step
            self.tok.fill_(int(i))
            self.graph.replay()
        for _ in range(length - 1):
            self.graph.replay()
            if host_each_step:
                int(self.tok.item())
        self.torch.cuda.synchronize()
        return self.rec[len(ids) - 1:len(ids) - 1 + length].cpu().numpy()


def _wall(fn, reps):
    times, out = [], None
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def random_model(H=512, E=512, V=65, seed=0):
    """(table, specs, kernel, bias) of a random 2-layer LSTM char-RNN in ONNX layout."""
    import torch

    from tf2rt.backends.cuda.rnn import node_spec
    from tf2rt.layouts import ONNX_LSTM, TORCH_LSTM, reorder_gates

    torch.manual_seed(seed)
    mod = torch.nn.LSTM(E, H, num_layers=2)
    sd = {k: v.numpy() for k, v in mod.state_dict().items()}
    specs = []
    for layer in range(2):
        f = lambda a: reorder_gates(a, TORCH_LSTM, ONNX_LSTM)[None]  # noqa: E731
        W, R = f(sd[f"weight_ih_l{layer}"]), f(sd[f"weight_hh_l{layer}"])
        B = np.concatenate([f(sd[f"bias_ih_l{layer}"]), f(sd[f"bias_hh_l{layer}"])], axis=1)
        specs.append(node_spec("LSTM", {"hidden_size": H}, W, R, B, None))
    rng = np.random.default_rng(seed)
    table = (rng.standard_normal((V, E)) * 3).astype(np.float32)  # inputs that move the state
    kernel = (rng.standard_normal((H, V)) * 4 / np.sqrt(H)).astype(np.float32)
    bias = np.zeros(V, np.float32)
    return table, specs, kernel, bias


def measure(name, length, reps, launches, app=None, model=None):
    from tf2rt.apps.charrnn import Vocab
    from tf2rt.apps.charrnn.cuda_stream import char_rnn_parts
    from tf2rt.backends.cuda.decode import DecodeLoop

    vocab = Vocab.load(ROOT / "examples" / "charrnn" / "vocab.json")
    ids = vocab.encode(PROMPT).astype(np.int64)
    row = {"model": name, "length": length}
    if app is not None:
        table, kernel, bias = char_rnn_parts(app.engine, app.runner.executor.chains, app.input_name, app.logits_name)
        specs = app.runner.executor.chains[0].specs
    else:
        table, specs, kernel, bias = model
    peer = TorchCharRNN(table, specs, kernel, bias)
    t, want = _wall(lambda: peer.generate(ids, length), reps)
    row["cudnn_graph_s"] = t
    t, got = _wall(lambda: peer.generate(ids, length, host_each_step=True), reps)
    row["cudnn_graph_host_s"] = t
    assert np.array_equal(got, want)
    toks = lambda a: tuple(int(v) for v in a)  # noqa: E731 - token ids (the random model's exceed the vocabulary)
    texts = {"cudnn": toks(want)}
    cells = TorchCharRNN(table, specs, kernel, bias, cells=True)
    t, got = _wall(lambda: cells.generate(ids, length), reps)
    row["torch_cells_graph_s"], texts["torch LSTMCell"] = t, toks(got)
    if app is not None:
        app.generate(PROMPT, 20, greedy=True)  # builds and checks the decoder
        row["app_decodes_on_device"] = app.decoding_on_device
        t, text = _wall(lambda: app.generate(PROMPT, length, greedy=True), reps)
        row["tf2rt_app_s"], texts["tf2rt app"] = t, toks(vocab.encode(text))
        dec, app._decode = app._decode, False  # the per-character path, for context
        t, text = _wall(lambda: app.generate(PROMPT, length, greedy=True), max(1, reps // 2))
        row["tf2rt_step_s"], texts["tf2rt step()"] = t, toks(vocab.encode(text))
        app._decode = dec
    for k in launches:
        loop = DecodeLoop(specs, table, kernel, bias, steps_per_launch=k, resident=False)
        loop.generate(ids, 8, greedy=True)
        t, got = _wall(lambda: loop.generate(ids, length, greedy=True), reps)
        row[f"tf2rt_k{k}_s"], texts[f"tf2rt K={k}"] = t, toks(got[0])
        row[f"describe_k{k}"] = loop.describe()
    # Many tokens in one launch (resident_decode.py), where the stack and head fit the GPU.
    loop = DecodeLoop(specs, table, kernel, bias, resident=True)
    row["resident"] = loop.resident is not None
    if row["resident"]:
        row["describe_resident"] = loop.describe()
        loop.generate(ids, 8, greedy=True)
        t, got = _wall(lambda: loop.generate(ids, length, greedy=True), reps)
        row["tf2rt_resident_s"], texts["tf2rt resident"] = t, toks(got[0])
        import torch

        from tf2rt.backends.cuda.resident_decode import TRACE_STEPS

        loop.resident.trace = torch.zeros(loop.resident.plan.grid, TRACE_STEPS, 3, dtype=torch.int64, device="cuda")
        loop.generate(ids, TRACE_STEPS, greedy=True)  # one launch, its hand-offs timed on the device
        row["resident_handoffs_us"] = loop.resident.handoffs(len(specs))
        # the same without the first layer's product table (its products from the embedding row)
        from tf2rt.backends.cuda import resident_decode

        saved, resident_decode.XTAB_MAX_BYTES = resident_decode.XTAB_MAX_BYTES, 0
        try:
            plain = DecodeLoop(specs, table, kernel, bias, resident=True)
        finally:
            resident_decode.XTAB_MAX_BYTES = saved
        plain.generate(ids, 8, greedy=True)
        t, got = _wall(lambda: plain.generate(ids, length, greedy=True), reps)
        row["tf2rt_resident_no_table_s"], texts["tf2rt resident, no table"] = t, toks(got[0])
    # The decoder launches its layers as programmatic dependents by default (Hopper and
    # later); the same decoder with ordinary launches (TF2RT_CUDA_PDL=0), for comparison.
    from tf2rt.backends.cuda.options import CudaOptions

    k = launches[len(launches) // 2]
    loop = DecodeLoop(specs, table, kernel, bias, steps_per_launch=k, options=CudaOptions(pdl=False), resident=False)
    loop.generate(ids, 8, greedy=True)
    t, got = _wall(lambda: loop.generate(ids, length, greedy=True), reps)
    row["tf2rt_ordinary_s"], texts[f"tf2rt K={k} ordinary"] = t, toks(got[0])
    row["ordinary_k"] = k
    row["dependent_default"] = bool(DecodeLoop(specs, table, kernel, bias, steps_per_launch=k, resident=False).stack.pdl)
    row["identical_text"] = len(set(texts.values())) == 1
    row["texts_differ"] = sorted(k for k, v in texts.items() if v != texts["cudnn"])
    return row


def to_markdown(rows, meta, launches):
    lines = [f"# Char-RNN generation on a GPU — {meta['gpu']}", "",
             f"{meta['date']}; torch {meta['torch']}, cuDNN {meta['cudnn']}. Command: `{meta['command']}`", "",
             "Greedy, batch 1, characters per second (wall time of a whole `generate` call, 15-character prompt "
             "included; median of the repeats). cuDNN graph/step: the model in PyTorch (Embedding, nn.LSTM, "
             "Linear, argmax) replayed from a CUDA graph per character with token and state on the device; "
             "+ host: the token read on the host each step. tf2rt K=k: the decoder, k characters per launch; "
             "the decoder launches each layer as a programmatic dependent where the GPU allows (default); tf2rt "
             "ordinary launches: the same with TF2RT_CUDA_PDL=0; tf2rt resident: the decoder running every token "
             "of a call in one launch (TF2RT_CUDA_RESIDENT=1); tf2rt app: `CharRNN(..., backend=\"cuda\").generate`; tf2rt step(): the app's "
             "per-character path.", "",
             "| model | chars | cuDNN graph/step | cuDNN + host | LSTMCell graph/step | "
             + " | ".join(f"tf2rt K={k}" for k in launches)
             + " | tf2rt ordinary launches | tf2rt resident | tf2rt app | tf2rt step() | speed-up (best tf2rt / cuDNN graph) "
             "| same text |",
             "|---|---|---|---|---|" + "---|" * len(launches) + "---|---|---|---|---|---|"]
    for r in rows:
        cps = lambda s: r["length"] / s if s else float("nan")  # noqa: E731
        ks = [cps(r[f"tf2rt_k{k}_s"]) for k in launches]
        app, step = r.get("tf2rt_app_s"), r.get("tf2rt_step_s")
        plain, res = r.get("tf2rt_ordinary_s"), r.get("tf2rt_resident_s")
        best = max(ks + ([cps(app)] if app else []) + ([cps(res)] if res else []))
        lines.append(f"| {r['model']} | {r['length']} | {cps(r['cudnn_graph_s']):,.0f} | "
                     f"{cps(r['cudnn_graph_host_s']):,.0f} | {cps(r['torch_cells_graph_s']):,.0f} | "
                     + " | ".join(f"{v:,.0f}" for v in ks)
                     + (f" | {cps(plain):,.0f} (K={r['ordinary_k']})" if plain else " | -")
                     + (f" | {cps(res):,.0f}" if res else " | -")
                     + f" | {cps(app) if app else float('nan'):,.0f} | {cps(step) if step else float('nan'):,.0f} | "
                     f"{best / cps(r['cudnn_graph_s']):.2f}x | {'yes' if r['identical_text'] else 'NO ' + ', '.join(r['texts_differ'])} |")
    for r in rows:
        if r.get("resident_handoffs_us"):
            lines += ["", f"{r['model']}, resident decoder ({r['describe_resident']['ctas']}): median µs of a step's "
                      "hand-offs (GPU timer): " + "; ".join(f"{k} {v:.2f}" for k, v in r["resident_handoffs_us"].items())
                      + (f". Without the first layer's product table: "
                         f"{r['length'] / r['tf2rt_resident_no_table_s']:,.0f} chars/s"
                         if r.get("tf2rt_resident_no_table_s") else "")]
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/cuda_charrnn.md")
    ap.add_argument("--length", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--launches", default="16,32,64", help="characters per launch to try")
    args = ap.parse_args(argv)
    from tf2rt.apps.charrnn import CharRNN, Vocab
    from tf2rt.apps.charrnn.generate import load_model

    launches = [int(k) for k in args.launches.split(",")]
    meta = gpu_meta("bench_cuda_charrnn.py", argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []

    def run(name, **kw):
        try:
            rows.append(measure(name, args.length, args.reps, launches, **kw))
        except Exception as e:  # report and go on with the next model
            print(f"{name}: {type(e).__name__}: {e}", flush=True)
            return
        print(json.dumps(rows[-1], default=str), flush=True)
        out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1, default=str))
        out.write_text(to_markdown(rows, meta, launches))

    engine = load_model(ROOT / "examples" / "charrnn" / "model")
    app = CharRNN(engine, Vocab.load(ROOT / "examples" / "charrnn" / "vocab.json"), backend="cuda")
    run("bundled: 2 x LSTM 192", app=app)
    app.close()
    run("random: embedding 65x512 -> 2 x LSTM 512 -> dense 65", model=random_model())
    if out.exists():
        print(out.read_text())
    return 0 if len(rows) == 2 else 1


if __name__ == "__main__":
    sys.exit(main())

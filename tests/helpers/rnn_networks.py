"""RNN networks with distinct random weights per gate, their feeds, and torch.nn's answer for them:
shared by the backend conformance suite and the cuda backend tests."""

from __future__ import annotations

import numpy as np

from tf2rt.engine import build_engine
from tf2rt.network import Network

GATES = {"lstm": ("input", "forget", "cell", "output"), "gru": ("update", "reset", "hidden"),
         "relu": ("input",), "tanh": ("input",)}
# torch's block order per op (gate names as tf2rt's): LSTM i,f,g,o; GRU r,z,n.
TORCH_ORDER = {"lstm": ("input", "forget", "cell", "output"), "gru": ("reset", "update", "hidden"),
               "relu": ("input",), "tanh": ("input",)}


def rand(rng, *shape, scale=0.5):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def build_rnn(op, layers, bidir, H, E, N, S, seed, *, seq=False, states=False, options=None, precision="fp32",
              input_mode="linear"):
    """An RNN network with distinct random weights; returns (engine, weights dict by (pseudo, gate))."""
    rng = np.random.default_rng(seed)
    net = Network(f"{op}{layers}")
    x = net.add_input("x", "float32", (N, S, E))
    rnn = net.add_rnn_v2(x, layers, H, S, op, "bidirection" if bidir else "unidirection", input_mode, name="rnn")
    K = 2 if bidir else 1
    w = {}
    for i in range(layers * K):
        for g in GATES[op]:
            W = np.eye(H, dtype=np.float32) if (i < K and input_mode == "skip") else rand(rng, *rnn.w_shape(i))
            R, Wb, Rb = rand(rng, H, H), rand(rng, H), rand(rng, H)
            if not (i < K and input_mode == "skip"):
                rnn.set_weights_for_gate(i, g, True, W)
            rnn.set_weights_for_gate(i, g, False, R)
            rnn.set_bias_for_gate(i, g, True, Wb)
            rnn.set_bias_for_gate(i, g, False, Rb)
            w[i, g] = (W, R, Wb, Rb)
        if options is not None:
            rnn.set_options(i, options(i, rng))
    if seq:
        rnn.seq_lengths = net.add_input("lens", "int32", (N,))
    if states:
        rnn.hidden_state = net.add_input("h0", "float32", (N, layers * K, H))
        if op == "lstm":
            rnn.cell_state = net.add_input("c0", "float32", (N, layers * K, H))
    for j in range(rnn.num_outputs):
        net.mark_output(rnn.get_output(j), ("y", "h_n", "c_n")[j])
    return build_engine(net, precision), w


def torch_rnn(torch, op, layers, bidir, H, E, w, feeds):
    """Run torch.nn.LSTM/GRU/RNN with the same per-gate weights (converted by hand)."""
    K = 2 if bidir else 1
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "relu": torch.nn.RNN, "tanh": torch.nn.RNN}[op]
    kw = {"nonlinearity": op} if op in ("relu", "tanh") else {}
    m = cls(E, H, num_layers=layers, bidirectional=bidir, batch_first=True, **kw)
    with torch.no_grad():
        for i in range(layers * K):
            pos, d = divmod(i, K)
            sfx = f"l{pos}" + ("_reverse" if d else "")
            order = TORCH_ORDER[op]
            for j, name in enumerate(("weight_ih", "weight_hh", "bias_ih", "bias_hh")):
                getattr(m, f"{name}_{sfx}").copy_(torch.from_numpy(np.concatenate([w[i, g][j] for g in order])))
    x = torch.from_numpy(feeds["x"])
    N = x.shape[0]
    h0 = torch.from_numpy(feeds["h0"].transpose(1, 0, 2).copy()) if "h0" in feeds else torch.zeros(layers * K, N, H)
    c0 = torch.from_numpy(feeds["c0"].transpose(1, 0, 2).copy()) if "c0" in feeds else torch.zeros(layers * K, N, H)
    if "lens" in feeds:
        x = torch.nn.utils.rnn.pack_padded_sequence(x, torch.from_numpy(feeds["lens"].astype(np.int64)),
                                                    batch_first=True, enforce_sorted=False)
    with torch.no_grad():
        out, st = m(x, (h0, c0) if op == "lstm" else h0)
    if "lens" in feeds:
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=feeds["x"].shape[1])
    res = {"y": out.numpy(), "h_n": (st[0] if op == "lstm" else st).numpy().transpose(1, 0, 2)}
    if op == "lstm":
        res["c_n"] = st[1].numpy().transpose(1, 0, 2)
    return res


def rnn_feeds(op, layers, bidir, H, E, N, S, seed, seq, states):
    rng = np.random.default_rng(seed + 1000)
    K = 2 if bidir else 1
    feeds = {"x": rand(rng, N, S, E, scale=1.0)}
    if seq:
        feeds["lens"] = rng.integers(1, S + 1, size=N).astype(np.int32)
        feeds["lens"][0] = S
    if states:
        feeds["h0"] = rand(rng, N, layers * K, H)
        if op == "lstm":
            feeds["c0"] = rand(rng, N, layers * K, H)
    return feeds


__all__ = ["GATES", "TORCH_ORDER", "build_rnn", "rand", "rnn_feeds", "torch_rnn"]

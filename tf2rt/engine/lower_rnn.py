"""ONNX lowering of RNNv2Layer: one native ONNX LSTM / GRU / RNN node per layer of the stack.

Layout 0 ([S, N, E]) with Transposes around the stack (TensorRT's ONNX parser rejects
layout=1). Initializers are named '<prefix>/W', '/R', '/B', '/P' per stack layer, where the
prefix is RNNv2Layer.weight_names[position] (e.g. the checkpoint scope) or '<layer>/l<pos>'.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..layouts.gates import ONNX_GRU, ONNX_LSTM, ONNX_PEEPHOLES, ONNX_RNN
from .lowering import LoweringContext, lowering

_ONNX_OP = {"lstm": "LSTM", "gru": "GRU", "relu": "RNN", "tanh": "RNN"}
_ORDER = {"lstm": ONNX_LSTM, "gru": ONNX_GRU, "relu": ONNX_RNN, "tanh": ONNX_RNN}
_ACT = {"tanh": "Tanh", "relu": "Relu", "sigmoid": "Sigmoid", "hard_sigmoid": "HardSigmoid"}


def _activations(layer: Any, pseudo: int) -> tuple[list[str], list[float], list[float]]:
    """ONNX activation names of one direction, with alpha/beta for those that take them
    (the lists are consumed only by such activations, in order)."""
    o = layer.options_for(pseudo)
    if layer.op in ("relu", "tanh"):
        return [_ACT[layer.op]], [], []
    gate = _ACT[o.recurrent_activation]
    cand = _ACT[o.activation or "tanh"]
    alphas, betas = [], []
    if gate == "HardSigmoid":
        alphas, betas = [float(o.recurrent_alpha)], [float(o.recurrent_beta)]
    if layer.op == "lstm":
        return [gate, cand, cand], alphas, betas
    return [gate, cand], alphas, betas


def _stack_weights(layer: Any, pos: int) -> dict[str, np.ndarray]:
    """ONNX W [K, G*H, in], R [K, G*H, H], B [K, 2*G*H] (and P [K, 3H]) of one stack layer."""
    k, h = layer.num_directions, layer.hidden_size
    order = _ORDER[layer.op].gates
    Ws, Rs, Bs, Ps = [], [], [], []
    for d in range(k):
        i = pos * k + d
        if pos == 0 and layer.input_mode == "skip":  # skip: the input enters the gates unchanged
            W = np.concatenate([np.eye(h, dtype=np.float32)] * len(order))
        else:
            W = np.concatenate([layer._W[(i, g)] for g in order])
        Ws.append(W)
        Rs.append(np.concatenate([layer._R[(i, g)] for g in order]))
        zero = np.zeros(h, np.float32)
        Bs.append(np.concatenate([layer._Wb.get((i, g), zero) for g in order] +
                                 [layer._Rb.get((i, g), zero) for g in order]))
        peep = layer.options_for(i).peepholes
        Ps.append(None if peep is None else np.concatenate([peep[g] for g in ONNX_PEEPHOLES.gates]))
    out = {"W": np.stack(Ws), "R": np.stack(Rs), "B": np.stack(Bs)}
    if any(p is not None for p in Ps):
        out["P"] = np.stack([p if p is not None else np.zeros(3 * h, np.float32) for p in Ps])
    return out


def _permute(ctx: LoweringContext, value: str, perm: list[int], shape: tuple, out: Any = None,
             name: str = "") -> str:
    """Transpose, or a Reshape when the permutation only moves size-1 dims (no data movement;
    the common batch-1 / one-step streaming case, where it saves a kernel launch per call)."""
    moved = [p for p in perm if shape[p] != 1]
    if None not in shape and moved == sorted(moved):
        dims = ctx.const(np.array([shape[p] for p in perm], np.int64), f"{name}/shape")
        return ctx.node1("Reshape", [value, dims], out, name=name)
    return ctx.node1("Transpose", [value], out, name=name, perm=perm)


@lowering("rnn_v2")
def _rnn_v2(layer: Any, ctx: LoweringContext) -> None:
    name, k, h = layer.name, layer.num_directions, layer.hidden_size
    op = _ONNX_OP[layer.op]
    n, s = layer.inputs[0].shape[0], layer.inputs[0].shape[1]
    lk = layer.layer_count * k
    x = _permute(ctx, ctx.input(layer, 0), [1, 0, 2], layer.inputs[0].shape, name=f"{name}/to_sne")
    h0 = c0 = None
    if layer.hidden_state is not None:
        h0 = _permute(ctx, ctx.input(layer, 1), [1, 0, 2], (n, lk, h), name=f"{name}/hidden_state_lnh")
    if layer.cell_state is not None:
        c0 = _permute(ctx, ctx.input(layer, 2), [1, 0, 2], (n, lk, h), name=f"{name}/cell_state_lnh")
    seq = ctx.input(layer, 3) if layer.seq_lengths is not None else ""
    direction = "bidirectional" if k == 2 else ("reverse" if layer.direction == "reverse" else "forward")
    y_h, y_c = [], []
    y = x
    for pos in range(layer.layer_count):
        prefix = layer.weight_names.get(pos) or f"{name}/l{pos}"
        w = _stack_weights(layer, pos)
        ins = [y, ctx.initializer(f"{prefix}/W", w["W"]), ctx.initializer(f"{prefix}/R", w["R"]),
               ctx.initializer(f"{prefix}/B", w["B"]), seq]

        def state_slice(src: Any, what: str) -> str:
            if src is None:
                return ""
            if layer.layer_count * k == k:
                return src
            s = ctx.const(np.array([pos * k], np.int64), f"{prefix}/{what}_start")
            e = ctx.const(np.array([pos * k + k], np.int64), f"{prefix}/{what}_end")
            a = ctx.const(np.array([0], np.int64), f"{prefix}/{what}_axis")
            return ctx.node1("Slice", [src, s, e, a], name=f"{prefix}/{what}")

        ins.append(state_slice(h0, "initial_h"))
        if op == "LSTM":
            ins.append(state_slice(c0, "initial_c"))
            ins.append(ctx.initializer(f"{prefix}/P", w["P"]) if "P" in w else "")
        while ins and ins[-1] == "":
            ins.pop()
        acts, alphas, betas = [], [], []
        for d in range(k):
            a, al, be = _activations(layer, pos * k + d)
            acts, alphas, betas = acts + a, alphas + al, betas + be
        o = layer.options_for(pos * k)
        attrs: dict[str, Any] = {"hidden_size": h, "direction": direction, "activations": acts}
        if alphas or betas:
            attrs["activation_alpha"], attrs["activation_beta"] = alphas, betas
        if o.clip is not None:
            attrs["clip"] = float(o.clip)
        if op == "GRU":
            attrs["linear_before_reset"] = int(o.linear_before_reset)
        n_out = 3 if op == "LSTM" else 2
        outs = ctx.node(op, ins, n_out, name=prefix if prefix != name else f"{name}/l{pos}", **attrs)
        y_h.append(outs[1])
        if op == "LSTM":
            y_c.append(outs[2])
        last = pos == layer.layer_count - 1
        # Y [S, K, N, H] -> next input [S, N, K*H], or the layer output [N, S, K*H].
        perm = [2, 0, 1, 3] if last else [0, 2, 1, 3]
        t = _permute(ctx, outs[0], perm, (s, k, n, h), name=f"{prefix}/y_t")
        shape = ctx.const(np.array([0, 0, k * h], np.int64), f"{prefix}/y_shape")
        y = ctx.node1("Reshape", [t, shape], ctx.output(layer, 0) if last else None, name=f"{prefix}/y")

    for idx, parts, what in ((1, y_h, "h_n"), (2, y_c, "c_n")):
        if idx >= layer.num_outputs:
            continue
        cat = parts[0] if len(parts) == 1 else ctx.node1("Concat", parts, name=f"{name}/{what}_lnh", axis=0)
        _permute(ctx, cat, [1, 0, 2], (lk, n, h), ctx.output(layer, idx), name=f"{name}/{what}")

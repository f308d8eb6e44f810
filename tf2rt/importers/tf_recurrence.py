"""Lowering of `_Recurrence` nodes (recognised RNN loops, tf_loops.py) to native RNN layers.

The loop's input is time-major ([T, B, E], as dynamic_rnn transposes it before the loop);
the layers run batch-major. Layers of one kind and size become one RNN layer (a stack);
otherwise one layer each, chained. States the graph initialises with zeros become optional
streaming inputs `<loop>/initial_h` (`/initial_c`) paired with `<loop>/final_h` (`/final_c`);
states fed from the graph (a placeholder such as `istate`) stay the graph's own inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UnsupportedError
from .graphdef import TV
from .graphdef_ops import const, op
from .tf1_rnn import _ANY_LENGTH as ANY_LENGTH  # max_seq_length of inputs of any length
from .tf_cells import cell_weights


def lengths_tensor(cv, v: Any, name: str) -> Any:
    """Sequence lengths as an int32 network tensor (a constant or a graph value)."""
    t = v.t if isinstance(v, TV) else \
        cv.net.add_constant(np.shape(v), np.asarray(v, np.int32), name=f"{name}/seq_len").output
    return t if t.dtype == "int32" else cv.net.add_cast(t, "int32", name=f"{name}/seq_len_int32").output


def _groups(cells: list[Any]) -> list[list[int]]:
    """Consecutive layers of one kind and hidden size (one RNN layer each group)."""
    groups: list[list[int]] = []
    for k, c in enumerate(cells):
        if groups and cells[groups[-1][0]].kind == c.kind and cells[groups[-1][0]].hidden_size == c.hidden_size \
                and cells[groups[-1][0]].activation == c.activation:
            groups[-1].append(k)
        else:
            groups.append([k])
    return groups


@op("_Recurrence")
def _recurrence(cv, node, ins):
    rec = node.recurrence
    zero = node.zero_init
    k = 0
    x = ins[k]
    k += 1
    if not isinstance(x, TV) or x.t.rank != 3:
        raise UnsupportedError("the loop's input sequence must be a [time, batch, features] tensor")
    seq_len = None
    if rec.seq_len is not None:
        seq_len = lengths_tensor(cv, ins[k], rec.name)
        k += 1
    inits: list[Any] = []
    for z in zero:
        if z:
            inits.append(None)
        else:
            inits.append(ins[k])
            k += 1
    params = [const(v, f"{rec.name} cell parameter") for v in ins[k:]]
    cells, info, p = [], {}, 0
    for layer in rec.layers:
        own = params[p:p + len(layer.params)]
        p += len(layer.params)
        c = cell_weights(layer, own)
        cells.append(c)
        where = c.name or rec.name
        layer.hidden = c.hidden_size
        info[f"{where}.kind"] = c.kind
        info[f"{where}.activation"] = c.activation
        if c.kind == "lstm":
            fb = layer.gate_consts.get("forget")
            info[f"{where}.forget_bias"] = float(np.asarray(own[fb]).reshape(-1)[0]) if fb is not None else 0.0
    if not hasattr(cv, "recurrence_info"):
        cv.recurrence_info = []
    cv.recurrence_info.append(info)
    net = cv.net
    xb = net.add_shuffle(x.t, first_transpose=(1, 0, 2), name=f"{rec.name}/batch_major").output
    T = x.t.shape[0]
    finals: list[Any] = [None] * len(rec.state_vars)
    var_index = {id(v): i for i, v in enumerate(rec.state_vars)}
    state_pairs = []
    y = xb
    for g, group in enumerate(_groups(cells)):
        first = cells[group[0]]
        L, H = len(group), first.hidden_size
        kind = first.kind if first.kind != "rnn" else first.activation
        name = rec.name if len(_groups(cells)) == 1 else f"{rec.name}/layer_{group[0]}"
        # initial states: zeros -> optional streaming inputs; graph values -> stacked [B, L, H]
        # (made before the RNN layer: layers are emitted in the order they are added)
        roles = [("h", 1)] + ([("c", 2)] if first.kind == "lstm" else [])
        prepared = []
        for role, out_idx in roles:
            vals = []
            for ci in group:
                st = rec.layers[ci].states
                v = st[-1] if role == "h" else st[0]
                vals.append((var_index[id(v)], v))
            given = [inits[i] for i, _v in vals]
            if all(gv is None for gv in given):
                state_in = net.add_input(f"{name}/initial_{role}", "float32", (x.t.shape[1], L, H))
            elif all(gv is not None for gv in given):
                parts = [net.add_shuffle(_tensor(cv, gv, rec.name), reshape_dims=[0, 1, H],
                                         name=f"{name}/initial_{role}_{j}").output for j, gv in enumerate(given)]
                state_in = parts[0] if len(parts) == 1 else \
                    net.add_concatenation(parts, 1, name=f"{name}/initial_{role}").output
            else:
                raise UnsupportedError(f"{rec.name}: some layers start from zeros, others from given states")
            prepared.append((role, out_idx, vals, given, state_in))
        rnn = net.add_rnn_v2(y, L, H, int(T or ANY_LENGTH), kind, name=name,
                             direction="reverse" if getattr(node, "reverse", False) else "unidirection")
        for li, ci in enumerate(group):
            rnn.set_cell(li, cells[ci], name=cells[ci].name or None)
        if seq_len is not None:
            rnn.seq_lengths = seq_len
        for role, out_idx, vals, given, state_in in prepared:
            if role == "h":
                rnn.hidden_state = state_in
            else:
                rnn.cell_state = state_in
            final = rnn.get_output(out_idx)
            if all(gv is None for gv in given):
                cv.mark_output(final, f"{name}/final_{role}")
                state_pairs.append((state_in, final))
            for j, (i, _v) in enumerate(vals):
                idx = net.add_constant((1,), np.array([j], np.int32), name=f"{name}/final_{role}_{j}_index").output
                sl = net.add_gather(final, idx, axis=1, name=f"{name}/final_{role}_{j}_gather").output
                finals[i] = net.add_shuffle(sl, reshape_dims=[0, H], name=f"{name}/final_{role}_{j}").output
        y = rnn.get_output(0)
    for s_in, s_out in state_pairs:
        if hasattr(net, "mark_state"):
            net.mark_state(s_in, s_out)
    yt = net.add_shuffle(y, first_transpose=(1, 0, 2), name=f"{rec.name}/time_major").output
    return [TV(yt)] + [TV(f) if f is not None else None for f in finals]


def _tensor(cv, v: Any, where: str) -> Any:
    if isinstance(v, TV):
        return v.t
    if isinstance(v, np.ndarray):
        arr = v.astype(np.float32)
        return cv.net.add_constant(arr.shape, arr, name=f"{where}/initial_state_const").output
    raise UnsupportedError(f"{where}: an initial state that is neither a tensor nor a constant")

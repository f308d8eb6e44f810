"""`bidirectional_dynamic_rnn`: a forward loop over x and a backward loop over x reversed in
time (`ReverseSequence` with the sequence lengths, or `ReverseV2` without), whose output is
reversed back. The pair becomes one bidirectional RNN layer, whose reverse direction runs
each sequence from its own last step - exactly what the reversals compute - at any length.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UnsupportedError
from .graphdef import TV, Graph, Node, split_ref
from .graphdef_ops import const, op
from .tf_cells import cell_weights
from .tf_recurrence import ANY_LENGTH, lengths_tensor
from .tf_loops import Dataflow, Recurrence, canon, reroute, ref, set_aside

_REVERSE = ("ReverseSequence", "ReverseV2")


def _reversal(flow: Dataflow, r: str) -> tuple[str, str | None] | None:
    """(reversed tensor, lengths or None) if r is a time reversal of a tensor."""
    n = flow.src_node(r)
    if n is None or n.op not in _REVERSE:
        return None
    if n.op == "ReverseSequence":
        seq_dim = n.attr("seq_dim").i() if n.attr("seq_dim") is not None else None
        batch_dim = n.attr("batch_dim").i() if n.attr("batch_dim") is not None else 0
        if seq_dim != 1 or batch_dim != 0:
            return None
        return flow.source(n.inputs[0]), flow.source(n.inputs[1])
    axes = flow.const(n.inputs[1])
    if axes is None or [int(a) for a in np.atleast_1d(axes)] != [1]:
        return None
    return flow.source(n.inputs[0]), None


def _batch_major_source(flow: Dataflow, x_tm: str) -> str | None:
    """u when the recurrence input is Transpose(u) to time-major (what dynamic_rnn does)."""
    n = flow.src_node(x_tm)
    if n is None or n.op != "Transpose":
        return None
    return flow.source(n.inputs[0])


def fuse_bidirectional(graph: Graph, recs: list[Recurrence]) -> int:
    flow = Dataflow(graph)
    by_input = {}
    for r in recs:
        u = _batch_major_source(flow, r.x)
        if u is not None:
            by_input.setdefault(u, []).append(r)
    fused = 0
    paired: set[int] = set()
    for bw in recs:
        u = _batch_major_source(flow, bw.x)
        rev = _reversal(flow, u) if u is not None else None
        if rev is None or len(bw.layers) != 1:
            continue
        src, lengths = rev
        fws = [f for f in by_input.get(src, []) if f is not bw and len(f.layers) == 1]
        if len(fws) != 1 or (lengths or None) != (flow.source(bw.seq_len) if bw.seq_len else None) or \
                (fws[0].seq_len and flow.source(fws[0].seq_len) != lengths):
            continue
        fw = fws[0]
        if fw.layers[0].kind != bw.layers[0].kind:
            continue
        bw_node, fw_node = graph.nodes[f"{bw.name}/recurrence"], graph.nodes[f"{fw.name}/recurrence"]
        if not all(fw_node.zero_init) or not all(bw_node.zero_init):
            continue
        # the backward output, reversed back: gather -> Transpose to batch-major -> reversal
        out = None
        for t, _i in flow.users(ref(bw.gather)):
            if t.op == "Transpose":
                for v, _j in flow.users(ref(t.name)):
                    back = _reversal(flow, ref(v.name))
                    if back is not None and back == (ref(t.name), lengths):
                        out = v
        if out is None:
            continue
        name = f"{fw.name.rsplit('/', 1)[0] or fw.name}/bidirectional"
        inputs = [fw.x] + ([lengths] if lengths else []) + fw.params + bw.params
        node = Node(name, "_BiRecurrence", inputs)
        node.pair = (fw, bw)  # type: ignore[attr-defined]
        graph.nodes[name] = node
        n_fw = len(fw.state_vars)
        remap = {canon(ref(fw_node.name, 0)): ref(name, 0)}
        remap.update({canon(ref(fw_node.name, 1 + k)): ref(name, 2 + k) for k in range(n_fw)})
        remap.update({canon(ref(bw_node.name, 1 + k)): ref(name, 2 + n_fw + k) for k in range(len(bw.state_vars))})
        reroute(graph, remap, skip=name)
        graph.nodes[out.name] = Node(out.name, "Identity", [ref(name, 1)])
        set_aside(graph, {fw_node.name, bw_node.name, bw.gather} | {split_ref(r)[0] for r in out.inputs})
        paired.add(id(bw))
        fused += 1
    for rec in recs:  # a reversed loop left alone (several layers a direction): a reverse RNN
        if id(rec) not in paired:
            fused += _reverse_in_place(graph, Dataflow(graph), rec)
    return fused


def _reverse_in_place(graph: Graph, flow: Dataflow, rec: Recurrence) -> int:
    """A loop over x reversed in time whose output is reversed back = a reverse-direction RNN
    over x: its output is already in x's order, and its final state is the same."""
    u = _batch_major_source(flow, rec.x)
    rev = _reversal(flow, u) if u is not None else None
    if rev is None:
        return 0
    src, lengths = rev
    if (lengths or None) != (flow.source(rec.seq_len) if rec.seq_len else None):
        return 0
    out = None
    for t, _i in flow.users(ref(rec.gather)):
        if t.op == "Transpose":
            for v, _j in flow.users(ref(t.name)):
                if _reversal(flow, ref(v.name)) == (ref(t.name), lengths):
                    out = v
    if out is None:
        return 0
    node = graph.nodes[f"{rec.name}/recurrence"]
    tm = f"{rec.name}/time_major_input"
    graph.nodes[tm] = Node(tm, "_SwapBatchTime", [src])
    node.inputs = [ref(tm)] + node.inputs[1:]
    node.reverse = True  # type: ignore[attr-defined]
    graph.nodes[out.name] = Node(out.name, "_SwapBatchTime", [ref(node.name, 0)])
    set_aside(graph, {rec.gather} | {split_ref(r)[0] for r in out.inputs})
    return 1


def _take(net: Any, t: Any, axis: int, idx: np.ndarray, name: str) -> Any:
    ind = net.add_constant(idx.shape, idx.astype(np.int32), name=f"{name}/indices").output
    return net.add_gather(t, ind, axis=axis, name=name).output


@op("_BiRecurrence")
def _bi_recurrence(cv, node, ins):
    """A forward and a time-reversed loop over one input as one bidirectional RNN layer."""
    fw, bw = node.pair
    x = ins[0]
    if not isinstance(x, TV) or x.t.rank != 3:
        raise UnsupportedError("the bidirectional input must be a [time, batch, features] tensor")
    k = 1
    seq_len = None
    if len(ins) > 1 + len(fw.params) + len(bw.params):
        seq_len, k = lengths_tensor(cv, ins[1], node.name), 2
    params = [const(v, f"{node.name} cell parameter") for v in ins[k:]]
    fcell = cell_weights(fw.layers[0], params[:len(fw.params)])
    bcell = cell_weights(bw.layers[0], params[len(fw.params):])
    if (fcell.kind, fcell.hidden_size, fcell.activation) != (bcell.kind, bcell.hidden_size, bcell.activation):
        raise UnsupportedError(f"{node.name}: forward and backward cells differ in kind or size")
    fw.layers[0].hidden = bw.layers[0].hidden = fcell.hidden_size
    net, H = cv.net, fcell.hidden_size
    xb = net.add_shuffle(x.t, first_transpose=(1, 0, 2), name=f"{node.name}/batch_major").output
    kind = fcell.kind if fcell.kind != "rnn" else fcell.activation
    rnn = net.add_rnn_v2(xb, 1, H, int(x.t.shape[0] or ANY_LENGTH), kind, direction="bidirection", name=node.name)
    rnn.set_cell(0, fcell, name=fcell.name or None)
    rnn.set_cell(1, bcell, name=bcell.name or None)
    if seq_len is not None:
        rnn.seq_lengths = seq_len
    y = rnn.get_output(0)  # [B, T, 2H]
    fw_y = _take(net, y, 2, np.arange(H), f"{node.name}/fw")
    fw_tm = net.add_shuffle(fw_y, first_transpose=(1, 0, 2), name=f"{node.name}/fw_time_major").output
    bw_y = _take(net, y, 2, np.arange(H, 2 * H), f"{node.name}/bw")
    finals = []
    for d, rec in enumerate((fw, bw)):
        cell = rec.layers[0]
        roles = {id(cell.states[-1]): 1} | ({id(cell.states[0]): 2} if fcell.kind == "lstm" else {})
        for v in rec.state_vars:
            state = rnn.get_output(roles[id(v)])  # [B, 2, H]
            one = _take(net, state, 1, np.array([d]), f"{node.name}/final_{d}_{roles[id(v)]}")
            finals.append(TV(net.add_shuffle(one, reshape_dims=[0, H], name=f"{node.name}/final_{d}_{roles[id(v)]}/2d").output))
    return [TV(fw_tm), TV(bw_y)] + finals

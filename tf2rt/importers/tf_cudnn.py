"""cuDNN RNN ops in TF graphs (`CudnnRNN`, `CudnnRNNV2`, `CudnnRNNV3`) as native RNN layers.

Keras LSTM / GRU layers traced on a GPU machine (Keras 3 `model.export()`, Keras 2
SavedModels) and TF1 `tf.contrib.cudnn_rnn` graphs call these ops with one opaque params
vector. Its layout is cuDNN's weight space: the matrices of every pseudo-layer (layer-major,
forward before backward; per pseudo-layer the input matrices of each gate, then the
recurrent ones, each row-major `[H, in]`), then the biases in the same order (input bias of
each gate, then recurrent bias). Gates: LSTM i, f, c, o; GRU r, z, h (reset after the
recurrent product, with its own recurrent bias); RNN one. The number of layers follows from
the params length.

Before lowering, `prepare_cudnn` takes away what only makes sense at run time: initial
states built as zeros of the batch size (for a forward RNN over a batch-major input they
become optional streaming inputs, as for recognised loops) and sequence lengths that are the
full time dimension for every batch entry (what Keras passes when there is no mask). An op
over a time-reversed input whose output is reversed back (Keras `go_backwards`, the backward
half of `Bidirectional`) becomes a reverse-direction RNN. Dropout is a training-time
behaviour and is not applied.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import FormatError, ShapeError, UnsupportedError
from ..layouts.cudnn import from_cudnn_stack
from .graphdef import TV, Graph, Node, split_ref
from .graphdef_ops import attr_s, op
from .tf_loops import Dataflow, ref, set_aside
from .tf_recurrence import ANY_LENGTH, _tensor, lengths_tensor

CUDNN_OPS = ("CudnnRNN", "CudnnRNNV2", "CudnnRNNV3")
_MODES = {"lstm": ("lstm", "tanh", 4), "gru": ("gru", "tanh", 3), "rnn_tanh": ("rnn", "tanh", 1),
          "rnn_relu": ("rnn", "relu", 1)}
_SHAPE_OPS = ("ExpandDims", "Reshape", "Tile", "BroadcastTo", "Transpose", "Squeeze")
INPUT, H0, C0, PARAMS, LENGTHS = range(5)


# --- before lowering: zero states and full lengths ------------------------------------------
def _attr(node: Node, key: str, kind: str, default: Any) -> Any:
    a = node.attr(key)  # SavedModels strip attributes at their default value
    return default if a is None else getattr(a, kind)()


def _zero_fill(flow: Dataflow, r: str) -> tuple[Node, int | None] | None:
    """(Fill / ZerosLike node, hidden size if its shape says) when `r` is zeros built at run time."""
    n = flow.src_node(r)
    while n is not None and n.op in _SHAPE_OPS and n.inputs:
        n = flow.src_node(n.inputs[0])
    if n is None:
        return None
    if n.op == "ZerosLike":
        return n, None
    if n.op != "Fill" or len(n.inputs) != 2:
        return None
    v = flow.const(n.inputs[1])
    if v is None or v.size != 1 or float(v.reshape(-1)[0]) != 0.0:
        return None
    dims = flow.src_node(n.inputs[0])
    last = None
    if dims is not None and dims.op == "Const":
        last = flow.const(ref(dims.name))
    elif dims is not None and dims.op == "Pack" and dims.inputs:
        last = flow.const(dims.inputs[-1])
    hidden = int(np.asarray(last).reshape(-1)[-1]) if last is not None and np.asarray(last).size else None
    return n, hidden


def _full_lengths(flow: Dataflow, r: str, x: str, time_axis: int) -> Node | None:
    """The Fill node when `r` is Fill(batch, Shape(x)[time_axis]): every sequence full length."""
    n = flow.src_node(r)
    if n is None or n.op != "Fill" or len(n.inputs) != 2:
        return None
    s = flow.src_node(n.inputs[1])
    if s is None or s.op != "StridedSlice" or len(s.inputs) != 4:
        return None
    shape = flow.src_node(s.inputs[0])
    begin = flow.const(s.inputs[1])
    if shape is None or shape.op != "Shape" or begin is None or np.asarray(begin).size != 1:
        return None
    if s.attr("shrink_axis_mask") is None or not s.attr("shrink_axis_mask").i() & 1:
        return None
    if int(np.asarray(begin).reshape(-1)[0]) != time_axis:
        return None
    xs = {flow.source(x)}
    xn = flow.src_node(x)
    if xn is not None and xn.op in ("ReverseSequence", "ReverseV2"):  # a reversal keeps the shape
        xs.add(flow.source(xn.inputs[0]))
    return n if flow.source(shape.inputs[0]) in xs else None


def _reversal(flow: Dataflow, r: str, node: Node, time_axis: int) -> tuple[str, Node] | None:
    """(reversed tensor, reversing node) when `r` reverses a tensor in time the way the cuDNN
    node's own lengths say: ReverseSequence by its lengths, or ReverseV2 of the time axis
    when every sequence is full length (no lengths, or Fill of the time dimension)."""
    n = flow.src_node(r)
    has_lengths = node.op == "CudnnRNNV3" and len(node.inputs) > LENGTHS
    full = not has_lengths or _full_lengths(flow, node.inputs[LENGTHS], node.inputs[INPUT], time_axis) is not None
    if n is None or len(n.inputs) != 2:
        return None
    if n.op == "ReverseSequence" and has_lengths:
        seq = _attr(n, "seq_dim", "i", -1)
        batch = _attr(n, "batch_dim", "i", 0)
        if (seq, batch) == (time_axis, 1 - time_axis) and flow.source(n.inputs[1]) == flow.source(node.inputs[LENGTHS]):
            return flow.source(n.inputs[0]), n
    if n.op == "ReverseV2" and full:
        axes = flow.const(n.inputs[1])
        if axes is not None and [int(a) % 3 for a in np.atleast_1d(axes)] == [time_axis]:
            return flow.source(n.inputs[0]), n
    return None


def _reverse_in_place(graph: Graph, flow: Dataflow, node: Node, time_axis: int) -> bool:
    """An RNN over x reversed in time whose output is reversed back (Keras go_backwards, the
    backward half of Bidirectional) is a reverse-direction RNN over x."""
    if attr_s(node, "direction", "unidirectional") != "unidirectional":
        return False
    rev = _reversal(flow, node.inputs[INPUT], node, time_axis)
    users = [u for u, _i in flow.users(ref(node.name, 0))]
    backs = [_reversal(flow, ref(u.name), node, time_axis) for u in users]
    if rev is None or not users or any(b is None or b[0] != ref(node.name, 0) or b[1].op != rev[1].op for b in backs):
        return False
    node.inputs = [rev[0]] + node.inputs[1:]
    node.cudnn_reverse = True  # type: ignore[attr-defined]
    for u in users:
        graph.nodes[u.name] = Node(u.name, "Identity", [ref(node.name, 0)])
    return True


def prepare_cudnn(graph: Graph) -> int:
    """Drop zero initial states and full-length sequence lengths from cuDNN RNN nodes (recorded
    on the node as `cudnn_absent`, slot -> "zeros" / "full") and make reversed-in-time ones
    reverse RNNs; returns how many nodes changed."""
    changed = 0
    for node in [n for n in graph.nodes.values() if n.op in CUDNN_OPS]:
        if len(node.inputs) < 4 or hasattr(node, "cudnn_absent"):
            continue
        time_axis = 0 if _attr(node, "time_major", "b", True) else 1
        old_input = node.inputs[INPUT]
        reverse = _reverse_in_place(graph, Dataflow(graph), node, time_axis)
        flow = Dataflow(graph)
        absent: dict[int, str] = {}
        hidden = None
        for slot in (H0, C0):
            z = _zero_fill(flow, node.inputs[slot])
            if z is not None:
                absent[slot] = "zeros"
                hidden = hidden or z[1]
        if node.op == "CudnnRNNV3" and len(node.inputs) > LENGTHS and \
                _full_lengths(flow, node.inputs[LENGTHS], node.inputs[INPUT], time_axis) is not None:
            absent[LENGTHS] = "full"
        dropped = [node.inputs[s] for s in absent] + ([old_input] if reverse else [])
        node.inputs = [r for s, r in enumerate(node.inputs) if s not in absent]
        node.cudnn_absent, node.cudnn_hidden = absent, hidden  # type: ignore[attr-defined]
        if dropped:
            _set_aside_unread(graph, dropped)
            changed += 1
    # the forward half of a Keras Bidirectional (a reverse RNN reads the same input) never streams
    flow = Dataflow(graph)
    cudnn = [n for n in graph.nodes.values() if n.op in CUDNN_OPS and n.inputs]
    reversed_inputs = {flow.source(n.inputs[INPUT]) for n in cudnn if getattr(n, "cudnn_reverse", False)}
    for n in cudnn:
        n.cudnn_paired = flow.source(n.inputs[INPUT]) in reversed_inputs  # type: ignore[attr-defined]
    return changed


def _set_aside_unread(graph: Graph, refs: list[str]) -> None:
    """Nodes that only fed the dropped inputs are never default outputs."""
    read = {split_ref(r)[0] for n in graph.nodes.values() for r in n.inputs}
    todo, aside = [split_ref(r)[0] for r in refs], set()
    while todo:
        name = todo.pop()
        n = graph.nodes.get(name)
        if n is None or name in read or name in aside:
            continue
        aside.add(name)
        read = {split_ref(r)[0] for m in graph.nodes.values() if m.name not in aside for r in m.inputs}
        todo += [split_ref(r)[0] for r in n.inputs]
    set_aside(graph, aside)


# --- the opaque params ---------------------------------------------------------------------
def unpack_params(params: np.ndarray, mode: str, input_size: int, hidden: int, dirs: int,
                  where: str) -> tuple[int, list]:
    """(num_layers, stack of CellWeights) from cuDNN's opaque params vector."""
    kind, act, G = _MODES[mode]
    n = int(params.size)
    E, H, K = input_size, hidden, dirs
    first = K * G * H * (E + H + 2)   # layer 0: W [H, E], R [H, H], Wb, Rb per gate and direction
    deeper = K * G * H * (K * H + H + 2)
    if n < first or (n - first) % deeper:
        raise FormatError(
            f"{where}: params has {n} values, which fits no {mode} stack of input size {E}, hidden size {H}, "
            f"{K} direction(s) (one layer needs {first}, each further layer {deeper})")
    L = 1 + (n - first) // deeper
    flat = np.asarray(params, np.float32).reshape(-1)
    weights, biases, pos = [], [], 0
    for l in range(L):
        for _d in range(K):
            for size in [H * (E if l == 0 else K * H)] * G + [H * H] * G:
                weights.append(flat[pos:pos + size])
                pos += size
    for _p in range(L * K):
        for _g in range(2 * G):
            biases.append(flat[pos:pos + H])
            pos += H
    try:
        stack = from_cudnn_stack(kind, weights, biases, num_layers=L, bidirectional=K == 2, activation=act)
    except ShapeError as exc:
        raise FormatError(f"{where}: {exc}") from None
    return L, stack


def _solve_hidden(n: int, mode: str, E: int, K: int, where: str) -> int:
    """Hidden size from the params length alone (no state shape to read it from)."""
    G = _MODES[mode][2]
    found = set()
    for H in range(1, 1 << 14):
        first = K * G * H * (E + H + 2)
        if first > n:
            break
        deeper = K * G * H * (K * H + H + 2)
        if (n - first) % deeper == 0:
            found.add(H)
    if len(found) != 1:
        raise UnsupportedError(
            f"{where}: the hidden size is not in the initial states' shapes and the params length ({n}) "
            f"{'fits no' if not found else 'fits several'} {mode} stack of input size {E}; "
            "give the initial state a static shape")
    return found.pop()


# --- lowering -------------------------------------------------------------------------------
def _slots(node: Node, ins: list) -> list:
    """The op's five input slots (input, input_h, input_c, params, lengths), absent ones None."""
    absent = getattr(node, "cudnn_absent", {})
    it = iter(ins)
    return [None if s in absent else next(it, None) for s in range(5)]


def _last_dim(v: Any) -> int | None:
    shape = v.shape if isinstance(v, (TV, np.ndarray)) else None
    return shape[-1] if shape else None


@op(*CUDNN_OPS)
def _cudnn_rnn(cv, node, ins):
    """Native RNN layers (one ONNX LSTM / GRU / RNN node per layer) from cuDNN's opaque params."""
    where = f"{node.op} {node.name!r}"
    mode = attr_s(node, "rnn_mode", "lstm")
    if mode not in _MODES:
        raise UnsupportedError(f"{where}: rnn_mode {mode!r} is not one of {', '.join(_MODES)}")
    if _attr(node, "num_proj", "i", 0) > 0:
        raise UnsupportedError(f"{where}: num_proj={_attr(node, 'num_proj', 'i', 0)} (an LSTM projection) "
                               "cannot be expressed by ONNX LSTM")
    direction = attr_s(node, "direction", "unidirectional")
    if direction not in ("unidirectional", "bidirectional"):
        raise UnsupportedError(f"{where}: direction {direction!r}")
    K = 2 if direction == "bidirectional" else 1
    time_major = _attr(node, "time_major", "b", True) if node.op == "CudnnRNNV3" else True
    x, h0, c0, params, lengths = _slots(node, ins)
    if not isinstance(x, TV) or x.t.rank != 3 or x.t.shape[-1] is None:
        raise UnsupportedError(f"{where}: the input must be a 3-D tensor with a known feature size")
    if not isinstance(params, np.ndarray):
        raise UnsupportedError(f"{where}: params must be a constant (a frozen or checkpoint variable)")
    kind, act, _G = _MODES[mode]
    E = int(x.t.shape[-1])
    H = _last_dim(h0) or (_last_dim(c0) if kind == "lstm" else None) or getattr(node, "cudnn_hidden", None) \
        or _solve_hidden(int(params.size), mode, E, K, where)
    input_mode = attr_s(node, "input_mode", "linear_input")
    if input_mode == "skip_input" or (input_mode == "auto_select" and E == H):
        raise UnsupportedError(f"{where}: input_mode {input_mode!r} with input size {E} = hidden size {H} feeds the "
                               "input to the first layer without input weights (skip_input); only linear_input "
                               "is supported")
    if input_mode not in ("linear_input", "auto_select"):
        raise UnsupportedError(f"{where}: input_mode {input_mode!r}")
    L, stack = unpack_params(params, mode, E, int(H), K, where)
    net = cv.net
    xb = net.add_shuffle(x.t, first_transpose=(1, 0, 2), name=f"{node.name}/batch_major").output \
        if time_major else x.t
    B, T = xb.shape[0], xb.shape[1]
    rnn_op = kind if kind != "rnn" else act
    reverse = getattr(node, "cudnn_reverse", False)
    # initial states: zeros -> optional streaming inputs when the RNN runs forward over a
    # batch-major input (a runner makes the zeros from the first dynamic dimension, which a
    # time-major input's is not), else the RNN's own zeros; given -> [B, L*K, H]
    stream = K == 1 and not reverse and not time_major and not getattr(node, "cudnn_paired", False)
    states = []
    for role, v in (("h", h0), ("c", c0)) if kind == "lstm" else (("h", h0),):
        if v is None or (isinstance(v, np.ndarray) and not np.any(v)):
            t = net.add_input(f"{node.name}/initial_{role}", "float32", (B, L * K, H)) if stream else None
            states.append((role, t, True))
            continue
        t = _tensor(cv, v, f"{node.name}/initial_{role}")
        if t.rank != 3 or t.shape[-1] != H or t.shape[1 if time_major else 0] not in (None, B) or \
                t.shape[0 if time_major else 1] not in (None, L * K):
            raise UnsupportedError(f"{where}: input_{role} has shape {t.shape}; expected "
                                   f"{'[layers*dirs, batch, H]' if time_major else '[batch, layers*dirs, H]'} "
                                   f"with {L} layer(s) x {K} direction(s), H={H} (from the params length)")
        if time_major:
            t = net.add_shuffle(t, first_transpose=(1, 0, 2), name=f"{node.name}/initial_{role}_batch_major").output
        states.append((role, t, False))
    direction = "bidirection" if K == 2 else "reverse" if reverse else "unidirection"
    rnn = net.add_rnn_v2(xb, L, int(H), int(T or ANY_LENGTH), rnn_op, direction=direction, name=node.name)
    for i, cell in enumerate(c for layer in stack for c in layer):
        rnn.set_cell(i, cell)
    if lengths is not None:
        if isinstance(lengths, np.ndarray) and T is not None and np.all(lengths == T):
            lengths = None  # every sequence is full length
        else:
            rnn.seq_lengths = lengths_tensor(cv, lengths, node.name)
    outs: dict[str, Any] = {}
    for role, t, zero in states:
        idx = 1 if role == "h" else 2
        if t is not None and role == "h":
            rnn.hidden_state = t
        elif t is not None:
            rnn.cell_state = t
        final = rnn.get_output(idx)
        if zero and t is not None:
            cv.mark_output(final, f"{node.name}/final_{role}")
            net.mark_state(t, final)
        outs[role] = final
    y = rnn.get_output(0)
    if time_major:
        y = net.add_shuffle(y, first_transpose=(1, 0, 2), name=f"{node.name}/time_major").output
        outs = {r: net.add_shuffle(t, first_transpose=(1, 0, 2), name=f"{node.name}/output_{r}_time_major").output
                for r, t in outs.items()}
    # output_c of a GRU / plain RNN is an empty tensor in TensorFlow; reserve spaces are training-only
    c_out = TV(outs["c"]) if "c" in outs else np.zeros((0,), np.float32)
    return [TV(y), TV(outs["h"]), c_out, None, None][:4 if node.op == "CudnnRNN" else 5]

"""The Keras layer table, recurrent part: LSTM, GRU, SimpleRNN, Keras 2 CuDNNLSTM/CuDNNGRU,
Bidirectional (merge modes concat, sum, mul, ave, None).

Each layer becomes one RNNv2 layer (one ONNX LSTM/GRU/RNN node); weights go through
tf2rt.layouts (gate orders as data). Settings:

* `return_sequences`, `return_state`, `unroll` (same maths), dropout (inference: none).
* `go_backwards`: Keras reverses the input and returns the outputs in processing order;
  done by reversing a fixed-length input (and its mask), or, for a variable length, no mask
  and only the last output, by the backward half of a bidirectional layer.
* Masks (Embedding(mask_zero=True), Masking) become ONNX `sequence_lens` = the number of
  unmasked steps of each sequence. With a fixed sequence length the unmasked steps are
  first moved to the front (a one-hot matmul built from the running count of real steps)
  and the outputs moved back, so masked steps anywhere are skipped exactly as Keras skips
  them; at a masked step Keras outputs the previous output for a plain layer (0 before the
  first real step) and 0 inside Bidirectional, and so does the engine. With a variable
  length the sequences must be right-padded (the common case, exact); left padding or
  holes then give results that differ from Keras (the engine runs the first `length` steps).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..errors import UnsupportedError
from .graphdef import TV
from .keras_graph import LAYERS, KerasConverter, check, layer
from .keras_layers import act_name
from .tf1_rnn import add_recurrent

RNN_CLASSES = ("LSTM", "GRU", "SimpleRNN", "CuDNNLSTM", "CuDNNGRU")
_MERGE = {"concat": None, "sum": "sum", "mul": "prod", "ave": "avg", None: None}


def _inner_problems(cls: str, cfg: dict) -> list[str]:
    out = []
    if cls not in RNN_CLASSES:
        return [f"wraps {cls!r}; Bidirectional supports {', '.join(RNN_CLASSES)}"]
    if cfg.get("stateful"):
        out.append("stateful=True is not supported; convert with states=True to carry the states between calls")
    if cfg.get("time_major"):
        out.append("time_major=True is not supported")
    if cls == "SimpleRNN" and act_name(cfg.get("activation", "tanh")) not in ("tanh", "relu"):
        out.append(f"SimpleRNN activation {act_name(cfg.get('activation'))!r} (supported: tanh, relu)")
    if cls in ("LSTM", "GRU"):
        if act_name(cfg.get("activation", "tanh")) not in ("tanh", "relu", "sigmoid"):
            out.append(f"activation {act_name(cfg.get('activation'))!r} (supported: tanh, relu, sigmoid)")
        if act_name(cfg.get("recurrent_activation", "sigmoid")) not in ("sigmoid", "hard_sigmoid"):
            out.append(f"recurrent_activation {act_name(cfg.get('recurrent_activation'))!r} "
                       "(supported: sigmoid, hard_sigmoid)")
    return out


for _c in RNN_CLASSES:
    check(_c)(lambda cfg, _c=_c: _inner_problems(_c, cfg))


@check("Bidirectional")
def _bidi_check(cfg: dict) -> list[str]:
    inner = cfg.get("layer") or {}
    out = _inner_problems(str(inner.get("class_name")), inner.get("config") or {})
    if cfg.get("merge_mode", "concat") not in _MERGE:
        out.append(f"merge_mode {cfg.get('merge_mode')!r} (supported: concat, sum, mul, ave, None)")
    if (inner.get("config") or {}).get("go_backwards"):
        out.append("the wrapped layer has go_backwards=True")
    back = cfg.get("backward_layer")
    if isinstance(back, dict) and back.get("class_name") != inner.get("class_name"):
        out.append(f"backward_layer of class {back.get('class_name')!r} differs from the forward layer")
    return out


def cell_of(cv: KerasConverter, cls: str, cfg: dict, weights: list[np.ndarray], name: str) -> Any:
    """CellWeights of one Keras recurrent layer from its config and get_weights() list."""
    from ..layouts.keras import from_keras_cudnn_gru, from_keras_cudnn_lstm, from_keras_layer

    if cls in ("CuDNNLSTM", "CuDNNGRU"):
        if len(weights) != 3:
            raise UnsupportedError(f"{cls} has {len(weights)} weight arrays, expected 3")
        fn = from_keras_cudnn_lstm if cls == "CuDNNLSTM" else from_keras_cudnn_gru
        return fn(*weights, name=name)
    cfg = dict(cfg, go_backwards=False)
    if cls == "GRU" and "reset_after" not in cfg:  # Keras < 2.1.3: always reset-before; Keras 3 writes it
        cfg["reset_after"] = weights[2].ndim == 2 if len(weights) > 2 else cv.keras_version >= 3
    return from_keras_layer(cls, cfg, weights, keras_version=cv.keras_version, name=name)[0]


def _zero_cell(cell: Any) -> Any:
    z = {k: {g: np.zeros_like(a) for g, a in getattr(cell, k).items()} for k in ("W", "R", "Wb", "Rb")}
    return dataclasses.replace(cell, name=f"{cell.name}/unused_forward", **z)


def _seq_lengths(cv: KerasConverter, mask: Any, name: str) -> Any:
    key = ("lengths", id(mask))
    if key not in cv.cache:
        total = cv.net.add_reduce(mask, "sum", [1], keep_dims=False, name=f"{name}/mask_count").output
        cv.cache[key] = cv.net.add_cast(total, "int32", name=f"{name}/seq_lengths").output
    return cv.cache[key]


def _compaction(cv: KerasConverter, mask: Any, S: int, name: str) -> tuple[Any, Any, Any]:
    """For a fixed length S: Q [N, S, S] with Q[n, t, j] = 1 where j = (unmasked steps up to t) - 1
    (at least 0), the same times the mask (moves the unmasked steps to the front, in order),
    and has_prev [N, S] (a real step at or before t)."""
    key = ("compaction", id(mask))
    if key in cv.cache:
        return cv.cache[key]
    net = cv.net
    upper = net.add_constant((S, S), np.triu(np.ones((S, S), np.float32)), name=f"{name}/upper").output
    count = net.add_matrix_multiply(mask, "none", upper, "none", name=f"{name}/steps_so_far").output
    one = net.add_constant((), np.float32(1.0), name=f"{name}/one").output
    zero = net.add_constant((), np.float32(0.0), name=f"{name}/zero").output
    rank = net.add_elementwise(net.add_elementwise(count, one, "sub", name=f"{name}/rank1").output, zero, "max",
                               name=f"{name}/rank").output
    rank3 = net.add_shuffle(rank, reshape_dims=(0, S, 1), name=f"{name}/rank3").output
    positions = net.add_constant((1, 1, S), np.arange(S, dtype=np.float32).reshape(1, 1, S),
                                 name=f"{name}/positions").output
    q = net.add_cast(net.add_elementwise(rank3, positions, "equal", name=f"{name}/is_slot").output, "float32",
                     name=f"{name}/slots").output
    m3 = net.add_shuffle(mask, reshape_dims=(0, S, 1), name=f"{name}/mask3").output
    qm = net.add_elementwise(q, m3, "prod", name=f"{name}/real_slots").output
    has_prev = net.add_elementwise(count, one, "min", name=f"{name}/has_prev").output
    cv.cache[key] = (q, qm, has_prev)
    return cv.cache[key]


def _pick(cv: KerasConverter, t: Any, axis: int, index: int, name: str) -> Any:
    """t with `axis` (of size 2: forward, backward) reduced to entry `index`."""
    idx = cv.net.add_constant((1,), np.array([index], np.int32), name=f"{name}/index").output
    one = cv.net.add_gather(t, idx, axis=axis, name=f"{name}/gather").output
    dims = [0] * axis + [t.shape[-1]] if axis == t.rank - 2 else None
    if dims is None:
        raise UnsupportedError(f"cannot pick along axis {axis} of {t.name}")
    return cv.net.add_shuffle(one, reshape_dims=dims, name=name).output


def recurrent(cv: KerasConverter, name: str, cls: str, cfg: dict, cells: list[Any], x: Any, mask: Any,
              merge_mode: Any = "concat") -> list[TV]:
    """Add the RNN of a Keras recurrent layer (one cell, or forward + backward) on x [N, S, F]."""
    net = cv.net
    if x.rank != 3:
        raise UnsupportedError(f"needs a sequence input [N, S, F]; it gets {x.name} of rank {x.rank}")
    bidir = len(cells) == 2
    seqs, ret_state = bool(cfg.get("return_sequences", False)), bool(cfg.get("return_state", False))
    S = x.shape[1]
    H = cells[0].hidden_size
    lengths = _seq_lengths(cv, mask, name) if mask is not None else None
    step_mask = mask  # the mask in processing order
    backward_only = False
    if cfg.get("go_backwards") and not bidir:
        if S is not None:  # Keras reverses the input (and its mask), then runs forward
            rev = net.add_constant((S,), np.arange(S - 1, -1, -1, dtype=np.int32), name=f"{name}/reverse_index")
            x = net.add_gather(x, rev.output, axis=1, name=f"{name}/reversed_input").output
            if mask is not None:
                step_mask = net.add_gather(mask, rev.output, axis=1, name=f"{name}/reversed_mask").output
        elif mask is not None:
            raise UnsupportedError("go_backwards=True on a masked sequence needs a fixed sequence length")
        elif not seqs and not ret_state:
            cells = [_zero_cell(cells[0]), cells[0]]
            backward_only = True
        else:
            raise UnsupportedError("go_backwards=True with return_sequences/return_state needs a fixed sequence "
                                   "length (give the Input a shape with the length)")
    compact = None
    if step_mask is not None and S is not None:
        # a fixed length: the unmasked steps are moved to the front, so masked steps anywhere
        # (left padding, holes) are skipped exactly as Keras skips them
        compact = _compaction(cv, step_mask, S, f"{name}/mask" if step_mask is not mask else f"{name}/reversed_mask")
        x = net.add_matrix_multiply(compact[1], "transpose", x, "none", name=f"{name}/compacted").output
    states = bool(cv.states) and len(cells) == 1
    io = add_recurrent(net, x, [tuple(cells)], name, states=states, seq_lengths=lengths, max_seq_length=S)
    cv.state_names += [t.name for t in io.state_inputs] + [t.name for t in io.state_outputs]
    cv.rnn_cards.append({"name": name, "class": cls, "units": H, "input_size": cells[-1].input_size,
                         "kind": cells[0].kind, "return_sequences": seqs,
                         "direction": "bidirectional" if bidir else ("backward" if cfg.get("go_backwards") else
                                                                     "forward")})
    rnn = io.output.producer
    y, h_n = io.output, rnn.get_output(1)
    c_n = rnn.get_output(2) if cells[0].kind == "lstm" else None
    cv.mask_out = mask if seqs else None
    if compact is not None and seqs:  # back to the input's positions: Keras' output at a masked step is
        # the previous output for a plain layer (0 before the first real step) and 0 inside Bidirectional
        y = net.add_matrix_multiply(compact[0], "none", y, "none", name=f"{name}/expanded").output
        keep = step_mask if bidir else compact[2]
        keep3 = net.add_shuffle(keep, reshape_dims=(0, S, 1), name=f"{name}/keep3").output
        y = net.add_elementwise(y, keep3, "prod", name=f"{name}/y_at_steps").output
    if backward_only:
        return [TV(_pick(cv, h_n, 1, 1, f"{name}/last"))]
    if not bidir:
        last = net.add_shuffle(h_n, reshape_dims=(0, H), name=f"{name}/last").output
        if seqs and mask is not None and compact is None:  # right padding: Keras repeats the last real
            # output at padded steps; ONNX gives 0
            m3 = net.add_shuffle(mask, reshape_dims=(0, 0, 1), name=f"{name}/mask3").output
            pad = net.add_scale(m3, "uniform", shift=np.float32(1.0), scale=np.float32(-1.0), name=f"{name}/pad").output
            last3 = net.add_shuffle(last, reshape_dims=(0, 1, H), name=f"{name}/last3").output
            fill = net.add_elementwise(pad, last3, "prod", name=f"{name}/pad_fill").output
            y = net.add_elementwise(y, fill, "sum", name=f"{name}/masked_y").output
        outs = [TV(y if seqs else last)]
        if ret_state:
            outs.append(TV(last))
            if c_n is not None:
                outs.append(TV(net.add_shuffle(c_n, reshape_dims=(0, H), name=f"{name}/last_c").output))
        return outs
    # bidirectional: y [N, S, 2H] = [forward, backward] per step; h_n [N, 2, H]
    op = _MERGE[merge_mode]
    if merge_mode is None:
        if seqs:
            y4 = net.add_shuffle(y, reshape_dims=(0, 0, 2, H), name=f"{name}/y_dirs").output
            outs = [TV(_pick(cv, y4, 2, d, f"{name}/{w}")) for d, w in enumerate(("forward", "backward"))]
        else:
            outs = [TV(_pick(cv, h_n, 1, d, f"{name}/{w}_last")) for d, w in enumerate(("forward", "backward"))]
    elif seqs:
        if op is None:
            outs = [TV(y)]
        else:
            y4 = net.add_shuffle(y, reshape_dims=(0, 0, 2, H), name=f"{name}/y_dirs").output
            outs = [TV(net.add_reduce(y4, op, [2], keep_dims=False, name=f"{name}/{merge_mode}").output)]
    elif op is None:
        outs = [TV(net.add_shuffle(h_n, reshape_dims=(0, 2 * H), name=f"{name}/last").output)]
    else:
        outs = [TV(net.add_reduce(h_n, op, [1], keep_dims=False, name=f"{name}/{merge_mode}").output)]
    if ret_state:
        for d, w in enumerate(("forward", "backward")):
            outs.append(TV(_pick(cv, h_n, 1, d, f"{name}/{w}_h")))
            if c_n is not None:
                outs.append(TV(_pick(cv, c_n, 1, d, f"{name}/{w}_c")))
    return outs


def _rnn_handler(cls: str) -> Any:
    def handler(cv, name, cfg, args, ref):
        x = cv.plain(args[0])
        cell = cell_of(cv, cls, cfg, cv.weights(name, 2), name)
        return recurrent(cv, name, cls, cfg, [cell], x, cv.in_masks[0] if cv.in_masks else None)
    return handler


for _c in RNN_CLASSES:
    LAYERS[_c] = _rnn_handler(_c)


@layer("Bidirectional")
def _bidirectional(cv, name, cfg, args, ref):
    inner = cfg.get("layer") or {}
    cls, icfg = inner.get("class_name", ""), inner.get("config") or {}
    w = cv.weights(name, 4)
    if len(w) % 2:
        raise UnsupportedError(f"an odd number of weight arrays ({len(w)})")
    half = len(w) // 2
    cells = [cell_of(cv, cls, icfg, w[:half], f"{name}/forward"), cell_of(cv, cls, icfg, w[half:], f"{name}/backward")]
    x = cv.plain(args[0])
    return recurrent(cv, name, "Bidirectional", icfg, cells, x, cv.in_masks[0] if cv.in_masks else None,
                     cfg.get("merge_mode", "concat"))

"""TF1 name-based checkpoints of recurrent models -> Network.

The flow: list variables (names, shapes) -> `recognize_tf1` finds cells, embedding and
head -> settings that are not variables come from options, the `.meta` graph, or the TF
default (recorded as an assumption) -> per-cell weights via `tf2rt.layouts.from_tf_*`
-> a Network: ids -> embedding Gather (or one-hot) -> RNNv2 stack -> dense head -> softmax.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import UnsupportedError
from .card import ModelCard
from .meta_graph import MetaGraph, find_meta, read_meta_graph
from .recognize import CellSpec, TF1Model, recognize_tf1

log = logging.getLogger("tf2rt.convert")

#: TF defaults for settings a checkpoint does not store.
TF_DEFAULT_FORGET_BIAS = {"BasicLSTMCell": 1.0, "LSTMCell": 1.0, "CudnnCompatibleLSTMCell": 0.0}


# max_seq_length for inputs whose sequence dimension is dynamic (the engine accepts any length).
_ANY_LENGTH = 1 << 16


@dataclass
class RecurrentIO:
    """Tensors of one recurrent block added by `add_recurrent`."""

    output: Any  # y [N, S, dirs*H]
    state_inputs: list[Any] = field(default_factory=list)
    state_outputs: list[Any] = field(default_factory=list)


def add_recurrent(
    net: Any, x: Any, stack: Sequence[Sequence[Any]], name: str, *, states: bool,
    seq_lengths: Any = None, max_seq_length: int | None = None,
) -> RecurrentIO:
    """Add an RNNv2 layer for a stack of CellWeights (per layer: (cell,) or (fw, bw)).

    With `states`, the initial states become network inputs `{name}/initial_h` (and
    `/initial_c` for LSTM), [N, layers*dirs, H], and the final states outputs
    `{name}/final_h` (`/final_c`), marked as a streaming state pair.
    """
    first = stack[0][0]
    dirs = len(stack[0])
    L, H = len(stack), first.hidden_size
    op = first.kind if first.kind != "rnn" else first.activation
    rnn = net.add_rnn_v2(
        x, L, H, int(max_seq_length or _ANY_LENGTH), op,
        direction="bidirection" if dirs == 2 else "unidirection", name=name,
    )
    for l, layer in enumerate(stack):
        for d, cell in enumerate(layer):
            rnn.set_cell(l * dirs + d, cell, name=cell.name or None)
    io = RecurrentIO(rnn.get_output(0))
    if seq_lengths is not None:
        rnn.seq_lengths = seq_lengths
    if states:
        h0 = net.add_input(f"{name}/initial_h", "float32", (None, L * dirs, H))
        rnn.hidden_state = h0
        io.state_inputs.append(h0)
        hn = rnn.get_output(1)
        net.mark_output(hn, f"{name}/final_h")
        io.state_outputs.append(hn)
        if first.kind == "lstm":
            c0 = net.add_input(f"{name}/initial_c", "float32", (None, L * dirs, H))
            rnn.cell_state = c0
            io.state_inputs.append(c0)
            cn = rnn.get_output(2)
            net.mark_output(cn, f"{name}/final_c")
            io.state_outputs.append(cn)
        if hasattr(net, "mark_state"):
            for i, o in zip(io.state_inputs, io.state_outputs):
                net.mark_state(i, o)
    return io


def add_dense(net: Any, x: Any, kernel: np.ndarray, bias: np.ndarray | None, name: str) -> Any:
    """x @ kernel (+ bias) over the last dimension; kernel [K, units] as TF/Keras store it."""
    w = net.add_constant(kernel.shape, kernel, name=f"{name}/kernel").get_output(0)
    y = net.add_matrix_multiply(x, "none", w, "none", name=f"{name}/MatMul").get_output(0)
    if bias is not None:
        b = net.add_constant(bias.shape, bias, name=f"{name}/bias").get_output(0)
        y = net.add_elementwise(y, b, "sum", name=f"{name}/BiasAdd").get_output(0)
    return y


def checkpoint_prefix(path: str | Path) -> Path:
    """The checkpoint prefix for a prefix, a `.index`/`.meta`/`.data-*` file or a directory."""
    p = Path(path)
    if p.is_dir():
        state = p / "checkpoint"
        if state.is_file():
            from ..limits import MAX_TEXT_BYTES, read_capped

            text = read_capped(state, MAX_TEXT_BYTES, "checkpoint state file").decode("utf-8", "replace")
            for line in text.splitlines():
                if line.startswith("model_checkpoint_path:"):
                    value = line.split(":", 1)[1].strip().strip('"')
                    cand = Path(value) if Path(value).is_absolute() else p / value
                    if Path(str(cand) + ".index").is_file():
                        return cand
        indexes = sorted(p.glob("*.index"))
        if len(indexes) == 1:
            return indexes[0].with_suffix("")
        raise UnsupportedError(
            f"{p} holds {len(indexes)} checkpoints (*.index files) and no usable 'checkpoint' state file; "
            "pass the checkpoint prefix, e.g. DIR/model.ckpt-1000"
        )
    s = str(p)
    for suffix in (".index", ".meta"):
        if s.endswith(suffix):
            return Path(s[: -len(suffix)])
    if ".data-" in p.name:
        return Path(s[: s.rindex(".data-")])
    return p


def _cell_tail(spec: CellSpec, rnn_scope: str) -> list[str]:
    scope = spec.scope
    if rnn_scope and scope.startswith(rnn_scope + "/"):
        scope = scope[len(rnn_scope) + 1:]
    return [p for p in scope.split("/") if p not in ("bidirectional_rnn",)]


class _Settings:
    """Picks settings (option > .meta graph > TF default) and groups the defaults it assumed."""

    def __init__(self, card: ModelCard):
        self.card = card
        self.assumed: dict[tuple[str, Any, str], list[str]] = {}

    def pick(self, cell: str, what: str, option: Any, from_meta: Any, default: Any, flag: str) -> Any:
        card = self.card
        if option is not None:
            if from_meta is not None and from_meta != option:
                card.assume(f"{cell}: {what}={option!r} from {flag} overrides {from_meta!r} in the .meta graph")
            card.setting(f"{cell}.{what}", option, flag)
            return option
        if from_meta is not None:
            card.setting(f"{cell}.{what}", from_meta, ".meta graph")
            return from_meta
        card.setting(f"{cell}.{what}", default, "TF default (assumed)")
        self.assumed.setdefault((what, default, flag), []).append(cell)
        return default

    def report(self) -> None:
        for (what, default, flag), cells in self.assumed.items():
            self.card.assume(
                f"{what} is not stored in the checkpoint; assumed the TF default {default!r} for "
                f"{len(cells)} cell(s) ({', '.join(cells)}); pass {flag} if the model used another value")


def tf1_network(
    src: Any, prefix: Path, *, meta: bool | str | Path = True, forget_bias: float | None = None,
    activation: str | None = None, states: bool | None = None, card: ModelCard, ignore: Sequence[str] = (),
) -> Any:
    """Build the Network of a TF1 recurrent checkpoint (`src` is its WeightSource)."""
    from ..layouts.tf import from_tf_cudnn_gru, from_tf_cudnn_lstm, from_tf_gru, from_tf_lstm, from_tf_rnn
    from ..network import Network

    infos = src.infos()
    shapes = {i.name: tuple(i.shape) for i in infos if i.kind == "variable"}
    ignored = [i.name for i in infos if i.kind != "variable"] + [n for n in ignore if n in shapes]
    unknown = [n for n in ignore if n not in shapes]
    if unknown:
        raise UnsupportedError(f"--ignore names variables the checkpoint does not hold: {', '.join(unknown)}")
    model = recognize_tf1({k: v for k, v in shapes.items() if k not in ignore}, ignored)
    card.ignored = len(model.ignored)
    if model.unplaced:
        text = (f"{len(model.unplaced)} variable(s) are not part of a recognised cell, embedding or output layer "
                f"and were ignored: {', '.join(model.unplaced)} (convert with the .meta graph to let the graph "
                "decide, or --ignore NAME to silence this)")
        log.warning(text)
        card.assume(text)
        card.ignored += len(model.unplaced)

    graph: MetaGraph | None = None
    meta_path = None
    if meta:
        meta_path = Path(meta) if isinstance(meta, (str, Path)) and not isinstance(meta, bool) else find_meta(prefix)
        if meta_path is not None:
            graph = read_meta_graph(meta_path)
    card.detected["meta_graph"] = str(meta_path) if graph is not None else None
    if graph is None:
        card.assume("no .meta graph: settings not stored as variables come from flags or TF defaults")

    read: Callable[[str], np.ndarray] = lambda n: np.asarray(src.read(n), dtype=np.float32)  # noqa: E731
    stack: list[tuple[Any, ...]] = []
    settings = _Settings(card)
    unsupported: list[str] = []
    layer_cards = []
    for layer in model.layers:
        cells = []
        for spec in layer:
            where = spec.scope
            st = graph.cell_settings(_cell_tail(spec, model.rnn_scope), spec.kind) if graph else None
            meta_act = st.activation if st else None
            if meta_act is not None and meta_act.startswith("op:"):
                unsupported.append(f"{where}: activation op {meta_act[3:]!r} is not supported (tanh, relu, sigmoid)")
                meta_act = None
            act = settings.pick(where, "activation", activation, meta_act, "tanh", "--activation")
            v = {role: read(name) for role, name in spec.variables.items()}
            try:
                if spec.cell_class == "CudnnCompatibleLSTMCell":
                    cell = from_tf_cudnn_lstm(v["kernel"], v["bias"], v.get("bias_cudnn_0"), v.get("bias_cudnn_1"),
                                              name=where)
                elif spec.cell_class == "CudnnCompatibleGRUCell":
                    cell = from_tf_cudnn_gru(
                        v["gates/kernel"], v["gates/bias"], v["candidate/input_projection/kernel"],
                        v["candidate/input_projection/bias"], v["candidate/hidden_projection/kernel"],
                        v["candidate/hidden_projection/bias"], name=where)
                elif spec.kind == "lstm":
                    fb_meta = st.forget_bias if st else None
                    fb = settings.pick(where, "forget_bias", forget_bias, fb_meta,
                                       TF_DEFAULT_FORGET_BIAS.get(spec.cell_class, 1.0), "--forget-bias")
                    clip = st.cell_clip if st else None
                    if spec.cell_class == "LSTMCell":
                        if st is not None and st.activation is not None:  # the graph shows the cell: clip known
                            card.setting(f"{where}.cell_clip", clip, ".meta graph")
                        else:
                            settings.pick(where, "cell_clip", None, None, None, "a .meta graph")
                    peep = all(k in v for k in ("w_i_diag", "w_f_diag", "w_o_diag"))
                    cell = from_tf_lstm(
                        v["kernel"], v["bias"], forget_bias=float(fb),
                        w_i_diag=v.get("w_i_diag") if peep else None, w_f_diag=v.get("w_f_diag") if peep else None,
                        w_o_diag=v.get("w_o_diag") if peep else None, projection=v.get("projection/kernel"),
                        cell_clip=clip, proj_clip=st.proj_clip if st else None,
                        activation=act, name=where)
                    if "projection/kernel" in v:
                        unsupported.append(f"{where}: LSTMCell projection (num_proj) cannot be expressed by "
                                           "the engine's ONNX LSTM")
                    if clip is not None or (st is not None and st.proj_clip is not None):
                        unsupported.append(f"{where}: LSTMCell cell_clip/proj_clip clip the cell state / output; "
                                           "ONNX LSTM's clip acts on gate inputs, so it cannot be expressed")
                    if any(k in v for k in ("w_i_diag", "w_f_diag", "w_o_diag")) and not peep:
                        unsupported.append(f"{where}: incomplete peephole variables")
                elif spec.kind == "gru":
                    cell = from_tf_gru(v["gates/kernel"], v["gates/bias"], v["candidate/kernel"],
                                       v["candidate/bias"], activation=act, name=where)
                else:
                    cell = from_tf_rnn(v["kernel"], v["bias"], activation=act, name=where)
            except UnsupportedError as exc:
                unsupported.append(f"{where}: {exc}")
                continue
            if spec.kind == "rnn" and act not in ("tanh", "relu"):
                unsupported.append(f"{where}: BasicRNNCell activation {act!r} (the engine supports tanh, relu)")
            cells.append(cell)
            layer_cards.append({"scope": spec.scope, "class": spec.cell_class, "layer": spec.layer,
                                "direction": spec.direction or "forward", "input_size": spec.input_size,
                                "hidden_size": spec.hidden_size})
        stack.append(tuple(cells))
    settings.report()
    if unsupported:
        raise UnsupportedError("cannot convert this checkpoint:\n" + "\n".join(f"  - {u}" for u in unsupported))

    # --- inputs ---------------------------------------------------------------------------
    net = Network(name=model.rnn_scope or "rnn")
    placeholders = {p.name: p for p in graph.placeholders()} if graph else {}
    one_hot = graph.one_hot() if graph else None
    input_name = None
    if model.embedding and graph:
        input_name = graph.embedding_input(model.embedding)
    elif one_hot:
        input_name = one_hot[0]
    ph = placeholders.get(input_name or "")
    seq = ph.shape[1] if ph is not None and ph.shape and len(ph.shape) >= 2 else None
    E = model.input_size
    if model.embedding:
        V = int(model.vocab or 0)
        name = input_name or "input"
        ids = net.add_input(name, "int32", (None, None))
        table = net.add_constant((V, E), read(model.embedding), name=model.embedding)
        x = net.add_gather(table.get_output(0), ids, axis=0, name=f"{model.embedding}_lookup").get_output(0)
        card.detected["input"] = {"kind": "embedding", "variable": model.embedding, "vocab": V, "size": E,
                                  "name": name}
    elif model.head_size == E or (one_hot and one_hot[1] == E):
        name = input_name or "input"
        ids = net.add_input(name, "int32", (None, None))
        if not one_hot:
            card.assume(f"no embedding variable and the RNN input size equals the output vocabulary ({E}): "
                        "assumed one-hot input ids (tf.one_hot)")
        eye = net.add_constant((E, E), np.eye(E, dtype=np.float32), name="one_hot")
        x = net.add_gather(eye.get_output(0), ids, axis=0, name="one_hot_lookup").get_output(0)
        card.detected["input"] = {"kind": "one_hot", "depth": E, "name": name}
    else:
        name = input_name or "inputs"
        x = net.add_input(name, "float32", (None, None, E))
        card.detected["input"] = {"kind": "features", "size": E, "name": name}

    seq_len_input = None
    if graph:
        seq_ph = graph.uses_sequence_length(model.rnn_scope)
        if seq_ph:
            seq_len_input = net.add_input(seq_ph, "int32", (None,))
            card.detected["sequence_length"] = seq_ph
    if states is None:
        states = model.directions == 1
    rnn_name = model.rnn_scope or "rnn"
    sizes = [layer[0].hidden_size for layer in stack]
    if len(set(sizes)) == 1:
        io = add_recurrent(net, x, stack, rnn_name, states=states, seq_lengths=seq_len_input, max_seq_length=seq)
    else:
        # One RNNv2 layer holds layers of one hidden size: chain one block per layer, each with
        # its own state tensors named after the layer ("rnnlm/cell_0/initial_h", ...).
        io = RecurrentIO(x)
        for l, layer in enumerate(stack):
            part = add_recurrent(net, io.output, [layer], f"{rnn_name}/cell_{l}", states=states,
                                 seq_lengths=seq_len_input, max_seq_length=seq)
            io = RecurrentIO(part.output, io.state_inputs + part.state_inputs, io.state_outputs + part.state_outputs)
    card.detected["rnn"] = {"stack": model.stack, "kind": model.kind, "layers": layer_cards}

    # --- head -----------------------------------------------------------------------------
    softmax = graph.softmax() if graph else None
    if model.head_w:
        W = read(model.head_w)
        b = read(model.head_b) if model.head_b else None
        logits_name = softmax[1] if softmax and softmax[1] else "logits"
        head_scope = model.head_w.rsplit("/", 1)[0] if "/" in model.head_w else model.head_w
        logits = add_dense(net, io.output, W, b, head_scope)
        net.mark_output(logits, logits_name)
        probs_name = softmax[0] if softmax else "probs"
        probs = net.add_softmax(logits, axis=-1, name=probs_name).get_output(0)
        net.mark_output(probs, probs_name)
        card.detected["head"] = {"kernel": model.head_w, "bias": model.head_b, "units": int(W.shape[1]),
                                 "logits": logits_name, "probs": probs_name}
        if not softmax:
            card.assume("no .meta graph: the head's outputs are named 'logits' and 'probs'")
    else:
        net.mark_output(io.output, "outputs")
        card.detected["head"] = None
    card.summary = _summary(model)
    card.states = [t.name for t in io.state_inputs] + [t.name for t in io.state_outputs]
    return net


def _summary(model: TF1Model) -> str:
    parts = []
    if model.embedding:
        parts.append(f"embedding {model.vocab}x{model.input_size}")
    else:
        parts.append(f"input {model.input_size}")
    first = model.layers[0][0]
    bi = "bidirectional " if model.directions == 2 else ""
    parts.append(f"{len(model.layers)}x {bi}{first.cell_class}({first.hidden_size})")
    if model.head_w:
        parts.append(f"dense {model.head_size} + softmax")
    return " -> ".join(parts)

"""Recognise a TF1 recurrent model from its checkpoint variable names and shapes.

A name-based TF1 checkpoint holds variables such as
`rnnlm/multi_rnn_cell/cell_0/basic_lstm_cell/kernel [E+H, 4H]`, `rnnlm/embedding [V, E]`
and `rnnlm/softmax_w [H, V]`. From names and shapes alone we find the recurrent cells
(class, layer, direction, sizes), the input (embedding, one-hot or dense features) and the
output head. Settings that are not variables (forget_bias, activations) come later, from
the `.meta` graph or from options. Every variable must be accounted for: anything left
over is reported by name, so nothing is silently dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from ..errors import UnsupportedError

#: Cell scope directory -> (cell class, kind, variable roles: required, optional).
CELL_CLASSES: dict[str, tuple[str, str, tuple[str, ...], tuple[str, ...]]] = {
    "basic_lstm_cell": ("BasicLSTMCell", "lstm", ("kernel", "bias"), ()),
    "lstm_cell": (
        "LSTMCell", "lstm", ("kernel", "bias"),
        ("w_i_diag", "w_f_diag", "w_o_diag", "projection/kernel"),
    ),
    "gru_cell": ("GRUCell", "gru", ("gates/kernel", "gates/bias", "candidate/kernel", "candidate/bias"), ()),
    "basic_rnn_cell": ("BasicRNNCell", "rnn", ("kernel", "bias"), ()),
    "cudnn_compatible_lstm_cell": (
        "CudnnCompatibleLSTMCell", "lstm", ("kernel", "bias"), ("bias_cudnn_0", "bias_cudnn_1"),
    ),
    "cudnn_compatible_gru_cell": (
        "CudnnCompatibleGRUCell", "gru",
        ("gates/kernel", "gates/bias", "candidate/input_projection/kernel",
         "candidate/input_projection/bias", "candidate/hidden_projection/kernel",
         "candidate/hidden_projection/bias"),
        (),
    ),
}
# TF < 1.0 named the weights of the same cells "weights"/"biases".
_LEGACY_ROLES = {"weights": "kernel", "biases": "bias"}

#: Names of optimizer/bookkeeping tensors, in case a reader reports them as variables.
_SLOT_RE = re.compile(
    r"(/(Adam|Adam_\d+|Momentum|RMSProp|RMSProp_\d+|Adagrad|Adadelta|Adadelta_\d+|Ftrl|Ftrl_\d+|"
    r"ExponentialMovingAverage|AdamW|Nadam)$)|(^|/)(beta1_power|beta2_power|global_step)(_\d+)?$"
)
_EMBEDDING_NAMES = ("embedding", "embeddings", "embedding_matrix", "embedding_weights", "emb",
                    "word_embedding", "char_embedding", "embed", "embedding_table")
_HEAD_PAIRS = (("softmax_w", "softmax_b"), ("w", "b"), ("weights", "biases"), ("kernel", "bias"),
               ("W", "b"), ("proj_w", "proj_b"), ("output_w", "output_b"), ("out_w", "out_b"),
               ("weight", "bias"))


@dataclass
class CellSpec:
    """One direction of one layer of a TF1 recurrent stack, as found in the checkpoint."""

    scope: str  # e.g. "rnnlm/multi_rnn_cell/cell_0/basic_lstm_cell"
    cell_class: str  # "BasicLSTMCell", "LSTMCell", "GRUCell", ...
    kind: str  # "lstm" | "gru" | "rnn"
    layer: int
    direction: str  # "fw", "bw" or "" (unidirectional)
    variables: dict[str, str]  # role -> checkpoint name
    input_size: int = 0
    hidden_size: int = 0
    output_size: int = 0  # hidden_size, or P with a projection

    @property
    def label(self) -> str:
        d = f" {self.direction}" if self.direction else ""
        return f"layer {self.layer}{d}: {self.cell_class}({self.hidden_size})"


@dataclass
class TF1Model:
    """What `recognize_tf1` found."""

    layers: list[tuple[CellSpec, ...]]  # per layer: (cell,) or (fw, bw)
    stack: str  # "multi_rnn_cell", "single", "stack_bidirectional_rnn", "bidirectional_rnn"
    rnn_scope: str  # the common scope of the stack, e.g. "rnnlm"
    embedding: str | None = None  # variable name
    vocab: int | None = None
    input_size: int = 0
    head_w: str | None = None
    head_b: str | None = None
    head_size: int | None = None
    ignored: list[str] = field(default_factory=list)  # optimizer slots / bookkeeping
    unplaced: list[str] = field(default_factory=list)  # variables no cell, embedding or head uses

    @property
    def directions(self) -> int:
        return len(self.layers[0])

    @property
    def kind(self) -> str:
        return self.layers[0][0].kind

    @property
    def output_width(self) -> int:
        return self.directions * self.layers[-1][0].output_size


def is_slot_name(name: str) -> bool:
    """True for names of optimizer slots and training bookkeeping tensors."""
    return bool(_SLOT_RE.search(name))


def _cell_match(name: str) -> tuple[str, str, str] | None:
    """(scope, cell dir, role) when `name` is a variable of a known TF cell."""
    parts = name.split("/")
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] in CELL_CLASSES:
            role = "/".join(parts[i + 1:])
            role = _LEGACY_ROLES.get(role, role)
            cls = CELL_CLASSES[parts[i]]
            if role in cls[2] or role in cls[3]:
                return "/".join(parts[: i + 1]), parts[i], role
    return None


_LAYER_RE = re.compile(r"(?:^|/)cell_(\d+)(?:/|$)")


def _layer_and_direction(scope: str) -> tuple[int, str, str]:
    """(layer index, direction, stack style) from a cell's variable scope."""
    parts = scope.split("/")
    direction = ""
    for p in parts:
        if p in ("fw", "bw"):
            direction = p
    m = list(_LAYER_RE.finditer(scope))
    layer = int(m[-1].group(1)) if m else 0
    if "stack_bidirectional_rnn" in scope or re.search(r"cell_\d+/bidirectional_rnn/(fw|bw)/", scope):
        style = "stack_bidirectional_rnn"
    elif direction:
        style = "bidirectional_rnn"
    elif "multi_rnn_cell" in parts:
        style = "multi_rnn_cell"
    else:
        style = "single"
    return layer, direction, style


def _stack_key(scope: str) -> str:
    """The scope with layer/direction parts removed: equal for all cells of one stack."""
    key = re.sub(r"/[^/]+$", "", scope)  # drop the cell directory
    key = re.sub(r"(^|/)(multi_rnn_cell/)?cell_\d+(?=/|$)", r"\1", key)
    key = re.sub(r"(^|/)(fw|bw)(?=/|$)", r"\1", key)
    key = re.sub(r"/bidirectional_rnn(?=/|$)|/multi_rnn_cell(?=/|$)", "", key)
    return re.sub(r"/+", "/", key).strip("/")


def recognize_tf1(shapes: dict[str, tuple[int, ...]], ignored: Iterable[str] = ()) -> TF1Model:
    """Recognise the recurrent stack, input and head from variable names -> shapes.

    Raises UnsupportedError listing EVERY variable or structure it cannot place.
    """
    problems: list[str] = []
    cells: dict[str, CellSpec] = {}
    rest: dict[str, tuple[int, ...]] = {}
    ignored = list(ignored)
    for name, shape in sorted(shapes.items()):
        if is_slot_name(name):
            ignored.append(name)
            continue
        m = _cell_match(name)
        if m is None:
            rest[name] = tuple(shape)
            continue
        scope, cdir, role = m
        cls, kind, _req, _opt = CELL_CLASSES[cdir]
        if scope not in cells:
            layer, direction, _ = _layer_and_direction(scope)
            cells[scope] = CellSpec(scope, cls, kind, layer, direction, {})
        cells[scope].variables[role] = name

    if not cells:
        names = ", ".join(sorted(rest)[:20]) or "(none)"
        raise UnsupportedError(
            "no TF recurrent cell variables found (expected names like "
            "'rnn/multi_rnn_cell/cell_0/basic_lstm_cell/kernel'); the checkpoint holds: " + names
        )

    for spec in cells.values():
        _req = CELL_CLASSES[spec.scope.rsplit("/", 1)[-1]][2]
        missing = [r for r in _req if r not in spec.variables]
        if missing:
            problems.append(f"cell {spec.scope!r} ({spec.cell_class}) lacks variable(s) {missing}")
            continue
        _sizes(spec, shapes, problems)

    keys = sorted({_stack_key(s) for s in cells})
    if len(keys) > 1:
        problems.append(
            f"found {len(keys)} separate recurrent stacks ({', '.join(repr(k or '/') for k in keys)}); "
            "tf2rt convert handles one stack per model (encoder-decoder models are not supported)"
        )
    styles = {_layer_and_direction(s)[2] for s in cells}
    style = "stack_bidirectional_rnn" if "stack_bidirectional_rnn" in styles else sorted(styles)[0]

    # Group into layers: (fw,) or (fw, bw).
    by_layer: dict[int, dict[str, CellSpec]] = {}
    for spec in cells.values():
        slot = by_layer.setdefault(spec.layer, {})
        if spec.direction in slot:
            problems.append(f"two cells for layer {spec.layer} {spec.direction or ''}: "
                            f"{slot[spec.direction].scope!r} and {spec.scope!r}")
        slot[spec.direction] = spec
    layers: list[tuple[CellSpec, ...]] = []
    for l in sorted(by_layer):
        slot = by_layer[l]
        if set(slot) == {""}:
            layers.append((slot[""],))
        elif set(slot) == {"fw", "bw"}:
            layers.append((slot["fw"], slot["bw"]))
        else:
            problems.append(f"layer {l} has directions {sorted(slot)}; expected one cell or fw and bw")
    if sorted(by_layer) != list(range(len(by_layer))):
        problems.append(f"layer indices {sorted(by_layer)} are not 0..{len(by_layer) - 1}")
    if style == "bidirectional_rnn" and len(layers) > 1:
        problems.append(
            "bidirectional_dynamic_rnn over MultiRNNCell stacks (each direction a separate "
            f"{len(layers)}-layer stack) is not supported; use stack_bidirectional_dynamic_rnn"
        )
    if problems:
        raise UnsupportedError(_problem_text(problems))

    kinds = {c.kind for layer in layers for c in layer}
    if len(kinds) > 1:
        problems.append(f"the stack mixes cell kinds {sorted(kinds)}; one kind per model is supported")
    dirs = len(layers[0])
    for l in range(1, len(layers)):
        want = dirs * layers[l - 1][0].output_size
        for c in layers[l]:
            if c.input_size != want:
                problems.append(f"{c.scope!r}: input size {c.input_size} but the layer below outputs {want}")
    first_in = layers[0][0].input_size
    for c in layers[0]:
        if c.input_size != first_in:
            problems.append(f"{c.scope!r}: input size {c.input_size} differs from {first_in}")

    model = TF1Model(layers=layers, stack=style, rnn_scope=keys[0] if keys else "", ignored=ignored,
                     input_size=first_in)
    _find_input_and_head(model, rest, problems)
    if problems:
        raise UnsupportedError(_problem_text(problems))
    return model


def _problem_text(problems: Sequence[str]) -> str:
    lines = [f"cannot convert this checkpoint ({len(problems)} problem(s)):"]
    lines += [f"  - {p}" for p in problems]
    return "\n".join(lines)


def _sizes(spec: CellSpec, shapes: dict[str, tuple[int, ...]], problems: list[str]) -> None:
    v = spec.variables
    if spec.kind == "lstm":
        k = shapes[v["kernel"]]
        if len(k) != 2 or k[1] % 4:
            problems.append(f"{v['kernel']!r} has shape {k}; an LSTM kernel is [input + H, 4H]")
            return
        H = k[1] // 4
        out = H
        if "projection/kernel" in v:
            p = shapes[v["projection/kernel"]]
            if len(p) != 2 or p[0] != H:
                problems.append(f"{v['projection/kernel']!r} has shape {p}; expected [{H}, P]")
                return
            out = p[1]
        spec.hidden_size, spec.output_size, spec.input_size = H, out, k[0] - out
    elif spec.kind == "gru":
        k = shapes[v["gates/kernel"]]
        if len(k) != 2 or k[1] % 2:
            problems.append(f"{v['gates/kernel']!r} has shape {k}; a GRU gates kernel is [input + H, 2H]")
            return
        H = k[1] // 2
        spec.hidden_size = spec.output_size = H
        spec.input_size = k[0] - H
    else:
        k = shapes[v["kernel"]]
        if len(k) != 2:
            problems.append(f"{v['kernel']!r} has shape {k}; an RNN kernel is [input + H, H]")
            return
        spec.hidden_size = spec.output_size = k[1]
        spec.input_size = k[0] - k[1]
    if spec.input_size <= 0:
        problems.append(f"{spec.scope!r}: kernel rows leave no room for an input (input size {spec.input_size})")


def _find_input_and_head(model: TF1Model, rest: dict[str, tuple[int, ...]], problems: list[str]) -> None:
    E, D = model.input_size, model.output_width
    left = dict(rest)
    # Embedding: a [V, E] matrix, preferably named like one.
    emb = [n for n, s in left.items() if len(s) == 2 and s[1] == E]
    named = [n for n in emb if n.rsplit("/", 1)[-1].lower() in _EMBEDDING_NAMES or "embed" in n.lower()]
    if named:
        emb = named
    # Head: a [D, V] matrix with a [V] bias, named as a pair.
    heads: list[tuple[str, str | None, int]] = []
    for n, s in left.items():
        if len(s) != 2 or s[0] != D:
            continue
        parent, _, leaf = n.rpartition("/")
        bias = None
        for w, b in _HEAD_PAIRS:
            if leaf == w:
                cand = f"{parent}/{b}" if parent else b
                if cand in left and left[cand] == (s[1],):
                    bias = cand
        heads.append((n, bias, s[1]))
    if len(heads) > 1:
        with_bias = [h for h in heads if h[1]]
        heads = with_bias if len(with_bias) == 1 else heads
    if len(heads) == 1:
        model.head_w, model.head_b, model.head_size = heads[0]
        left.pop(model.head_w)
        if model.head_b:
            left.pop(model.head_b)
    elif len(heads) > 1:
        problems.append(f"several candidate output layers {[h[0] for h in heads]}; cannot tell which is the head")
    if len(emb) == 1 and emb[0] in left:
        model.embedding = emb[0]
        model.vocab = left.pop(emb[0])[0]
    elif len(emb) > 1:
        problems.append(f"several candidate embedding matrices {emb}; cannot tell which feeds the RNN")
    # Without a graph nothing says what the rest is for: it is ignored, and convert warns about it.
    model.unplaced = [f"{n} {list(s)}" for n, s in sorted(left.items())]

"""Read what a TF1 `.meta` MetaGraphDef says about a recurrent model, without TensorFlow.

Checkpoint variables do not record a cell's `forget_bias`, activation or clipping, nor how
the model is fed. The MetaGraphDef saved next to a TF1 checkpoint does: `BasicLSTMCell`
adds `forget_bias` as a Const to the forget slice of its gate Split; activations are ops
applied to known slices; `tf.nn.embedding_lookup` is a Gather of the embedding variable
by an input placeholder; the head ends in a Softmax. We parse the protobuf with
`tf2rt.proto` and look at dataflow in the main graph and in the function bodies that
TF2-style control flow puts the loop in (gradient functions are skipped).

Field numbers: tensorflow/core/protobuf/meta_graph.proto, framework/graph.proto,
node_def.proto, function.proto, attr_value.proto, tensor.proto, tensor_shape.proto.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import FormatError, UnsupportedError
from ..proto import Message

_MAX_META_BYTES = 1 << 30
_ACTIVATION_OPS = {"Tanh": "tanh", "Relu": "relu", "Sigmoid": "sigmoid", "Elu": "elu", "Selu": "selu",
                   "Softplus": "softplus", "Softsign": "softsign", "Relu6": "relu6", "LeakyRelu": "leaky_relu"}
_PASS_THROUGH = {"Identity", "ReadVariableOp", "Enter", "Switch", "RefEnter", "Snapshot", "Cast",
                 "StopGradient", "Squeeze", "Reshape"}
_VARIABLE_OPS = {"VariableV2", "Variable", "VarHandleOp"}
_DTYPES = {1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: "string",
           9: "int64", 10: "bool", 19: "float16", 20: "resource", 21: "variant"}


@dataclass
class Node:
    """One NodeDef (from the main graph or a function body)."""

    name: str
    op: str
    inputs: list[str]
    attr: dict[str, Message]
    container: str = ""  # "" = main graph, else the function's name

    def attr_float(self, key: str, default: float | None = None) -> float | None:
        a = self.attr.get(key)
        return default if a is None or not a.has(4) else a.float(4)

    def attr_bool(self, key: str, default: bool = False) -> bool:
        a = self.attr.get(key)
        return default if a is None else a.bool(5, default)

    def attr_int(self, key: str, default: int = 0) -> int:
        a = self.attr.get(key)
        return default if a is None else a.int(3, default)


@dataclass
class Placeholder:
    name: str
    dtype: str
    shape: tuple[int | None, ...] | None  # None = unknown rank


@dataclass
class CellSettings:
    """Non-variable settings of one cell, as far as the graph shows them (None = not seen)."""

    forget_bias: float | None = None
    activation: str | None = None
    cell_clip: float | None = None
    proj_clip: float | None = None
    op_class: str | None = None  # e.g. "LSTMBlockCell" when a fused op is used
    notes: list[str] = field(default_factory=list)


def _ref(ref: str) -> tuple[str, int]:
    """'node', 'node:2' (GraphDef) or 'node:output:2' (FunctionDef) -> (node, index)."""
    ref = ref.lstrip("^")
    parts = ref.split(":")
    idx = int(parts[-1]) if len(parts) > 1 and parts[-1].isdigit() else 0
    return parts[0], idx


def _parse_nodes(msgs: Iterable[Message], container: str) -> list[Node]:
    out = []
    for m in msgs:
        attrs: dict[str, Message] = {}
        for entry in m.messages(5):
            attrs[entry.str(1)] = entry.message(2)
        out.append(Node(m.str(1), m.str(2), m.strs(3), attrs, container))
    return out


def _tensor_value(t: Message) -> np.ndarray | None:
    """A (small) TensorProto's value as a flat float64 array, None if not numeric (the graph
    decoder's parse_tensor does the decoding, with its size caps)."""
    from .graphdef import parse_tensor

    try:
        arr = parse_tensor(t, "Const")
    except UnsupportedError:
        return None
    if arr.dtype == object or arr.dtype == np.bool_:
        return None
    return arr.astype(np.float64).reshape(-1)


class MetaGraph:
    """The parts of a MetaGraphDef tf2rt needs, with small dataflow helpers."""

    def __init__(self, data: bytes, what: str = "MetaGraphDef"):
        mg = Message(data, what)
        graph = mg.message(2, f"{what} graph_def")
        self.nodes: list[Node] = _parse_nodes(graph.messages(1), "")
        for fn in graph.message(2).messages(1):
            fname = fn.message(1).str(1)
            if "_grad" in fname or fname.startswith("__inference") and "gradient" in fname:
                continue  # gradient bodies repeat the forward ops' names
            self.nodes += _parse_nodes(fn.messages(3), fname)
        self.nodes = [n for n in self.nodes if not n.name.startswith("gradients")]
        self._by_name = {(n.container, n.name): n for n in self.nodes}
        self._consumers: dict[tuple[str, str, int], list[tuple[Node, int]]] = {}
        for n in self.nodes:
            for i, ref in enumerate(n.inputs):
                if ref.startswith("^"):
                    continue
                src, idx = _ref(ref)
                self._consumers.setdefault((n.container, src, idx), []).append((n, i))

    # --- helpers --------------------------------------------------------------------------
    def node(self, name: str, container: str = "") -> Node | None:
        return self._by_name.get((container, name))

    def producer(self, n: Node, i: int) -> tuple[Node | None, int]:
        if i >= len(n.inputs):
            return None, 0
        src, idx = _ref(n.inputs[i])
        return self.node(src, n.container), idx

    def consumers(self, n: Node, idx: int = 0) -> list[tuple[Node, int]]:
        return self._consumers.get((n.container, n.name, idx), [])

    def resolve(self, n: Node | None, i: int = 0) -> Node | None:
        """Follow input `i` of `n` back through identity-like ops to its source node."""
        if n is None:
            return None
        src, _ = self.producer(n, i)
        seen = 0
        while src is not None and src.op in _PASS_THROUGH and src.inputs and seen < 32:
            src, _ = self.producer(src, 0)
            seen += 1
        return src

    def const_value(self, n: Node | None) -> np.ndarray | None:
        if n is None or n.op != "Const" or "value" not in n.attr:
            return None
        return _tensor_value(n.attr["value"].message(8))

    def variable_name(self, n: Node | None) -> str | None:
        if n is None or n.op not in _VARIABLE_OPS:
            return None
        shared = n.attr.get("shared_name")
        name = shared.str(2) if shared is not None and shared.has(2) else ""
        return name or n.name

    # --- what importers ask ---------------------------------------------------------------
    def placeholders(self) -> list[Placeholder]:
        out = []
        for n in self.nodes:
            if n.container or n.op not in ("Placeholder", "PlaceholderWithDefault"):
                continue
            dtype = _DTYPES.get(n.attr["dtype"].int(6), "?") if "dtype" in n.attr else "?"
            shape: tuple[int | None, ...] | None = None
            if "shape" in n.attr:
                sp = n.attr["shape"].message(7)
                if not sp.bool(3):
                    shape = tuple(None if d.int(1) < 0 else d.int(1) for d in sp.messages(2))
            out.append(Placeholder(n.name, dtype, shape))
        return out

    def _placeholder_of(self, n: Node | None, i: int) -> str | None:
        src = self.resolve(n, i)
        return src.name if src is not None and src.op.startswith("Placeholder") else None

    def embedding_input(self, variable: str) -> str | None:
        """Name of the placeholder whose ids index `variable` (an embedding_lookup)."""
        for n in self.nodes:
            # GatherV2(variable/read, ids) for ref variables, ResourceGather(handle, ids) for resource ones
            if n.op in ("GatherV2", "Gather", "ResourceGather") and not n.container:
                if self.variable_name(self.resolve(n, 0)) == variable:
                    return self._placeholder_of(n, 1)
        return None

    def one_hot(self) -> tuple[str | None, int | None] | None:
        """(input placeholder, depth) of a tf.one_hot in the main graph, if any."""
        for n in self.nodes:
            if n.op == "OneHot" and not n.container:
                depth = self.const_value(self.resolve(n, 1) or self.producer(n, 1)[0])
                return self._placeholder_of(n, 0), (int(depth[0]) if depth is not None and depth.size else None)
        return None

    def softmax(self) -> tuple[str, str] | None:
        """(softmax node name, its input's node name) of the first Softmax in the main graph."""
        for n in self.nodes:
            if n.op == "Softmax" and not n.container:
                src, _ = self.producer(n, 0)
                return n.name, (src.name if src is not None else "")
        return None

    def uses_sequence_length(self, rnn_scope: str) -> str | None:
        """The placeholder fed as dynamic_rnn's sequence_length, if any."""
        for n in self.nodes:
            if not n.container and n.name.endswith("sequence_length") and n.name.startswith(rnn_scope):
                src = self.resolve(n, 0) if n.inputs else None
                if src is not None and src.op.startswith("Placeholder"):
                    return src.name
                if n.op.startswith("Placeholder"):
                    return n.name
        return None

    def cell_nodes(self, tail: list[str]) -> list[Node]:
        """Nodes of the cell whose scope ends in `tail` (e.g. ["multi_rnn_cell", "cell_0", "lstm_cell"]).

        The cell directory must be part of the node's own name; the other components may
        also be in the name of the function the node lives in (TF2 control flow puts the
        loop body in a function named after its scope, with "/" turned into "_").
        """
        *outer, cell_dir = tail
        leaf = re.compile(r"(?:^|/)" + re.escape(cell_dir) + r"/")
        pattern = re.compile(
            ".*?".join(r"(?:^|[/_])" + re.escape(c) + r"(?=[/_]|$)" for c in outer) if outer else "")
        out = []
        for n in self.nodes:
            m = leaf.search(n.name)
            if m is None:
                continue
            where = (n.container + "/" if n.container else "") + n.name[: m.start()]
            if pattern.search(where):
                out.append(n)
        return out

    def cell_settings(self, tail: list[str], kind: str) -> CellSettings:
        """forget_bias / activation / clipping of the cell whose scope ends in `tail`."""
        s = CellSettings()
        nodes = self.cell_nodes(tail)
        if not nodes:
            return s
        block = [n for n in nodes if n.op in ("LSTMBlockCell", "BlockLSTM", "BlockLSTMV2")]
        if block:
            b = block[0]
            s.op_class = b.op
            s.forget_bias = b.attr_float("forget_bias", 1.0)
            clip = b.attr_float("cell_clip", -1.0)
            s.cell_clip = clip if clip is not None and clip > 0 else None
            s.activation = "tanh"
            return s
        if kind == "lstm":
            splits = [n for n in nodes if n.op == "Split" and n.attr_int("num_split", 0) in (0, 4)]
            if splits:
                sp = splits[0]
                s.forget_bias = 0.0  # no Add on the forget slice = forget_bias 0 (LSTMCell skips none)
                for c, i in self.consumers(sp, 2):
                    if c.op in ("Add", "AddV2"):
                        other = self.resolve(c, 1 - i) if len(c.inputs) == 2 else None
                        if other is None:
                            other = self.producer(c, 1 - i)[0]
                        val = self.const_value(other)
                        if val is not None and val.size == 1:
                            s.forget_bias = float(val[0])
                for c, _i in self.consumers(sp, 1):
                    if c.op in _ACTIVATION_OPS:
                        s.activation = _ACTIVATION_OPS[c.op]
                    else:
                        s.activation = f"op:{c.op}"
            for n in nodes:
                # tf.clip_by_value is one ClipByValue op in older graphs, Minimum + Maximum in newer ones
                if n.op == "ClipByValue" or (n.op == "Minimum" and "clip_by_value" in n.name):
                    k = 2 if n.op == "ClipByValue" else 1
                    hi = self.const_value(self.resolve(n, k) or self.producer(n, k)[0])
                    src = self.resolve(n, 0)
                    if hi is not None and hi.size == 1:
                        if src is not None and src.op == "MatMul":
                            s.proj_clip = float(hi[0])
                        else:
                            s.cell_clip = float(hi[0])
        else:
            adds = sorted((n for n in nodes if n.op == "BiasAdd"), key=lambda n: _suffix_index(n.name))
            if adds:
                last = adds[-1]  # GRU: the candidate's BiasAdd comes after the gates'
                for c, _i in self.consumers(last, 0):
                    s.activation = _ACTIVATION_OPS.get(c.op, f"op:{c.op}")
        return s


def _suffix_index(name: str) -> int:
    leaf = name.rsplit("/", 1)[-1]
    head, _, num = leaf.rpartition("_")
    return int(num) if head and num.isdigit() else 0


def read_meta_graph(path: str | Path) -> MetaGraph:
    """Parse a `.meta` file. Raises FormatError naming the file if it is not a MetaGraphDef."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise FormatError(f"cannot read {p}: {exc}") from None
    if size > _MAX_META_BYTES:
        raise FormatError(f"{p} is {size} bytes; a MetaGraphDef larger than 1 GiB is not supported")
    data = p.read_bytes()
    try:
        mg = MetaGraph(data, f"{p.name}")
    except FormatError as exc:
        raise FormatError(f"{p} is not a readable MetaGraphDef ({exc}); pass --no-meta to ignore it") from None
    if not mg.nodes:
        raise FormatError(f"{p} holds no graph nodes; is it a MetaGraphDef? Pass --no-meta to ignore it")
    return mg


def find_meta(prefix: str | Path) -> Path | None:
    """The `.meta` file saved with checkpoint `prefix`, if present."""
    p = Path(str(prefix) + ".meta")
    return p if p.is_file() else None

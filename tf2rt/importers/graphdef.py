"""Frozen TensorFlow GraphDef (`.pb`) reading without TensorFlow, and its import into a Network.

The protobuf messages (GraphDef, NodeDef, AttrValue, TensorProto, FunctionDef) are decoded
with `tf2rt.proto.Message`; field numbers follow tensorflow/core/framework/*.proto.
Function calls (PartitionedCall / StatefulPartitionedCall, as TF2 exports have them) are
inlined, so importers see one flat graph of `Node`s whose inputs are "node:index" refs.
"""

from __future__ import annotations

import struct
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ..errors import FormatError, ShapeError, UnsupportedError
from ..limits import MAX_FOLD_BYTES, MAX_INLINED_NODES, ResourceLimitError, check_elements
from ..proto import Message, read_varint

# DataType enum (types.proto) -> numpy dtype; None = representable but not numeric here.
DTYPES: dict[int, Any] = {
    1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8,
    7: object, 9: np.int64, 10: np.bool_, 17: np.uint16, 19: np.float16, 22: np.uint32,
    23: np.uint64,
    11: np.int8, 12: np.uint8, 13: np.int32, 15: np.int16, 16: np.uint16,  # qint8 quint8 qint32 qint16 quint16
}
DTYPE_NAMES = {1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: "string",
               9: "int64", 10: "bool", 14: "bfloat16", 17: "uint16", 19: "float16", 20: "resource",
               21: "variant", 22: "uint32", 23: "uint64",
               11: "qint8", 12: "quint8", 13: "qint32", 15: "qint16", 16: "quint16"}
_REF_OFFSET = 100  # DT_FLOAT_REF = 101 etc. (TF1 reference types)

# A TensorProto may expand a few stored values to its whole shape (TF repeats the last value);
# such expansions are capped like folded constants, so a hostile file cannot make us
# allocate gigabytes from a few bytes.
MAX_FILL_BYTES = MAX_FOLD_BYTES

CALL_OPS = ("PartitionedCall", "StatefulPartitionedCall")

# What reading a node or loop that does not fit its op raises in the code that reads it;
# reported as a FormatError naming the node.
MALFORMED = (IndexError, KeyError, ValueError, TypeError, AttributeError)

# Ops whose function-body output references name an output arg that is not the first one;
# (op, arg name) -> index of that arg's first tensor among the op's outputs.
_OUTPUT_ARG_OFFSETS = {
    ("FusedBatchNorm", "batch_mean"): 1, ("FusedBatchNorm", "batch_variance"): 2,
    ("FusedBatchNormV3", "batch_mean"): 1, ("FusedBatchNormV3", "batch_variance"): 2,
    ("FusedBatchNormV2", "batch_mean"): 1, ("FusedBatchNormV2", "batch_variance"): 2,
    ("TopKV2", "indices"): 1, ("Unique", "idx"): 1,
}
_OUTPUT_ARG_OFFSETS.update({(op, arg): i for op in ("CudnnRNN", "CudnnRNNV2", "CudnnRNNV3")
                            for i, arg in enumerate(("output", "output_h", "output_c", "reserve_space", "host_reserved"))})
# multi-output ops of detection graphs, whose later outputs function bodies name by arg
for _op, _args in (("NonMaxSuppressionV4", ("selected_indices", "valid_outputs")),
                   ("NonMaxSuppressionV5", ("selected_indices", "selected_scores", "valid_outputs")),
                   ("CombinedNonMaxSuppression", ("nmsed_boxes", "nmsed_scores", "nmsed_classes", "valid_detections")),
                   ("Switch", ("output_false", "output_true")), ("Merge", ("output", "value_index")),
                   ("TensorArrayV3", ("handle", "flow")), ("QuantizeV2", ("output", "output_min", "output_max"))):
    _OUTPUT_ARG_OFFSETS.update({(_op, a): i for i, a in enumerate(_args)})


def dtype_of(code: int, what: str = "tensor") -> Any:
    """numpy dtype for a TF DataType code (reference types map to their value type)."""
    if code > _REF_OFFSET:
        code -= _REF_OFFSET
    dt = DTYPES.get(code)
    if dt is None:
        name = DTYPE_NAMES.get(code, f"DataType {code}")
        raise UnsupportedError(f"{what}: dtype {name} is not supported")
    return dt


def _packed(msg: Message, field_no: int, kind: str) -> list:
    """Repeated scalar field, packed or not; kind is 'f' (float32), 'd' (float64) or 'v' (varint)."""
    out: list = []
    for v in msg.raw_list(field_no):
        if isinstance(v, int):
            if kind == "f":
                out.append(struct.unpack("<f", v.to_bytes(4, "little"))[0])
            elif kind == "d":
                out.append(struct.unpack("<d", v.to_bytes(8, "little"))[0])
            else:
                out.append(v)
        else:
            if kind == "f":
                if len(v) % 4:
                    raise FormatError(f"{msg.what}: packed float field {field_no} has {len(v)} bytes")
                out.extend(np.frombuffer(v, "<f4").tolist())
            elif kind == "d":
                if len(v) % 8:
                    raise FormatError(f"{msg.what}: packed double field {field_no} has {len(v)} bytes")
                out.extend(np.frombuffer(v, "<f8").tolist())
            else:
                pos = 0
                while pos < len(v):
                    x, pos = read_varint(v, pos, msg.what)
                    out.append(x)
    return out


def parse_shape(msg: Message) -> tuple[int, ...] | None:
    """TensorShapeProto -> tuple (-1 for unknown dims), or None for unknown rank."""
    if msg.bool(3):
        return None
    return tuple(d.int(1) for d in msg.messages(2))


def parse_tensor(msg: Message, what: str = "TensorProto") -> np.ndarray:
    """Decode a TensorProto into a numpy array (bounds- and size-checked)."""
    code = msg.int(1)
    dt = dtype_of(code, what)
    shape = parse_shape(msg.message(2)) or ()
    if any(d < 0 for d in shape):
        raise FormatError(f"{what}: constant has an unknown dimension in shape {shape}")
    n = 1
    for d in shape:
        n *= d
    itemsize = 8 if dt is object else np.dtype(dt).itemsize
    if msg.has(4):
        if dt is object:
            raise UnsupportedError(f"{what}: string tensors in tensor_content are not supported")
        raw = msg.bytes(4)
        want = n * np.dtype(dt).itemsize
        if len(raw) != want:
            raise FormatError(f"{what}: tensor_content has {len(raw)} bytes, shape {shape} needs {want}")
        return np.frombuffer(raw, np.dtype(dt).newbyteorder("<")).astype(dt).reshape(shape)
    if dt is object:
        vals: list = [bytes(v) for v in msg.raw_list(8)]
    elif dt == np.float32:
        vals = _packed(msg, 5, "f")
    elif dt == np.float64:
        vals = _packed(msg, 6, "d")
    elif dt == np.float16:
        vals = [np.uint16(v & 0xFFFF).view(np.float16) for v in _packed(msg, 13, "v")]
    elif dt == np.int64:
        vals = [v - (1 << 64) if v >= 1 << 63 else v for v in _packed(msg, 10, "v")]
    elif dt == np.bool_:
        vals = [bool(v) for v in _packed(msg, 11, "v")]
    elif dt == np.uint32:
        vals = _packed(msg, 16, "v")
    elif dt == np.uint64:
        vals = _packed(msg, 17, "v")
    else:  # int32, int16, int8, uint8, uint16 share int_val
        vals = [v - (1 << 64) if v >= 1 << 63 else v for v in _packed(msg, 7, "v")]
        if dt == np.int32:
            vals = [((v + (1 << 31)) % (1 << 32)) - (1 << 31) for v in vals]
    if len(vals) > n:
        raise FormatError(f"{what}: {len(vals)} values for shape {shape}")
    if len(vals) == n:
        return np.array(vals, dtype=dt).reshape(shape)
    try:
        check_elements(shape, itemsize, f"{what}: constant of shape {shape} filled from {len(vals)} stored value(s)",
                       cap=MAX_FILL_BYTES)
    except ResourceLimitError as exc:
        raise FormatError(str(exc)) from None
    out = np.zeros(n, dtype=dt) if dt is not object else np.full(n, b"", dtype=object)
    if vals:  # TF repeats the last value to fill the shape
        out[: len(vals)] = vals
        out[len(vals):] = vals[-1]
    return out.reshape(shape)


class Attr:
    """One AttrValue with typed accessors (field numbers from attr_value.proto)."""

    __slots__ = ("msg",)

    def __init__(self, msg: Message):
        self.msg = msg

    def s(self) -> str:
        return self.msg.bytes(2).decode("utf-8", "replace")

    def i(self) -> int:
        return self.msg.int(3)

    def f(self) -> float:
        return self.msg.float(4)

    def b(self) -> bool:
        return self.msg.bool(5)

    def type(self) -> int:
        return self.msg.int(6)

    def shape(self) -> tuple[int, ...] | None:
        return parse_shape(self.msg.message(7))

    def tensor(self, what: str = "attr") -> np.ndarray:
        return parse_tensor(self.msg.message(8), what)

    def func(self) -> str:
        return self.msg.message(10).str(1)

    def ints(self) -> list[int]:
        return [v - (1 << 64) if v >= 1 << 63 else v for v in _packed(self.msg.message(1), 3, "v")]

    def floats(self) -> list[float]:
        return _packed(self.msg.message(1), 4, "f")

    def strs(self) -> list[str]:
        return self.msg.message(1).strs(2)


@dataclass
class Node:
    """A NodeDef: inputs are data refs "name:index" (control inputs kept apart)."""

    name: str
    op: str
    inputs: list[str]
    attrs: dict[str, Attr] = field(default_factory=dict)
    control: list[str] = field(default_factory=list)

    def attr(self, key: str) -> Attr | None:
        return self.attrs.get(key)


def _map_entries(msg: Message, field_no: int) -> list[tuple[str, Message]]:
    return [(e.str(1), e) for e in msg.messages(field_no)]


def parse_node(msg: Message) -> Node:
    attrs = {k: Attr(e.message(2)) for k, e in _map_entries(msg, 5)}
    data, control = [], []
    for ref in msg.strs(3):
        (control if ref.startswith("^") else data).append(ref.lstrip("^"))
    name = msg.str(1)
    if not name:
        raise FormatError("GraphDef: a node has no name")
    return Node(name, msg.str(2), data, attrs, control)


@dataclass
class Function:
    """A FunctionDef: signature arg names, body nodes, and output arg -> body ref."""

    name: str
    inputs: list[str]
    outputs: list[str]
    nodes: list[Node]
    ret: dict[str, str]


def parse_function(msg: Message) -> Function:
    sig = msg.message(1)
    return Function(
        name=sig.str(1),
        inputs=[a.str(1) for a in sig.messages(2)],
        outputs=[a.str(1) for a in sig.messages(3)],
        nodes=[parse_node(n) for n in msg.messages(3)],
        ret={k: e.str(2) for k, e in _map_entries(msg, 4)},
    )


def split_ref(ref: str) -> tuple[str, int]:
    """"name:3" -> ("name", 3); "name" -> ("name", 0)."""
    name, sep, idx = ref.rpartition(":")
    if sep and idx.isdigit():
        return name, int(idx)
    return ref, 0


class Graph:
    """A flat graph: nodes by name, in file order, with every function call inlined."""

    def __init__(self, nodes: list[Node], functions: dict[str, Function] | None = None):
        self.functions = functions or {}
        self.nodes: dict[str, Node] = {}
        self._taken = {n.name for n in nodes}  # names in use or reserved by top-level nodes
        # Inlining copies a function body per call: a library where each function calls the
        # next twice grows exponentially. Real models inline each body a few times at most.
        stored = len(nodes) + sum(len(f.nodes) for f in self.functions.values())
        self._budget = min(MAX_INLINED_NODES, 100_000 + 64 * stored)
        for node in nodes:
            self._add(node, depth=0)

    def _add(self, node: Node, depth: int) -> None:
        if len(self.nodes) >= self._budget:
            raise ResourceLimitError(
                f"GraphDef: inlining function calls produces more than {self._budget} nodes from a file that "
                "stores far fewer; the function library calls itself exponentially (a damaged or hostile file)")
        fname = None
        if node.op in CALL_OPS and node.attr("f") is not None:
            fname = node.attr("f").func()  # type: ignore[union-attr]
        elif node.op in self.functions:
            fname = node.op
        if fname is None:
            if node.name in self.nodes:
                raise FormatError(f"GraphDef: duplicate node name {node.name!r}")
            self.nodes[node.name] = node
            return
        fn = self.functions.get(fname)
        if fn is None:
            raise FormatError(f"GraphDef: node {node.name!r} calls function {fname!r}, which is not in the library")
        if depth > 64:
            raise UnsupportedError(f"GraphDef: function calls nested more than 64 deep at {node.name!r}")
        self._inline(node, fn, depth)

    def inline_function(self, fname: str, call_name: str, inputs: list[str]) -> list[str]:
        """Inline function `fname` as if node `call_name` called it on `inputs`; its result refs."""
        fn = self.functions.get(fname)
        if fn is None:
            raise FormatError(f"GraphDef: function {fname!r} is not in the library")
        base, i = call_name, 1
        while call_name in self._taken or call_name in self.nodes:  # inlined twice (nested loops share names)
            call_name, i = f"{base}_{i}", i + 1
        self._taken.add(call_name)
        self._inline(Node(call_name, "PartitionedCall", list(inputs)), fn, 1)
        return [f"{call_name}:{i}" for i in range(len(fn.outputs))]

    def _inline(self, call: Node, fn: Function, depth: int) -> None:
        if len(call.inputs) != len(fn.inputs):
            raise FormatError(f"GraphDef: {call.name!r} passes {len(call.inputs)} inputs to {fn.name!r}, "
                              f"which takes {len(fn.inputs)}")
        prefix = call.name + "/"
        args = dict(zip(fn.inputs, call.inputs))
        ops = {n.name: n.op for n in fn.nodes}
        # inlined nodes keep their own names (so layers read like the model) unless taken
        names: dict[str, str] = {}
        for n in fn.nodes:
            final = n.name if n.name not in self._taken else prefix + n.name
            names[n.name] = final
            self._taken.add(final)

        def remap(ref: str) -> str:
            if ref in args:
                return args[ref]
            parts = ref.split(":")
            if len(parts) == 1:
                return names.get(parts[0], prefix + parts[0]) + ":0"
            if len(parts) == 3 and parts[2].isdigit():
                off = _OUTPUT_ARG_OFFSETS.get((ops.get(parts[0], ""), parts[1]), 0)
                return f"{names.get(parts[0], prefix + parts[0])}:{off + int(parts[2])}"
            return prefix + ref

        for a, src in args.items():  # an Identity per argument keeps refs to it resolvable
            self._taken.add(prefix + a)
            self._add(Node(prefix + a, "Identity", [src]), depth)
        for n in fn.nodes:
            self._add(Node(names[n.name], n.op, [remap(r) for r in n.inputs], n.attrs), depth + 1)
        outs = []
        for o in fn.outputs:
            if o not in fn.ret:
                raise FormatError(f"GraphDef: function {fn.name!r} does not define output {o!r}")
            outs.append(remap(fn.ret[o]))
        # the call node becomes an IdentityN, so "call:k" still names the k-th result
        self._add(Node(call.name, "IdentityN", outs), depth)


def sink_nodes(graph: "Graph", not_outputs: tuple[str, ...]) -> list[str]:
    """The graph's results when none are named: nodes nobody reads, but not what rewritten loops
    and conditionals left behind, inlined arguments, ops in `not_outputs`, nor - while there are
    other results - loop variables nobody reads (a TF1 Exit, the Identity on a TF2 While's
    output: counters, bounds)."""
    from .graph_inspect import inlined_argument
    from .tf_loops import loop_leftovers

    nodes = graph.nodes
    used = {split_ref(r)[0] for n in nodes.values() for r in n.inputs}
    leftover = loop_leftovers(graph)
    outputs = [n.name for n in nodes.values() if n.name not in used and n.name not in leftover
               and not inlined_argument(graph, n) and n.op not in not_outputs]
    unread = [o for o in outputs if nodes[o].op == "Identity" and len(nodes[o].inputs) == 1
              and getattr(nodes.get(split_ref(nodes[o].inputs[0])[0]), "op", "") == "_WhileLoop"]
    return [o for o in outputs if o not in unread] if len(unread) < len(outputs) else outputs


def parse_graphdef(data: bytes | memoryview, what: str = "GraphDef") -> Graph:
    """Decode a serialized GraphDef (node=1, library=2) into a flat `Graph`."""
    msg = Message(data, what)
    functions = {}
    for fmsg in msg.message(2).messages(1):
        fn = parse_function(fmsg)
        functions[fn.name] = fn
    return Graph([parse_node(n) for n in msg.messages(1)], functions)


def read_graphdef(path: str | Path) -> Graph:
    """Read a frozen `.pb` GraphDef file."""
    p = Path(path)
    if not p.is_file():
        raise FormatError(f"{p}: no such file (expected a frozen GraphDef .pb)")
    data = p.read_bytes()
    if not data:
        raise FormatError(f"{p}: empty file, not a GraphDef")
    graph = parse_graphdef(data, str(p))
    if not graph.nodes:
        raise FormatError(f"{p}: no nodes; is this a GraphDef (.pb) file?")
    return graph


def import_graphdef(path: str | Path, inputs: list[str] | None = None, outputs: list[str] | None = None,
                    name: str | None = None, input_shapes: dict[str, list] | None = None) -> Any:
    """Import a frozen GraphDef `.pb` into a `Network` (inputs default to its Placeholders,
    outputs to nodes nothing else consumes; naming other nodes cuts out the subgraph between
    them). input_shapes: node name -> dims (None or -1 = dynamic) for placeholders of unknown
    rank or to fix dynamic dims."""
    graph = read_graphdef(path)
    cv = GraphConverter(graph, resolve_variable=None)
    cv.input_shapes = {k: list(v) for k, v in (input_shapes or {}).items()}
    return cv.convert(inputs, outputs, name or Path(path).stem)



# --- values during conversion ------------------------------------------------------
TO_NCHW = (0, 3, 1, 2)
TO_NHWC = (0, 2, 3, 1)


def phys_axis(axis: int) -> int:
    """Axis of an NCHW tensor holding NHWC axis `axis`."""
    return TO_NCHW.index(axis)


def fold_nhwc_const(arr: np.ndarray) -> np.ndarray:
    """A constant that broadcasts against an NHWC tensor, rearranged to broadcast against NCHW."""
    if arr.ndim > 4:
        raise UnsupportedError(f"constant of rank {arr.ndim} cannot broadcast against a 4-D image tensor")
    if arr.ndim == 0:
        return arr
    return arr.reshape((1,) * (4 - arr.ndim) + arr.shape).transpose(TO_NCHW)


@dataclass
class TV:
    """A network tensor; nchw=True: TensorFlow sees it as NHWC, the network holds it NCHW."""

    t: Any
    nchw: bool = False

    @property
    def shape(self) -> tuple:
        """Shape in TensorFlow's axis order (None = dynamic)."""
        s = tuple(self.t.shape)
        return tuple(s[i] for i in TO_NHWC) if self.nchw else s


class _Dead:
    """The value of a tf.cond branch that is not taken (its Switch predicate is a constant)."""

    def __repr__(self) -> str:
        return "DEAD"


DEAD = _Dead()


@dataclass
class Partial:
    """A 1-D int vector with unknown entries (-1), e.g. a shape with a dynamic batch size.
    `origin` says how to compute it at run time when a tensor needs it (GraphConverter.runtime):
    ("shape", tensor, dtype) or (node, input values, output index)."""

    values: np.ndarray
    origin: Any = field(default=None, compare=False, repr=False)


class LayoutBuilder:
    """Network building with TensorFlow's NHWC tensors held as NCHW (shared by importers)."""

    def __init__(self) -> None:
        self.net: Any = None
        self._layout_cache: dict[tuple[int, bool], Any] = {}
        self.fusable: set[int] = set()  # ids of conv/dense outputs that only one consumer reads

    def dense(self, x: Any, kernel: np.ndarray, bias: Optional[np.ndarray], name: str) -> Any:
        """x @ kernel (+ bias) as a fully-connected layer; returns its output tensor."""
        try:
            return self.net.add_fully_connected(x, kernel.shape[1], kernel, bias, name=name).output
        except AttributeError:  # FullyConnectedLayer unusable in this build: the same maths from core layers
            w = self.net.add_constant(kernel.shape, kernel.astype(np.float32), name=f"{name}/kernel").output
            y = self.net.add_matrix_multiply(x, "none", w, "none", name=f"{name}/matmul" if bias is not None else name)
            if bias is None:
                return y.output
            b = self.net.add_constant(bias.shape, bias.astype(np.float32), name=f"{name}/bias").output
            return self.net.add_elementwise(y.output, b, "sum", name=name).output

    def mark_output(self, t: Any, name: str) -> None:
        """Mark t as an output named `name`, moving another tensor of that name out of the way."""
        from ..errors import ShapeError

        if t.name != name:
            try:
                other = self.net.tensor(name)
            except ShapeError:
                other = None
            if other is not None:
                alt, i = f"{name}/inner", 1
                while True:
                    try:
                        self.net.tensor(alt)
                    except ShapeError:
                        break
                    alt, i = f"{name}/inner_{i}", i + 1
                other.name = alt
        self.net.mark_output(t, name=name)

    def plain(self, v: TV) -> Any:
        """The tensor in TensorFlow's own axis order (NHWC for 4-D image tensors)."""
        if not v.nchw:
            return v.t
        return self._transposed(v.t, TO_NHWC, False)

    def nchw(self, v: TV) -> Any:
        """The tensor as NCHW (transposing a plain 4-D NHWC tensor once)."""
        if v.nchw:
            return v.t
        if v.t.rank != 4:
            raise UnsupportedError(f"expected a 4-D NHWC tensor, {v.t.name} has shape {v.t.shape}")
        return self._transposed(v.t, TO_NCHW, True)

    def _transposed(self, t: Any, perm: tuple[int, ...], to_nchw: bool) -> Any:
        key = (id(t), to_nchw)
        if key not in self._layout_cache:
            name = f"{t.name}/{'to_nchw' if to_nchw else 'to_nhwc'}"
            self._layout_cache[key] = self.net.add_shuffle(t, first_transpose=perm, name=name).output
        return self._layout_cache[key]

    def const_like(self, c: np.ndarray, v: TV, name: str) -> Any:
        """A network constant broadcastable against v's physical layout."""
        arr = np.asarray(c)
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        if v.nchw:
            arr = fold_nhwc_const(arr)
        return self.net.add_constant(arr.shape, arr, name=name).output

    def logical_axis(self, v: TV, axis: int) -> int:
        """Physical axis of v for TensorFlow's axis `axis`."""
        rank = v.t.rank
        axis = axis % rank if rank else 0
        return phys_axis(axis) if v.nchw else axis


class GraphConverter(LayoutBuilder):
    """Converts the part of a flat Graph between given inputs and outputs into a Network."""

    def __init__(self, graph: Graph, resolve_variable: Optional[Callable[[Node], np.ndarray]] = None):
        self.graph = graph
        self.resolve_variable = resolve_variable
        super().__init__()
        self.values: dict[tuple[str, int], Any] = {}
        self.atrous: dict[int, Any] = {}  # id(conv output) -> conv layer awaiting BatchToSpaceND crops
        self.consumers: Counter = Counter()
        self.dead_nodes: set[str] = set()  # nodes of untaken tf.cond branches
        self.input_shapes: dict[str, list] = {}  # node name -> dims given by the user (None/-1 = dynamic)
        from .graphdef_ops import HANDLERS

        self.handlers: dict[str, Callable] = HANDLERS

    # --- entry points ---------------------------------------------------------------
    def convert(self, inputs: Optional[list[str]], outputs: Optional[list[str]], name: str) -> Any:
        """inputs/outputs as node names or "node:index" refs (defaults: Placeholders / sink nodes)."""
        from .tf_loops import ensure_recurrences

        ensure_recurrences(self.graph, inputs)
        nodes = self.graph.nodes
        if inputs is None:
            inputs = [n.name for n in nodes.values() if n.op == "Placeholder"]
        if outputs is None:
            outputs = sink_nodes(self.graph, ("NoOp", "Const", "Placeholder", "Assert", "SaveV2"))
        if not outputs:
            raise FormatError("GraphDef: no output nodes found; pass outputs=[...]")
        ins = {split_ref(r)[0]: r for r in inputs}
        outs = {split_ref(r)[0] if split_ref(r)[1] == 0 else r.replace(":", "_"): r for r in outputs}
        return self.convert_named(ins, outs, name)

    def convert_named(self, inputs: dict[str, str], outputs: dict[str, str], name: str) -> Any:
        """inputs/outputs: engine tensor name -> graph ref."""
        from ..network import Network
        from .tf_loops import ensure_recurrences

        ensure_recurrences(self.graph, list(inputs.values()))
        for r in list(inputs.values()) + list(outputs.values()):
            if split_ref(r)[0] not in self.graph.nodes:
                raise FormatError(f"GraphDef: no node named {split_ref(r)[0]!r}")
        input_refs = {self._key(r): k for k, r in inputs.items()}
        order = self._toposort([self._key(r) for r in outputs.values()], set(n for n, _ in input_refs))
        try:
            self._check_supported(order, {n for n, _ in input_refs})
        except UnsupportedError as exc:
            why = "; ".join(getattr(self.graph, "loop_errors", {}).values())
            if not why:
                raise
            raise UnsupportedError(f"{exc} (while loops not recognised as RNNs: {why})") from None
        self.net = Network(name)
        self.net.metadata["source_format"] = "graphdef"
        for ref_key, key in input_refs.items():
            self._add_input(key, self.graph.nodes[ref_key[0]], ref_key)
        self.convert_nodes(order)
        for key, ref in outputs.items():
            v = self.values.get(self._key(ref))
            if v is None:
                raise UnsupportedError(f"output {ref!r} has no value (its op has fewer outputs, or it lies on a "
                                       "branch of a condition fixed at conversion that is never taken)")
            if isinstance(v, Partial) and v.origin is not None:
                v = self.runtime(v)  # sizes known only at run time (e.g. counts of boxes) as an output
            if not isinstance(v, TV):
                raise UnsupportedError(f"output {ref!r} is a constant; nothing to compute")
            t = self.plain(v)
            if t.producer is None or t.is_network_output:
                t = self.net.add_identity(t, name=f"{key}/identity").output
            self.mark_output(t, key)
        return self.net

    def convert_nodes(self, order: list[str]) -> None:
        """Give every node of `order` (topological) its values; one error lists every failure."""
        failed: dict[str, Any] = {}  # node -> (op, error); collected so that one error lists them all
        for node_name in order:
            if (node_name, 0) in self.values:
                continue
            node = self.graph.nodes[node_name]
            if any(split_ref(r)[0] in failed for r in node.inputs):
                failed[node_name] = (node.op, None)  # downstream of a failure: not a problem of its own
                continue
            ins = [self._value(r, node) for r in node.inputs]
            if node.op not in ("Merge", "RefMerge") and any(v is DEAD for v in ins):
                self.dead_nodes.add(node_name)  # on the branch a constant tf.cond predicate does not take
                continue
            try:
                outs = self._run_handler(node, ins)
            except (UnsupportedError, FormatError, ShapeError) as exc:
                failed[node_name] = (node.op, exc)
                continue
            for i, v in enumerate(outs):
                if isinstance(v, Partial) and v.origin is None:
                    v.origin = (node, ins, i)
                self.values[(node.name, i)] = v
        if failed:
            from .graph_problems import raise_failures

            try:
                raise_failures(failed, self.graph)
            except UnsupportedError as exc:
                why = "; ".join(getattr(self.graph, "loop_errors", {}).values())
                if not why:
                    raise
                raise UnsupportedError(f"{exc} (while loops not recognised as RNNs: {why})") from None

    def _run_handler(self, node: Node, ins: list) -> list:
        """The node's values; when it cannot fold a size known only at run time, again with that
        size computed by the network."""
        try:
            return self._run_handler_once(node, ins)
        except MALFORMED as exc:  # a node whose inputs do not fit its op (a damaged or hostile graph)
            raise FormatError(f"malformed {node.op} node: {len(node.inputs)} input(s), {type(exc).__name__}: {exc}") \
                from None

    def _run_handler_once(self, node: Node, ins: list) -> list:
        partial = any(isinstance(v, Partial) and v.origin is not None for v in ins)
        try:
            return self.handlers[node.op](self, node, ins)
        except (UnsupportedError, FormatError):
            if not partial:
                raise
            first = sys.exc_info()[1]
        except (AttributeError, TypeError) as exc:  # a handler that takes no shape vectors
            if not partial:
                raise
            first = UnsupportedError(f"{node.op} of a size known only at run time ({exc})")
        try:
            return self.handlers[node.op](self, node, [self.runtime(v) for v in ins])
        except (UnsupportedError, FormatError):
            raise first from None

    def runtime(self, v: Any) -> Any:
        """A Partial as the network tensor it is at run time (other values unchanged)."""
        if not isinstance(v, Partial):
            return v
        memo = self.__dict__.setdefault("_runtime", {})
        if id(v) in memo:
            return memo[id(v)][1]
        o = v.origin
        if o is None:
            raise UnsupportedError("a size known only at run time is used where tf2rt cannot compute it")
        if o[0] == "shape":
            t = self.net.add_shape(o[1], name=f"{o[1].name}/shape").output
            if np.dtype(o[2]).name != "int64":
                t = self.net.add_cast(t, np.dtype(o[2]).name, name=f"{o[1].name}/shape/cast").output
            out: Any = TV(t)
        else:
            node, ins, i = o
            out = self.handlers[node.op](self, node, [self.runtime(x) for x in ins])[i]
            if not isinstance(out, TV):
                raise UnsupportedError(f"{node.op} {node.name!r}: cannot compute its run-time size")
        memo[id(v)] = (v, out)  # keeps v alive, so its id stays its own
        return out

    # --- helpers used by the op handlers ----------------------------------------------
    @staticmethod
    def _key(ref: str) -> tuple[str, int]:
        return split_ref(ref)

    def _value(self, ref: str, node: Node) -> Any:
        key = split_ref(ref)
        if key not in self.values and key[0] in self.dead_nodes:
            return DEAD
        if key not in self.values:
            raise FormatError(f"node {node.name!r} reads {ref!r}, which has no value (an output the op does not have?)")
        return self.values[key]

    def _toposort(self, roots: list[tuple[str, int]], stop: set[str]) -> list[str]:
        nodes = self.graph.nodes
        order: list[str] = []
        state: dict[str, int] = {}
        stack = [(n, False) for n, _ in roots]
        while stack:
            name, done = stack.pop()
            if done:
                state[name] = 2
                order.append(name)
                continue
            if state.get(name) == 2:
                continue
            if state.get(name) == 1:
                raise UnsupportedError(f"GraphDef: cycle through node {name!r} (control flow loops are not supported)")
            if name not in nodes:
                raise FormatError(f"GraphDef: reference to missing node {name!r}")
            state[name] = 1
            stack.append((name, True))
            if name in stop:
                continue
            for r in nodes[name].inputs:
                src = split_ref(r)[0]
                self.consumers[src] += 1
                if state.get(src) != 2:
                    stack.append((src, False))
        return order

    def _check_supported(self, order: list[str], inputs: set[str]) -> None:
        from .graph_problems import check_graph

        check_graph(self, order, inputs)  # unsupported ops and shapeless inputs, all at once

    def _add_input(self, key: str, node: Node, ref: tuple[str, int]) -> None:
        attr = node.attr("dtype") or node.attr("T")  # a placeholder, or an inner node cut as an input
        dt = np.dtype(dtype_of(attr.type() if attr else 1, f"input {key!r}")).name
        from .graph_problems import placeholder_shape

        shape = placeholder_shape(node, self.input_shapes.get(node.name, self.input_shapes.get(key)))
        if shape is None:
            raise UnsupportedError(f"input {key!r} ({node.name}) has an unknown rank; give the placeholder a shape")
        t = self.net.add_input(key, dt, shape)
        self.values[ref] = TV(t, nchw=False)

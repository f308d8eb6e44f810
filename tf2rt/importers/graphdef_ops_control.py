"""Control flow that stays in the engine: `_WhileLoop` nodes (tf_control.py) as Network loops
(ONNX Loop), TF2 `If`/`Case` on a run-time condition as Network conditionals (ONNX If), and
TensorArrays / TensorLists as the tensors they hold.

An array is an `ArrayValue`: the stacked tensor of its elements (None while nothing is in it).
`unstack` (a scatter at 0..n-1) makes one from a tensor, a read at index i gathers row i,
`stack` (a gather of 0..n-1) gives the tensor back; arrays written inside a loop are the loop's
scan outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import UnsupportedError
from .graphdef import TV, GraphConverter, Node, Partial, split_ref
from .graphdef_ops import HANDLERS, const, op
from .graphdef_ops_math import extend, tensor_of
from .tf_control import WHILE_OP, through_identity_n


@dataclass
class ArrayValue:
    """A TensorArray / TensorList: its elements stacked on axis 0 (None: nothing written yet)."""

    content: Any = None


@dataclass
class ArrayHandle:
    """The resource handle of a TF1 TensorArray (the data travels with its flow value)."""

    node: str


# --- arrays ----------------------------------------------------------------------------------
def _content(v: Any, node: Node) -> Any:
    if not isinstance(v, ArrayValue) or v.content is None:
        raise UnsupportedError(f"{node.op} reads an array tf2rt cannot follow (written outside a loop's "
                               "once-per-iteration pattern, or never written)")
    return v.content


def _is_full_range(cv: GraphConverter, r: str, v: Any) -> bool:
    """True when indices are 0, 1, ..., n-1 over the whole array (unstack / stack)."""
    if isinstance(v, np.ndarray):
        return v.ndim == 1 and np.array_equal(v, np.arange(v.size))
    n = cv.graph.nodes.get(split_ref(r)[0])
    while n is not None and n.op in ("Identity", "Enter"):
        n = cv.graph.nodes.get(split_ref(n.inputs[0])[0])
    if n is None or n.op != "Range" or len(n.inputs) != 3:
        return False
    start, delta = (cv.values.get(split_ref(n.inputs[i])) for i in (0, 2))
    return all(isinstance(x, np.ndarray) and x.size == 1 and int(x.reshape(-1)[0]) == want
               for x, want in ((start, 0), (delta, 1)))


def _gather(cv: GraphConverter, node: Node, data: Any, idx: Any) -> Any:
    return HANDLERS["GatherV2"](cv, node, [data, idx, np.array(0, np.int32)])[0]


@op("TensorArrayV3")
def _tensor_array(cv, node, ins):
    """A TensorArray: its handle, and an empty array as its flow."""
    return [ArrayHandle(node.name), ArrayValue()]


@op("TensorListReserve", "EmptyTensorList")
def _tensor_list_empty(cv, node, ins):
    """An empty TensorList (filled by a loop)."""
    return [ArrayValue()]


@op("TensorArrayScatterV3")
def _ta_scatter(cv, node, ins):
    """unstack: the array of the rows of a tensor (indices 0..n-1)."""
    if not _is_full_range(cv, node.inputs[1], ins[1]):
        raise UnsupportedError("TensorArray scatter at indices other than 0..n-1 (only unstack is supported)")
    return [ArrayValue(ins[2])]


@op("TensorListFromTensor")
def _tl_from_tensor(cv, node, ins):
    """The list of the rows of a tensor."""
    return [ArrayValue(ins[0])]


@op("TensorArrayReadV3")
def _ta_read(cv, node, ins):
    """Row `index` of the array."""
    return [_gather(cv, node, _content(ins[2], node), ins[1])]


@op("TensorListGetItem")
def _tl_get(cv, node, ins):
    """Row `index` of the list."""
    return [_gather(cv, node, _content(ins[0], node), ins[1])]


@op("TensorArrayGatherV3")
def _ta_gather(cv, node, ins):
    """stack (all rows in order) or a gather of some rows."""
    data = _content(ins[2], node)
    return [data if _is_full_range(cv, node.inputs[1], ins[1]) else _gather(cv, node, data, ins[1])]


@op("TensorListStack")
def _tl_stack(cv, node, ins):
    """The list's elements stacked."""
    return [_content(ins[0], node)]


@op("TensorListGather")
def _tl_gather(cv, node, ins):
    """Some of the list's elements."""
    return [_gather(cv, node, _content(ins[0], node), ins[1])]


def _length(cv: GraphConverter, node: Node, data: Any) -> Any:
    if isinstance(data, np.ndarray):
        return np.int32(data.shape[0])
    shape = HANDLERS["Shape"](cv, node, [data])[0]
    first = shape.values[0] if isinstance(shape, Partial) else shape[0]
    if first < 0:
        raise UnsupportedError("the length of an array whose size is known only at run time")
    return np.int32(first)


@op("TensorArraySizeV3")
def _ta_size(cv, node, ins):
    """The number of elements."""
    return [_length(cv, node, _content(ins[1], node))]


@op("TensorListLength")
def _tl_length(cv, node, ins):
    """The number of elements."""
    return [_length(cv, node, _content(ins[0], node))]


@op("TensorArrayCloseV3")
def _ta_close(cv, node, ins):
    """Nothing to do."""
    return []


@op("_LoopArg")
def _loop_arg(cv, node, ins):
    """An argument of a loop body or branch (bound before conversion)."""
    raise UnsupportedError("a loop or branch argument was read before it was bound")


@extend("Range")
def _range(cv, node, ins):
    """A range whose bounds are known only at run time (constants fold)."""
    ts = [tensor_of(cv, v, f"{node.name}/arg{i}") for i, v in enumerate(ins)]
    dt = ts[0].dtype
    ts = [t if t.dtype == dt else cv.net.add_cast(t, dt, name=f"{node.name}/cast{i}").output for i, t in enumerate(ts)]
    ts = [t if t.rank == 0 else cv.net.add_shuffle(t, reshape_dims=[], name=f"{node.name}/scalar{i}").output
          for i, t in enumerate(ts)]
    return [TV(cv.net.add_range(*ts, name=node.name).output)]


def _fill(cv, node, ins, _fold=HANDLERS["Fill"]):
    """A fill whose shape is known only at run time (constants fold)."""
    dims, value = ins
    if not isinstance(dims, (TV, Partial)):
        return _fold(cv, node, ins)
    shape = tensor_of(cv, dims, f"{node.name}/dims")
    known = dims.values if isinstance(dims, Partial) else [None] * int(shape.shape[0] or 0)
    v = tensor_of(cv, value, f"{node.name}/value")
    if v.rank:
        v = cv.net.add_shuffle(v, reshape_dims=[], name=f"{node.name}/scalar").output
    return [TV(cv.net.add_fill(shape, v, [None if d is None or d < 0 else int(d) for d in known],
                               name=node.name).output)]


HANDLERS["Fill"] = _fill


def _pad(cv, node, ins, _fold=HANDLERS["Pad"]):
    """A constant pad whose amounts are known only at run time (others as before)."""
    if node.op == "MirrorPad" or not isinstance(ins[1], (TV, Partial)) or not isinstance(ins[0], TV):
        return _fold(cv, node, ins)
    value = float(np.asarray(const(ins[2], "pad value")).reshape(-1)[0]) if len(ins) > 2 else 0.0
    pads = tensor_of(cv, ins[1], f"{node.name}/pads")
    return [TV(cv.net.add_pad(cv.plain(ins[0]), pads, value, name=node.name).output)]


for _n in ("Pad", "PadV2"):
    HANDLERS[_n] = _pad


# --- loops -----------------------------------------------------------------------------------
def _merge_shape(a: tuple, b: tuple) -> tuple:
    return tuple(x if x == y else None for x, y in zip(a, b))


class SubNetwork:
    """A part of the graph (a loop body, a branch) converted into a Network of its own. Its
    inputs are the fixed ones the caller adds, then one per outer tensor it reads (`outer`);
    constants and array handles are bound as they are, so weights stay constants inside."""

    def __init__(self, cv: GraphConverter, graph: Any, name: str):
        from ..network import Network

        self.child = GraphConverter(graph, cv.resolve_variable)
        self.child.input_shapes = cv.input_shapes
        self.net = self.child.net = Network(name)
        self.outer: list[Any] = []

    def input(self, arg: str, dtype: str, shape: tuple, name: str) -> Any:
        t = self.net.add_input(name, dtype, shape)
        self.child.values[(arg, 0)] = TV(t)
        return t

    def bind(self, arg: str, v: Any) -> None:
        self.child.values[(arg, 0)] = self._bound(arg, v)

    def _bound(self, arg: str, v: Any) -> Any:
        if isinstance(v, ArrayValue) and isinstance(v.content, TV):
            return ArrayValue(self._bound(arg, v.content))
        if isinstance(v, TV):
            t = v.t  # plain (see _plain)
            inp = self.net.add_input(f"{arg.rsplit('/', 1)[-1]}_{len(self.outer)}", t.dtype, t.shape)
            self.outer.append(t)
            return TV(inp)
        return v

    def convert(self, roots: list[str], stop: set[str]) -> list[Any]:
        from .tf_loops import ensure_recurrences

        ensure_recurrences(self.child.graph)  # loops and conditionals nested in this part
        order = self.child._toposort([split_ref(r) for r in roots], stop)  # noqa: SLF001
        self.child._check_supported(order, set())  # noqa: SLF001 - arguments are bound, not fed
        self.child.convert_nodes(order)
        return [self.child.values[split_ref(r)] for r in roots]

    def tensor(self, v: Any, name: str, dtype: Any = None, scalar: bool = False) -> Any:
        if isinstance(v, (ArrayValue, ArrayHandle)):
            raise UnsupportedError("a loop carries an array it reads back (only arrays written once per "
                                   "iteration are supported)")
        t = tensor_of(self.child, v, f"{name}/const")
        if scalar and t.rank != 0:
            t = self.net.add_shuffle(t, reshape_dims=[], name=f"{name}/scalar").output
        if dtype is not None and t.dtype != dtype:
            t = self.net.add_cast(t, dtype, name=f"{name}/cast").output
        return t

    def finish(self, tensors: list[Any]) -> Any:
        for i, t in enumerate(tensors):
            if t.producer is None or t.is_network_output:
                t = self.net.add_identity(t, name=f"out_{i}").output
            self.net.mark_output(t)
        return self.net


def _body(cv: GraphConverter, node: Node, plan: Any, carried: list, shapes: list,
          invariants: list) -> tuple[SubNetwork, list]:
    """The loop body as a Network: inputs iteration, carried values (with `shapes`), invariants;
    outputs condition, next values, scan items."""
    sub = SubNetwork(cv, plan.body, f"{node.name}/body")
    sub.net.add_input("iteration", "int64", ())
    for k, t, shape in zip(plan.carried_ids, carried, shapes):
        sub.input(plan.args[k], t.dtype, shape, plan.args[k].rsplit("/", 1)[-1])
    for arg, v in invariants:
        sub.bind(arg, v)
    for k in plan.scan_ids:
        sub.bind(plan.args[k], ArrayValue())
    roots = [plan.cond] + [plan.nexts[k] for k in plan.carried_ids] + [plan.items[k] for k in plan.scan_ids]
    vals = sub.convert(roots, set(plan.args) | set(plan.extra_args))
    outs = [sub.tensor(vals[0], "condition", "bool", scalar=True)]
    outs += [sub.tensor(v, f"next_{i}", t.dtype) for i, (v, t) in enumerate(zip(vals[1:], carried))]
    outs += [sub.tensor(v, f"item_{i}") for i, v in enumerate(vals[1 + len(carried):])]
    return sub, outs


def _plain(cv: GraphConverter, v: Any) -> Any:
    """What a body or branch is given: tensors in TF's axis order, run-time sizes computed."""
    if isinstance(v, Partial) and v.origin is not None:
        v = cv.runtime(v)  # its origin belongs to this network, not to the body's
    if isinstance(v, TV) and v.nchw:
        return TV(cv.plain(v))
    if isinstance(v, ArrayValue) and isinstance(v.content, TV) and v.content.nchw:
        return ArrayValue(TV(cv.plain(v.content)))
    return v


@op(WHILE_OP)
def _while_loop(cv, node, ins):
    """A while loop as a Network loop (ONNX Loop) with its body converted on its own."""
    plan = node.plan
    plan.carried_ids = [k for k, kind in enumerate(plan.kinds) if kind == "carried"]
    plan.scan_ids = [k for k, kind in enumerate(plan.kinds) if kind == "scan"]
    non_scan = [k for k, kind in enumerate(plan.kinds) if kind != "scan"]
    init = dict(zip(non_scan, ins[1:1 + len(non_scan)]))
    invariants = [(plan.args[k], _plain(cv, init[k])) for k, kind in enumerate(plan.kinds) if kind == "invariant"]
    invariants += list(zip(plan.extra_args, (_plain(cv, v) for v in ins[1 + len(non_scan):])))
    carried = []
    for k in plan.carried_ids:
        if isinstance(init[k], (ArrayValue, ArrayHandle)):
            raise UnsupportedError("a loop carries an array it reads back (only arrays written once per "
                                   "iteration are supported)")
        carried.append(tensor_of(cv, _plain(cv, init[k]), f"{node.name}/init_{k}"))
    shapes = [tuple(t.shape) for t in carried]
    for _ in range(4):  # a carried value may change shape between iterations: relax and redo
        body, outs = _body(cv, node, plan, carried, shapes, invariants)
        nexts = [tuple(t.shape) for t in outs[1:1 + len(carried)]]
        for i, (s, n) in enumerate(zip(shapes, nexts)):
            if len(s) != len(n):
                raise UnsupportedError(f"loop value {i} changes rank between iterations ({len(s)} -> {len(n)})")
        relaxed = [_merge_shape(s, n) for s, n in zip(shapes, nexts)]
        if relaxed == shapes:
            break
        shapes = relaxed
    else:
        raise UnsupportedError("loop value shapes do not settle")
    body.finish(outs)
    cond = ins[0]
    if isinstance(cond, (np.ndarray, np.generic, bool)):
        cond = np.asarray(cond, bool)
    cond_t = tensor_of(cv, cond, f"{node.name}/cond0")
    if cond_t.dtype != "bool":
        cond_t = cv.net.add_cast(cond_t, "bool", name=f"{node.name}/cond0/bool").output
    if cond_t.rank != 0:
        cond_t = cv.net.add_shuffle(cond_t, reshape_dims=[], name=f"{node.name}/cond0/scalar").output
    layer = cv.net.add_loop(body.net, carried, body.outer, condition=cond_t, name=node.name)
    outs: list[Any] = []
    finals = {k: TV(layer.get_output(i)) for i, k in enumerate(plan.carried_ids)}
    scans = {k: ArrayValue(TV(layer.get_output(len(carried) + i))) for i, k in enumerate(plan.scan_ids)}
    for k, kind in enumerate(plan.kinds):
        outs.append(finals[k] if kind == "carried" else scans[k] if kind == "scan" else init[k])
    return outs


# --- conditionals on run-time values ---------------------------------------------------------
@op("If", "StatelessIf")
def _if(cv, node, ins):
    """tf.cond on a run-time value (TF2): both branches as Networks of an ONNX If."""
    from .graphdef import Graph

    branches = []
    for key in ("then_branch", "else_branch"):
        attr = node.attr(key)
        if attr is None:
            raise UnsupportedError(f"If without {key}")
        g = Graph([], cv.graph.functions)
        args = []
        for i in range(len(node.inputs) - 1):
            a = f"{node.name}/{key}/arg_{i}"
            g.nodes[a] = Node(a, "_LoopArg", [])
            args.append(a)
        outs = g.inline_function(attr.func(), f"{node.name}/{key}", [f"{a}:0" for a in args])
        outs = [through_identity_n(g, r) for r in outs]
        sub = SubNetwork(cv, g, f"{node.name}/{key}")
        for a, v in zip(args, ins[1:]):
            sub.bind(a, _plain(cv, v))
        vals = sub.convert(outs, set(args))
        branches.append((sub, vals))
    (then_sub, then_vals), (else_sub, else_vals) = branches
    then_outs = [then_sub.tensor(v, f"out_{i}") for i, v in enumerate(then_vals)]
    else_outs = [else_sub.tensor(v, f"out_{i}", t.dtype) for i, (v, t) in enumerate(zip(else_vals, then_outs))]
    cond = tensor_of(cv, ins[0], f"{node.name}/cond")
    if cond.dtype != "bool":
        zero = cv.net.add_constant((), np.zeros((), np.dtype(cond.dtype)), name=f"{node.name}/zero").output
        eq = cv.net.add_elementwise(cond, zero, "equal", name=f"{node.name}/is_zero").output
        cond = cv.net.add_unary(eq, "not", name=f"{node.name}/truth").output
    layer = cv.net.add_if(cond, then_sub.finish(then_outs), else_sub.finish(else_outs), then_sub.outer,
                          name=node.name)
    return [TV(layer.get_output(i)) for i in range(len(then_outs))]

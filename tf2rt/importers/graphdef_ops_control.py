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
from .graphdef import TV, Graph, GraphConverter, Node, Partial, split_ref
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
    """The number of elements: a constant, or read from the stacked tensor's shape at run time."""
    if isinstance(data, np.ndarray):
        return np.array(data.shape[0], np.int32)
    t = cv.plain(data)
    if t.shape[0] is not None:
        return np.array(t.shape[0], np.int32)
    from .graphdef_ops_shape import runtime_dim

    return TV(cv.net.add_cast(runtime_dim(cv, t, 0, f"{node.name}/length"), "int32", name=node.name).output)


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
    constants and array handles are bound as they are, so weights stay constants inside.
    inline=True: the part is converted into the caller's Network instead (a branch taken
    for certain), its arguments bound to the caller's values themselves."""

    def __init__(self, cv: GraphConverter, graph: Any, name: str, inline: bool = False):
        from ..network import Network

        self.child = GraphConverter(graph, cv.resolve_variable)
        self.child.input_shapes = cv.input_shapes
        self.inline = inline
        self.net = self.child.net = cv.net if inline else Network(name)
        self.outer: list[Any] = []

    def input(self, arg: str, dtype: str, shape: tuple, name: str) -> Any:
        t = self.net.add_input(name, dtype, shape)
        self.child.values[(arg, 0)] = TV(t)
        return t

    def bind(self, arg: str, v: Any) -> None:
        self.child.values[(arg, 0)] = v if self.inline else self._bound(arg, v)

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


_INDEX_INPUTS = {"GatherV2": 1, "TensorListGetItem": 1, "TensorArrayReadV3": 1}


def _only_indexes(graph: Any, arg: str, roots: list[str]) -> bool:
    """True when every node computing `roots` that reads `arg` uses it as an index to read an
    array by (an int64 index reads the same row as an int32 one)."""
    from .tf_loops import Dataflow

    reach, todo = set(), [split_ref(r)[0] for r in roots]
    while todo:
        name = todo.pop()
        if name in reach or name not in graph.nodes or name == arg:
            continue
        reach.add(name)
        todo.extend(split_ref(r)[0] for r in graph.nodes[name].inputs)
    users = [(n, i) for n, i in Dataflow(graph).users(f"{arg}:0") if n.name in reach]
    return all(_INDEX_INPUTS.get(n.op) == i for n, i in users)


def _results(plan: Any) -> list[str]:
    """Body refs of what each iteration gives: the carried values' next values, the scan items."""
    return [plan.nexts[k] for k in plan.carried_ids] + [plan.items[k] for k in plan.scan_ids]


def _body(cv: GraphConverter, node: Node, plan: Any, carried: list, shapes: list,
          invariants: list) -> tuple[SubNetwork, list]:
    """The loop body as a Network: inputs iteration, carried values (with `shapes`), invariants;
    outputs condition, next values, scan items."""
    sub = SubNetwork(cv, plan.body, f"{node.name}/body")
    iteration = sub.net.add_input("iteration", "int64", ())
    for k, dtype in plan.counted.items():  # counters the trip count replaces: the iteration number
        t = iteration if dtype == "int64" or k in plan.index_counters else \
            sub.net.add_cast(iteration, dtype, name=f"counter_{k}").output
        sub.child.values[(plan.args[k], 0)] = TV(t)
    for k, t, shape in zip(plan.carried_ids, carried, shapes):
        sub.input(plan.args[k], t.dtype, shape, plan.args[k].rsplit("/", 1)[-1])
    for arg, v in invariants:
        sub.bind(arg, v)
    for k in plan.scan_ids:
        sub.bind(plan.args[k], ArrayValue())
    results = _results(plan)
    stop = set(plan.args) | set(plan.extra_args)
    if plan.counted:  # the trip count ends the loop
        vals = [np.array(True)] + sub.convert(results, stop)
    else:
        vals = sub.convert([plan.cond] + results, stop)
    outs = [sub.tensor(vals[0], "condition", "bool", scalar=True)]
    outs += [sub.tensor(v, f"next_{i}", t.dtype) for i, (v, t) in enumerate(zip(vals[1:], carried))]
    outs += [sub.tensor(v, f"item_{i}") for i, v in enumerate(vals[1 + len(carried):])]
    return sub, outs


def _trip_count(cv: GraphConverter, node: Node, plan: Any, init: dict, bound_values: dict) -> Any:
    """The loop's trip count as an int64 scalar tensor, when its condition only bounds counters
    that start at 0 (LoopPlan.trip): max(min(bounds), 0). None otherwise."""
    if not plan.trip or any(not isinstance(init.get(k), np.ndarray | np.generic) for k, _, _ in plan.trip):
        return None
    ts = []
    for i, (_k, bref, fixed) in enumerate(plan.trip):
        v = bound_values.get(split_ref(bref)[0])
        if v is None:
            v = fixed
        if not isinstance(v, (TV, np.ndarray, np.generic)) or np.ndim(getattr(v, "t", v)) > 1:
            return None
        t = tensor_of(cv, np.asarray(v, np.int64) if not isinstance(v, TV) else v, f"{node.name}/bound_{i}")
        if t.dtype not in ("int32", "int64") or t.rank > 1 or (t.rank == 1 and t.shape[0] != 1):
            return None
        if t.rank:
            t = cv.net.add_shuffle(t, reshape_dims=[], name=f"{node.name}/bound_{i}/scalar").output
        if t.dtype != "int64":
            t = cv.net.add_cast(t, "int64", name=f"{node.name}/bound_{i}/int64").output
        ts.append(t)
    m = ts[0]
    for i, t in enumerate(ts[1:]):
        m = cv.net.add_elementwise(m, t, "min", name=f"{node.name}/bounds_min_{i}").output
    zero = cv.net.add_constant((), np.zeros((), np.int64), name=f"{node.name}/zero").output
    return cv.net.add_elementwise(m, zero, "max", name=f"{node.name}/trip_count").output


def _plain(cv: GraphConverter, v: Any) -> Any:
    """What a body or branch is given: tensors in TF's axis order, run-time sizes computed."""
    if isinstance(v, Partial) and v.origin is not None:
        v = cv.runtime(v)  # its origin belongs to this network, not to the body's
    if isinstance(v, TV) and v.nchw:
        return TV(cv.plain(v))
    if isinstance(v, ArrayValue) and isinstance(v.content, TV) and v.content.nchw:
        return ArrayValue(TV(cv.plain(v.content)))
    return v


def _initial_condition(cv: GraphConverter, node: Node, cond: Any) -> Any:
    """The loop's first condition (on the initial values) as a bool scalar tensor."""
    if isinstance(cond, (np.ndarray, np.generic, bool)):
        cond = np.asarray(cond, bool)
    t = tensor_of(cv, cond, f"{node.name}/cond0")
    if t.dtype != "bool":
        t = cv.net.add_cast(t, "bool", name=f"{node.name}/cond0/bool").output
    if t.rank != 0:
        t = cv.net.add_shuffle(t, reshape_dims=[], name=f"{node.name}/cond0/scalar").output
    return t


@op(WHILE_OP)
def _while_loop(cv, node, ins):
    """A while loop as a Network loop (ONNX Loop) with its body converted on its own."""
    plan = node.plan
    non_scan = [k for k, kind in enumerate(plan.kinds) if kind != "scan"]
    init = dict(zip(non_scan, ins[1:1 + len(non_scan)]))
    invariants = [(plan.args[k], _plain(cv, init[k])) for k, kind in enumerate(plan.kinds) if kind == "invariant"]
    invariants += list(zip(plan.extra_args, (_plain(cv, v) for v in ins[1 + len(non_scan):])))
    trip = _trip_count(cv, node, plan, init, dict(invariants))
    plan.counted = {k: np.asarray(init[k]).dtype.name for k, _, _ in plan.trip} if trip is not None else {}
    plan.carried_ids = [k for k, kind in enumerate(plan.kinds) if kind == "carried" and k not in plan.counted]
    plan.scan_ids = [k for k, kind in enumerate(plan.kinds) if kind == "scan"]
    plan.index_counters = {k for k in plan.counted if _only_indexes(plan.body, plan.args[k], _results(plan))}
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
    if trip is not None:
        layer = cv.net.add_loop(body.net, carried, body.outer, trip_count=trip, name=node.name)
    else:
        layer = cv.net.add_loop(body.net, carried, body.outer, condition=_initial_condition(cv, node, ins[0]),
                                name=node.name)
    outs: list[Any] = []
    finals = {k: TV(layer.get_output(i)) for i, k in enumerate(plan.carried_ids)}
    for k, dtype in plan.counted.items():  # a counter ends at the number of iterations
        finals[k] = TV(trip if dtype == "int64" else cv.net.add_cast(trip, dtype, name=f"{node.name}/count_{k}").output)
    scans = {k: ArrayValue(TV(layer.get_output(len(carried) + i))) for i, k in enumerate(plan.scan_ids)}
    for k, kind in enumerate(plan.kinds):
        outs.append(finals[k] if kind == "carried" else scans[k] if kind == "scan" else init[k])
    return outs


# --- conditionals on run-time values ---------------------------------------------------------
def conditional(cv: GraphConverter, name: str, cond: Any, branches: list, values: list) -> list:
    """The values of a two-way conditional. branches: (graph, argument nodes, result refs) run
    when `cond` is true, then when it is false; `values` are bound to the arguments of both.
    A condition known at conversion converts the branch it takes into this Network; a run-time
    one converts both into Networks of an ONNX If (same inputs, one per tensor value)."""
    if isinstance(cond, Partial):
        cond = cv.runtime(cond)
    if not isinstance(cond, TV):
        graph, args, roots = branches[0 if bool(np.asarray(cond).reshape(-1)[0]) else 1]
        sub = SubNetwork(cv, graph, name, inline=True)
        for a, v in zip(args, values):
            sub.bind(a, v)
        return sub.convert(roots, set(args))
    built = []
    for (graph, args, roots), which in zip(branches, ("then", "else")):
        sub = SubNetwork(cv, graph, f"{name}/{which}")
        for a, v in zip(args, values):
            sub.bind(a, _plain(cv, v))
        built.append((sub, sub.convert(roots, set(args))))
    (then_sub, then_vals), (else_sub, else_vals) = built
    then_outs = [then_sub.tensor(v, f"out_{i}") for i, v in enumerate(then_vals)]
    else_outs = [else_sub.tensor(v, f"out_{i}", t.dtype) for i, (v, t) in enumerate(zip(else_vals, then_outs))]
    c = cv.plain(cond)
    if c.dtype != "bool":  # TensorFlow's truthiness: non-zero
        zero = cv.net.add_constant((), np.zeros((), np.dtype(c.dtype)), name=f"{name}/zero").output
        eq = cv.net.add_elementwise(c, zero, "equal", name=f"{name}/is_zero").output
        c = cv.net.add_unary(eq, "not", name=f"{name}/truth").output
    layer = cv.net.add_if(c, then_sub.finish(then_outs), else_sub.finish(else_outs), then_sub.outer, name=name)
    return [TV(layer.get_output(i)) for i in range(len(then_outs))]


def _branch(cv: GraphConverter, node: Node, fname: str, which: str, nargs: int, lead: int = 0) -> tuple:
    """A branch function inlined into a graph of its own: (graph, argument nodes, result refs);
    the first `lead` arguments are not the function's (a Case index the branch does not read)."""
    g = Graph([], cv.graph.functions)
    args = []
    for i in range(nargs):
        a = f"{node.name}/{which}/arg_{i}"
        g.nodes[a] = Node(a, "_LoopArg", [])
        args.append(a)
    outs = g.inline_function(fname, f"{node.name}/{which}", [f"{a}:0" for a in args[lead:]])
    return g, args, [through_identity_n(g, r) for r in outs]


@op("If", "StatelessIf")
def _if(cv, node, ins):
    """tf.cond on a run-time value (TF2): both branches as Networks of an ONNX If."""
    branches = []
    for key in ("then_branch", "else_branch"):
        attr = node.attr(key)
        if attr is None:
            raise UnsupportedError(f"If without {key}")
        branches.append(_branch(cv, node, attr.func(), key, len(node.inputs) - 1))
    return conditional(cv, node.name, ins[0], branches, ins[1:])


@op("Case", "StatelessCase")
def _case(cv, node, ins):
    """tf.switch_case on a run-time index (TF2): a chain of ONNX Ifs, the last branch for any other index.

    Link k compares the index with k; an index out of range runs the last branch, as in TensorFlow."""
    names = getattr(node, "case_branches", None)
    if names is None:
        attr = node.attr("branches")
        names = [f.str(1) for f in attr.msg.message(1).messages(9)] if attr is not None else []
    if not names:
        raise UnsupportedError("Case without branches")
    first = getattr(node, "case_first", 0)  # the index the first of `names` stands for
    nargs = len(node.inputs)  # the index travels with the inputs (the rest of the chain compares it)
    branch = [_branch(cv, node, names[0], f"case_{first}", nargs, lead=1)]
    if len(names) == 1:  # one branch runs whatever the index
        return conditional(cv, node.name, np.bool_(True), branch * 2, ins)
    if len(names) == 2:
        branch.append(_branch(cv, node, names[1], f"case_{first + 1}", nargs, lead=1))
    else:  # the rest of the chain: a Case over the remaining branches, in a graph of its own
        g = Graph([], cv.graph.functions)
        args = [f"{node.name}/rest/arg_{i}" for i in range(nargs)]
        for a in args:
            g.nodes[a] = Node(a, "_LoopArg", [])
        rest = Node(f"{node.name}/rest", node.op, [f"{a}:0" for a in args], node.attrs)
        rest.case_branches, rest.case_first = names[1:], first + 1  # type: ignore[attr-defined]
        g.nodes[rest.name] = rest
        n_out = len(branch[0][2])
        branch.append((g, args, [f"{rest.name}:{i}" for i in range(n_out)]))
    index = ins[0]
    if isinstance(index, (TV, Partial)):
        t = tensor_of(cv, index, f"{node.name}/index")
        k = cv.net.add_constant((), np.array(first, np.dtype(t.dtype)), name=f"{node.name}/is_{first}/k").output
        cond: Any = TV(cv.net.add_elementwise(t, k, "equal", name=f"{node.name}/is_{first}").output)
    else:
        cond = np.bool_(int(np.asarray(index).reshape(-1)[0]) == first)
    return conditional(cv, node.name, cond, branch, ins)

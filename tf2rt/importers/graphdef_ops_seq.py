"""Handlers for the ops around recurrences: embedding lookups (GatherV2 / ResourceGather of
a weight by run-time ids), one-hot inputs, tensor transposes (dynamic_rnn's batch <-> time
major), and the `_Recurrence` nodes that stand for recognised RNN loops."""

from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from .graphdef import DEAD, TV, Partial
from .graphdef_ops import HANDLERS, const, is_const, op
from .tf_cond import COND_OP

_fold_gather = HANDLERS.get("GatherV2")
_fold_transpose = HANDLERS.get("Transpose")


@op("GatherV2", "ResourceGather")
def _gather(cv, node, ins):
    """Gather of constants folds; a weight indexed by run-time ids is an embedding lookup."""
    params, idx = ins[0], ins[1]
    axis = int(const(ins[2], "gather axis")) if len(ins) > 2 else 0
    bd = node.attr("batch_dims")
    if bd is not None and bd.i() != 0:
        raise UnsupportedError(f"gather with batch_dims={bd.i()}")
    if is_const(params) and is_const(idx) and _fold_gather is not None and node.op == "GatherV2":
        return _fold_gather(cv, node, ins)
    if isinstance(params, Partial) and is_const(idx):  # an entry of a shape with a dynamic batch size
        vals = np.take(params.values, np.asarray(idx).astype(np.int64), axis=axis)
        return [Partial(vals) if (np.asarray(vals) < 0).any() else vals]
    if isinstance(params, tuple) and params and params[0] == "resource":  # ResourceGather(handle, ids)
        params = np.asarray(cv.resolve_variable(params[1]))
    if is_const(params):
        arr = params.astype(np.float32) if params.dtype == np.float64 else params
        data = cv.net.add_constant(arr.shape, arr, name=f"{node.name}/params").output
    else:
        data = cv.plain(params)
    if is_const(idx):
        ind = cv.net.add_constant(np.shape(idx), np.asarray(idx, np.int32), name=f"{node.name}/indices").output
    else:
        ind = cv.plain(idx)
        if ind.dtype not in ("int32", "int64"):
            raise UnsupportedError(f"gather indices of dtype {ind.dtype}")
    return [TV(cv.net.add_gather(data, ind, axis=axis, name=node.name).output)]


@op("Transpose")
def _transpose(cv, node, ins):
    """Transpose of a tensor (constants fold)."""
    x, perm = ins
    if is_const(x) and _fold_transpose is not None:
        return _fold_transpose(cv, node, ins)
    p = [int(v) for v in np.atleast_1d(const(perm, "Transpose permutation"))]
    t = cv.plain(x)
    if sorted(p) != list(range(t.rank)):
        raise UnsupportedError(f"Transpose permutation {p} does not fit a rank-{t.rank} tensor")
    if p == list(range(t.rank)):
        return [TV(t)]
    return [TV(cv.net.add_shuffle(t, first_transpose=tuple(p), name=node.name).output)]


def _reversed_indices(cv, t, axis: int, name: str):
    """n-1, ..., 1, 0 (int64) for the run-time size n of t's `axis`."""
    from .graphdef_ops_shape import runtime_dim

    n = runtime_dim(cv, t, axis, f"{name}/size")
    one = cv.net.add_constant((), np.array(1, np.int64), name=f"{name}/one").output
    start = cv.net.add_elementwise(n, one, "sub", name=f"{name}/last").output
    stop = cv.net.add_constant((), np.array(-1, np.int64), name=f"{name}/stop").output
    return cv.net.add_range(start, stop, stop, name=name).output


@op("ReverseV2")
def _reverse(cv, node, ins):
    """Reverse along axes (a backward RNN's input and output): a Gather of reversed indices."""
    x, axes = ins
    ax = [int(a) for a in np.atleast_1d(const(axes, "ReverseV2 axes"))]
    if is_const(x):
        return [np.flip(x, axis=tuple(ax)).copy()]
    v = TV(cv.plain(x))
    t = v.t
    for a in ax:
        a %= t.rank
        d = t.shape[a]
        if d is None:  # the length is known at run time: indices d-1, ..., 0 from its shape
            idx = _reversed_indices(cv, t, a, f"{node.name}/indices{a}")
        else:
            idx = cv.net.add_constant((d,), np.arange(d - 1, -1, -1, dtype=np.int32),
                                      name=f"{node.name}/indices{a}").output
        t = cv.net.add_gather(t, idx, axis=a, name=f"{node.name}/axis{a}").output
    return [TV(t)]


@op("OneHot")
def _one_hot(cv, node, ins):
    """tf.one_hot(ids, depth, on, off) on the last axis: a row lookup in a constant matrix."""
    ids, depth, on, off = ins
    axis = node.attr("axis").i() if node.attr("axis") is not None else -1
    if axis != -1:
        raise UnsupportedError(f"one_hot on axis {axis} (only the last axis)")
    n = int(const(depth, "one_hot depth"))
    on_v, off_v = float(const(on, "one_hot on value")), float(const(off, "one_hot off value"))
    if n <= 0 or n > 1 << 20:
        raise UnsupportedError(f"one_hot depth {n}")
    table = np.full((n + 1, n), off_v, np.float32)
    table[np.arange(n), np.arange(n)] = on_v  # row n: ids out of range give all "off", as TF
    if is_const(ids):
        i = np.asarray(ids).astype(np.int64)
        return [table[np.where((i >= 0) & (i < n), i, n)]]
    t = cv.plain(ids)
    data = cv.net.add_constant(table[:n].shape, table[:n], name=f"{node.name}/table").output
    return [TV(cv.net.add_gather(data, t, axis=0, name=node.name).output)]


@op("Switch", "RefSwitch")
def _switch(cv, node, ins):
    """TF1 tf.cond fixed at conversion: the taken side passes its data (on a run-time value: ONNX If).

    A constant predicate, e.g. an is_training PlaceholderWithDefault left at its default: the
    other side is dead. Conds on run-time values were rebuilt as `_Cond` nodes (tf_cond.py)."""
    data, pred = ins
    if not is_const(pred):  # tf_cond.py rebuilds every cond it can; this one it could not
        why = getattr(cv.graph, "cond_errors", {}).get(node.name)
        raise UnsupportedError("tf.cond on a value computed at run time that tf2rt could not rebuild as a "
                               "conditional: " + (why or "a value inside one branch is read outside the cond"))
    return [DEAD, data] if bool(np.asarray(pred).reshape(-1)[0]) else [data, DEAD]


@op("Merge", "RefMerge")
def _merge(cv, node, ins):
    """The one live input of a TF1 cond's Merge (and its index)."""
    live = [(i, v) for i, v in enumerate(ins) if v is not DEAD]
    if not live:
        return [DEAD, DEAD]
    if len(live) > 1:
        raise UnsupportedError("Merge of several live inputs (a while loop tf2rt did not recognise as an RNN)")
    return [live[0][1], np.int32(live[0][0])]


@op(COND_OP)
def _cond(cv, node, ins):
    """A TF1 tf.cond (Switch/Merge) rebuilt by tf_cond.py: an ONNX If of both branches (folded
    when the predicate is known at conversion)."""
    from .graphdef_ops_control import conditional

    return conditional(cv, node.name, ins[0], node.plan.branches, ins[1:])


@op("_MatMulLastAxis")
def _matmul_last_axis(cv, node, ins):
    """x [..., K] times W [K, N] over the last axis (a tensordot / Dense on rank > 2 inputs)."""
    x, w = ins
    w = const(w, "tensordot weight").astype(np.float32)
    t = cv.plain(x)
    wt = cv.net.add_constant(w.shape, w, name=f"{node.name}/kernel").output
    return [TV(cv.net.add_matrix_multiply(t, "none", wt, "none", name=node.name).output)]


@op("_LeadingAxis")
def _leading_axis(cv, node, ins):
    """[B, H] -> [1, B, H] (a recurrence's last output, as a one-element output list)."""
    t = cv.plain(ins[0])
    return [TV(cv.net.add_shuffle(t, reshape_dims=[1, -1, int(t.shape[-1])], name=node.name).output)]


@op("_SwapBatchTime")
def _swap_batch_time(cv, node, ins):
    """[B, T, ...] <-> [T, B, ...] (the layout change around an unrolled recurrence)."""
    t = cv.plain(ins[0])
    perm = (1, 0) + tuple(range(2, t.rank))
    return [TV(cv.net.add_shuffle(t, first_transpose=perm, name=node.name).output)]


@op("_StepsConcat1")
def _steps_concat(cv, node, ins):
    """The step outputs of a recurrence [T, B, H] concatenated along axis 1: [B, T*H]."""
    t = cv.plain(ins[0])
    bt = cv.net.add_shuffle(t, first_transpose=(1, 0, 2), name=f"{node.name}/batch_major").output
    return [TV(cv.net.add_shuffle(bt, reshape_dims=[0, -1], name=node.name).output)]


@op("_TimeStep")
def _time_step(cv, node, ins):
    """Step t of a recurrence's outputs [T, B, H]: [B, H]."""
    t = cv.plain(ins[0])
    idx = cv.net.add_constant((1,), np.array([node.time_step], np.int32), name=f"{node.name}/index").output
    g = cv.net.add_gather(t, idx, axis=0, name=f"{node.name}/gather").output
    return [TV(cv.net.add_shuffle(g, reshape_dims=[-1, t.shape[-1]], name=node.name).output)]


from . import tf_bidirectional, tf_recurrence  # noqa: E402,F401  (register _BiRecurrence, _Recurrence)

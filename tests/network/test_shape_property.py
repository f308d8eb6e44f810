"""Property: for random chains of layers, the shapes the network infers are the shapes both
backends produce, and the two backends agree on the values."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tf2rt.engine import build_engine
from tf2rt.network import Network


def _apply(net, t, draw, i):
    shape, rank = t.shape, t.rank
    kind = draw(st.sampled_from(["shuffle", "reshape", "slice", "concat", "reduce", "elementwise", "topk",
                                 "softmax", "gather", "matmul", "unary"]))
    name = f"{kind}{i}"
    if kind == "shuffle":
        perm = draw(st.permutations(range(rank)))
        return net.add_shuffle(t, first_transpose=perm, name=name).output
    if kind == "reshape":
        dims = (0, -1) if rank >= 2 and draw(st.booleans()) else (-1,)
        return net.add_shuffle(t, reshape_dims=dims, name=name).output
    if kind == "slice":
        start, size, stride = [], [], []
        for d in shape:
            s = draw(st.integers(0, d - 1))
            step = draw(st.sampled_from([1, 2, -1]))
            room = (d - s + step - 1) // step if step > 0 else s + 1
            start.append(s)
            stride.append(step)
            size.append(draw(st.integers(1, max(room, 1))))
        return net.add_slice(t, start, size, stride, name=name).output
    if kind == "concat":
        return net.add_concatenation([t, t], axis=draw(st.integers(-rank, rank - 1)), name=name).output
    if kind == "reduce":
        axes = draw(st.lists(st.integers(0, rank - 1), min_size=1, max_size=rank, unique=True))
        keep = draw(st.booleans()) or len(axes) == rank
        op = draw(st.sampled_from(["sum", "max", "min", "avg", "prod"]))
        return net.add_reduce(t, op, axes, keep_dims=keep, name=name).output
    if kind == "elementwise":
        k = draw(st.integers(0, rank))
        cshape = tuple(1 if draw(st.booleans()) else d for d in shape[rank - k:])
        c = net.add_constant(cshape, np.linspace(0.5, 1.5, int(np.prod(cshape))).astype(np.float32)).output
        op = draw(st.sampled_from(["sum", "prod", "sub", "max", "min"]))
        a, b = (t, c) if draw(st.booleans()) else (c, t)
        return net.add_elementwise(a, b, op, name=name).output
    if kind == "topk":
        ax = draw(st.integers(0, rank - 1))
        return net.add_topk(t, draw(st.sampled_from(["max", "min"])), draw(st.integers(1, shape[ax])), ax,
                            name=name).output
    if kind == "softmax":
        return net.add_softmax(t, draw(st.integers(0, rank - 1)), name=name).output
    if kind == "gather":
        ax = draw(st.integers(0, rank - 1))
        idx = np.array(draw(st.lists(st.integers(0, shape[ax] - 1), min_size=1, max_size=3)), np.int32)
        ind = net.add_constant(idx.shape, idx).output
        return net.add_gather(t, ind, ax, name=name).output
    if kind == "matmul" and rank >= 2:
        k = shape[-1]
        w = net.add_constant((k, 3), np.linspace(-1, 1, 3 * k).astype(np.float32).reshape(k, 3)).output
        return net.add_matrix_multiply(t, "none", w, "none", name=name).output
    return net.add_unary(t, "abs", name=name).output


@st.composite
def networks(draw):
    rank = draw(st.integers(1, 4))
    shape = tuple(draw(st.integers(1, 4)) for _ in range(rank))
    net = Network("prop")
    t = net.add_input("x", "float32", shape)
    outs = []
    for i in range(draw(st.integers(1, 5))):
        if t.rank == 0 or 0 in t.shape or int(np.prod(t.shape)) > 4096:
            break
        t = _apply(net, t, draw, i)
        outs.append(t)
    for o in outs:
        net.mark_output(o)
    return net, shape


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks(), st.integers(0, 2**31 - 1))
def test_inferred_shapes_match_both_backends(case, seed):
    net, shape = case
    if not net.outputs:
        return
    engine = build_engine(net)
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    a = engine.run({"x": x})
    b = engine.run({"x": x}, backend="reference")
    for t in net.outputs:
        assert a[t.name].shape == t.shape, (t.name, a[t.name].shape, t.shape)
        assert b[t.name].shape == t.shape
        np.testing.assert_allclose(a[t.name], b[t.name], rtol=1e-5, atol=1e-5, err_msg=t.name)

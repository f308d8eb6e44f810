"""RNN cells recognised from the ops of a loop body (or of one unrolled step).

A cell is found from its dataflow, not from names:

* LSTM: `z = x·Wx + h·Wh + b` (one MatMul of `concat(x, h)` or one per operand) split in four;
  the slice whose sigmoid multiplies the old cell state is the forget gate (a constant added
  before it is `forget_bias`), the two slices multiplied together are the input gate
  (sigmoid) and the candidate (the cell's activation), the last one is the output gate,
  which multiplies the activation of the new cell state. TF's (i, j, f, o) and Keras'
  (i, f, c, o) orders both fall out of this.
* GRU (reset before the recurrent product, as TF's GRUCell): sigmoid of `concat(x, h)·W + b`
  split in two; the half that multiplies `h` before the candidate's product is the reset
  gate, the other the update gate; `h' = u·h + (1 - u)·c`.
* Simple RNN: `h' = act(concat(x, h)·W + b)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import UnsupportedError

ACTIVATIONS = {"Tanh": "tanh", "Relu": "relu", "Sigmoid": "sigmoid"}
_ADD = ("Add", "AddV2", "BiasAdd")


@dataclass
class Term:
    """One product `operand · W[rows]` of a gate pre-activation; rows "x", "h" or "all"."""

    operand: str   # "x" or "h" (or "xh" for concat(x, h), "hx" for concat(h, x))
    weight: int    # index into the cell's params


@dataclass
class CellMatch:
    kind: str                       # "lstm", "gru", "rnn"
    states: list[Any]               # LoopVars: lstm (c, h); gru / rnn (h,)
    new: list[str]                  # refs of the new states, same order
    activation: str = "tanh"
    params: list[str] = field(default_factory=list)
    terms: list[Term] = field(default_factory=list)           # gate pre-activation terms
    bias: int | None = None                                    # gate bias param index
    order: dict[str, int] = field(default_factory=dict)        # gate -> split index
    gate_consts: dict[str, int] = field(default_factory=dict)  # gate -> param index of a constant added
    cand_terms: list[Term] = field(default_factory=list)       # GRU candidate
    cand_bias: int | None = None
    h_order: dict[str, int] = field(default_factory=dict)     # reset-after GRU: gate -> block of h·U
    h_terms: list[Term] = field(default_factory=list)         # Keras reset-before GRU: h·U_zr
    peepholes: dict[str, int] = field(default_factory=dict)   # LSTM gate -> param index of its w_diag
    peep_reads: dict[str, str] = field(default_factory=dict)  # (matching scratch) what a peephole multiplies
    linear_before_reset: bool = False
    name: str = ""

    def add_param(self, r: str) -> int:
        self.params.append(r)
        return len(self.params) - 1


def params_of(cell: CellMatch) -> list[str]:
    return list(cell.params)


class _Matcher:
    def __init__(self, flow: Any, loop: str):
        self.flow, self.loop = flow, loop

    def fail(self, what: str) -> UnsupportedError:
        return UnsupportedError(f"loop {self.loop!r}: {what}")

    def op(self, r: str) -> str | None:
        n = self.flow.src_node(r)
        return n.op if n is not None else None

    def single_user(self, r: str, ops: tuple[str, ...] | None = None) -> tuple[Any, int] | None:
        us = [(n, i) for n, i in self.flow.users(r) if ops is None or n.op in ops]
        return us[0] if len(us) == 1 else None

    # --- z = sum of products + bias ---------------------------------------------------
    def linear(self, z: str, cell: CellMatch, x: str, hs: set[str]) -> tuple[list[Term], int | None]:
        """Decompose z into MatMul terms of x / h (a concat of both or separately) and a bias."""
        terms, bias = [], None
        todo = [z]
        while todo:
            r = self.flow.source(todo.pop())
            n = self.flow.node(r)
            if n is None:
                raise self.fail(f"cannot follow {r!r}")
            if n.op in _ADD:
                for i in n.inputs[:2]:
                    if self.op(i) == "MatMul" or self.op(i) in _ADD:
                        todo.append(i)
                    elif bias is None:
                        bias = cell.add_param(self.flow.source(i))
                    else:
                        raise self.fail(f"{n.name!r} adds two constants to a gate pre-activation")
            elif n.op == "MatMul":
                if n.attr("transpose_a") and n.attr("transpose_a").b() or n.attr("transpose_b") and n.attr("transpose_b").b():
                    raise self.fail(f"{n.name!r}: transposed MatMul inside a cell")
                a = self.flow.source(n.inputs[0])
                terms.append(Term(self.operand(a, x, hs, n.name), cell.add_param(self.flow.source(n.inputs[1]))))
            else:
                raise self.fail(f"{n.name!r} ({n.op}) in a gate pre-activation")
        if not terms:
            raise self.fail("a gate pre-activation without a matrix product")
        return terms, bias

    def operand(self, a: str, x: str, hs: set[str], where: str) -> str:
        if a == x:
            return "x"
        if a in hs:
            return "h"
        n = self.flow.node(a)
        if n is not None and n.op in ("ConcatV2", "Concat"):
            vals = n.inputs[:-1] if n.op == "ConcatV2" else n.inputs[1:]
            srcs = [self.flow.source(v) for v in vals]
            if len(srcs) == 2 and srcs[0] == x and srcs[1] in hs:
                return "xh"
            if len(srcs) == 2 and srcs[1] == x and srcs[0] in hs:
                return "hx"
        raise self.fail(f"{where!r} multiplies something that is neither the cell input nor its state")


def _split_outputs(m: _Matcher, r: str, n_split: int) -> list[str] | None:
    """Refs of the n outputs of a Split/SplitV (last axis) consuming `r`, None if there is none."""
    for n, i in m.flow.users(r):
        if n.op == "Split" and i == 1 and n.attr("num_split") and n.attr("num_split").i() == n_split:
            return [f"{n.name}:{k}" for k in range(n_split)]
        if n.op == "SplitV" and i == 0 and n.attr("num_split") and n.attr("num_split").i() == n_split:
            return [f"{n.name}:{k}" for k in range(n_split)]
    return None


def match_cells(flow: Any, x_t: str, states: list[Any], unwrap: Callable[[str], str], out: str,
                loop: str) -> tuple[list[CellMatch], list[Any]]:
    """The chain of cells from the step input `x_t` to the written output `out`."""
    m = _Matcher(flow, loop)
    x = flow.source(x_t)
    inner = {flow.source(v.inner): v for v in states}
    layers: list[CellMatch] = []
    used: list[Any] = []
    for _ in range(64):
        cell = _match_one(m, x, inner)
        for v, new in zip(cell.states, cell.new):
            if unwrap(v.next) != flow.source(new):
                raise m.fail(f"the state computed by the cell is not what the loop carries ({v.next!r})")
            used.append(v)
        cell.states = list(cell.states)
        layers.append(cell)
        h_new = flow.source(cell.new[-1])
        if h_new == out:
            break
        x = h_new
    else:
        raise m.fail("more than 64 cells in one loop")
    if len(used) != len(states):
        extra = [v.next for v in states if v not in used]
        raise m.fail(f"loop variables that are not cell states: {', '.join(extra[:3])}")
    return layers, used


def _match_one(m: _Matcher, x: str, inner: dict[str, Any]) -> CellMatch:
    flow = m.flow
    # the MatMul(s) reading x (alone or concatenated with a state) start the cell
    starts = []
    for n, i in flow.users(x):
        if n.op == "MatMul" and i == 0:
            starts.append(n)
        elif n.op in ("ConcatV2", "Concat"):
            for u, j in flow.users(f"{n.name}:0"):
                if u.op == "MatMul" and j == 0:
                    starts.append(u)
    hs = set(inner)
    for mm in starts:
        z = _pre_activation_end(m, f"{mm.name}:0")
        four = _split_outputs(m, z, 4)
        if four is not None:
            return _lstm(m, x, inner, z, four)
        sig = m.single_user(z, ("Sigmoid",))
        if sig is not None:
            two = _split_outputs(m, f"{sig[0].name}:0", 2)
            if two is not None:
                return _gru(m, x, inner, z, two)
        three = _split_outputs(m, z, 3)
        if three is not None:
            return _gru_reset_after(m, x, inner, z, three)
        act = m.single_user(z, tuple(ACTIVATIONS))
        if act is not None:
            new = f"{act[0].name}:0"
            h = [s for s in hs if _reads(m, mm, s) or _term_reads(m, z, s)]
            if len(h) == 1:
                cell = CellMatch("rnn", [inner[h[0]]], [new], ACTIVATIONS[act[0].op], name=mm.name.rsplit("/", 1)[0])
                cell.terms, cell.bias = m.linear(z, cell, x, hs)
                return cell
    raise m.fail(f"no LSTM, GRU or RNN cell reads the step input {x!r}")


def _reads(m: _Matcher, mm: Any, state: str) -> bool:
    a = m.flow.src_node(mm.inputs[0])
    if a is None:
        return False
    if m.flow.source(mm.inputs[0]) == state:
        return True
    return a.op in ("ConcatV2", "Concat") and any(m.flow.source(v) == state for v in a.inputs)


def _pre_activation_end(m: _Matcher, r: str) -> str:
    """Follow bias adds / sums of products forward to the last add of a gate pre-activation."""
    for _ in range(8):
        nxt = m.single_user(r, _ADD)
        if nxt is None:
            return r
        r = f"{nxt[0].name}:0"
    return r


def _gate_path(m: _Matcher, r: str, cell: CellMatch, gate_const: dict[str, int], key: str) -> tuple[str, str]:
    """From a split output through an optional added constant to its activation: (op, output ref)."""
    for _ in range(4):
        us = m.flow.users(r)
        if len(us) != 1:
            raise m.fail(f"gate slice {r!r} is used {len(us)} times; expected one activation")
        n, i = us[0]
        if n.op in ("Add", "AddV2"):
            other = n.inputs[1 - i]
            val = m.flow.const(other)
            peep = _peephole(m, other) if val is None else None
            if peep is not None:  # w_diag * c: a peephole (checked against the cell state later)
                gate_const["peephole:" + key] = cell.add_param(peep[0])
                cell.peep_reads["peephole:" + key] = peep[1]
            elif val is None or val.size != 1:
                raise m.fail(f"{n.name!r} adds a non-constant to a gate")
            else:
                gate_const[key] = cell.add_param(m.flow.source(other))
            r = f"{n.name}:0"
            continue
        if n.op in ACTIVATIONS:
            return n.op, f"{n.name}:0"
        raise m.fail(f"gate slice feeds {n.op} ({n.name!r}), not an activation")
    raise m.fail(f"cannot follow gate slice {r!r}")


def _peephole(m: _Matcher, r: str) -> tuple[str, str] | None:
    """(weight ref, multiplied ref) when r is Mul(weight vector, x) with a loop-invariant weight."""
    n = m.flow.src_node(r)
    if n is None or n.op != "Mul" or len(n.inputs) != 2:
        return None
    for a, b in ((0, 1), (1, 0)):
        w = m.flow.src_node(n.inputs[a])
        if w is not None and w.op in ("Const", "VariableV2", "VarHandleOp", "ReadVariableOp"):
            return m.flow.source(n.inputs[a]), m.flow.source(n.inputs[b])
    return None


def _mul_partner(m: _Matcher, r: str) -> list[tuple[Any, str]]:
    out = []
    for n, i in m.flow.users(r):
        if n.op == "Mul":
            out.append((n, m.flow.source(n.inputs[1 - i])))
    return out


def _lstm(m: _Matcher, x: str, inner: dict[str, Any], z: str, split: list[str]) -> CellMatch:
    flow = m.flow
    cell = CellMatch("lstm", [], [])
    consts: dict[int, int] = {}
    acts = {}
    peeps: dict[int, tuple[int, str]] = {}
    for k, s in enumerate(split):
        tmp: dict[str, int] = {}
        acts[k] = _gate_path(m, s, cell, tmp, "g")
        if "g" in tmp:
            consts[k] = tmp["g"]
        if "peephole:g" in tmp:
            peeps[k] = (tmp["peephole:g"], cell.peep_reads.pop("peephole:g"))
    act_out = {flow.source(o): k for k, (_op, o) in acts.items()}
    f = c_var = None
    for k, (_op, o) in acts.items():
        for _n, partner in _mul_partner(m, o):
            if partner in inner:
                f, c_var = k, inner[partner]
    if f is None:
        raise m.fail("no gate multiplies the previous cell state (not an LSTM)")
    i = j = None
    for k, (_op, o) in acts.items():
        if k == f:
            continue
        for _n, partner in _mul_partner(m, o):
            if partner in act_out and act_out[partner] not in (f, k):
                pair = (k, act_out[partner])
                sig = [q for q in pair if acts[q][0] == "Sigmoid"]
                if len(sig) == 1:
                    i, j = sig[0], [q for q in pair if q != sig[0]][0]
    if i is None:
        raise m.fail("no input gate x candidate product (not an LSTM)")
    o = ({0, 1, 2, 3} - {f, i, j}).pop()
    # c' = f*c + i*j ; h' = o * act(c')
    fc = [n for n, p in _mul_partner(m, acts[f][1]) if p == flow.source(c_var.inner)][0]
    add = m.single_user(f"{fc.name}:0", ("Add", "AddV2"))
    if add is None:
        raise m.fail("the forgotten cell state is not added to the new input")
    c_new = f"{add[0].name}:0"
    act_c = m.single_user(c_new, tuple(ACTIVATIONS))
    if act_c is None:
        raise m.fail("the new cell state has no single activation (cell clipping is not supported)")
    h_new = None
    for n, partner in _mul_partner(m, acts[o][1]):
        if partner == flow.source(f"{act_c[0].name}:0"):
            h_new = f"{n.name}:0"
    if h_new is None:
        raise m.fail("the output gate does not multiply the activated cell state")
    hs = set(inner)
    h_state = [s for s in hs if s != flow.source(c_var.inner)]
    cell.terms, cell.bias = m.linear(z, cell, x, hs)
    readers = [s for s in h_state if _term_reads(m, z, s)]
    if len(readers) != 1:
        raise m.fail("cannot tell which loop variable is the cell's output state")
    cell.states = [c_var, inner[readers[0]]]
    cell.new = [c_new, h_new]
    names = {i: "input", j: "cell", f: "forget", o: "output"}
    cell.order = {names[k]: k for k in range(4)}
    if peeps:  # i and f look at the previous cell state, o at the new one (ONNX's peepholes too)
        want = {i: flow.source(c_var.inner), f: flow.source(c_var.inner), o: flow.source(c_new)}
        if j in peeps or set(peeps) != {i, f, o} or any(peeps[k][1] != want[k] for k in peeps):
            raise m.fail("LSTM peepholes that do not read the cell state as TF's LSTMCell does")
        cell.peepholes = {names[k]: peeps[k][0] for k in peeps}
    cell.gate_consts = {names[k]: p for k, p in consts.items()}
    if acts[j][0] != act_c[0].op:
        raise m.fail(f"candidate activation {acts[j][0]} differs from the cell-state activation {act_c[0].op}")
    if any(acts[k][0] != "Sigmoid" for k in (i, f, o)):
        raise m.fail("LSTM gates with an activation other than sigmoid")
    cell.activation = ACTIVATIONS[act_c[0].op]
    cell.name = flow.src_node(z).name.rsplit("/", 1)[0]
    return cell


def _term_reads(m: _Matcher, z: str, state: str) -> bool:
    """Whether the products summed into z read `state`."""
    todo, seen = [m.flow.source(z)], set()
    while todo:
        r = todo.pop()
        if r in seen:
            continue
        seen.add(r)
        n = m.flow.node(r)
        if n is None:
            continue
        if n.op in _ADD:
            todo += [m.flow.source(i) for i in n.inputs[:2]]
        elif n.op == "MatMul" and _reads(m, n, state):
            return True
    return False


def _gru(m: _Matcher, x: str, inner: dict[str, Any], z: str, split: list[str]) -> CellMatch:
    flow = m.flow
    cell = CellMatch("gru", [], [])
    hs = set(inner)
    cell.terms, cell.bias = m.linear(z, cell, x, hs)
    h = [s for s in hs if _term_reads(m, z, s)]
    if len(h) != 1:
        raise m.fail("cannot tell which loop variable is the GRU state")
    h_ref = h[0]
    r_k = None
    cand_mm = None
    for k, s in enumerate(split):
        for n, partner in _mul_partner(m, s):
            if partner != h_ref:
                continue
            for c, _i in flow.users(f"{n.name}:0"):
                if c.op in ("ConcatV2", "Concat"):
                    for u, j in flow.users(f"{c.name}:0"):
                        if u.op == "MatMul" and j == 0:
                            r_k, cand_mm = k, u
    if r_k is None:
        raise m.fail("no GRU reset gate multiplies the state before the candidate product")
    u_k = 1 - r_k
    cz = _pre_activation_end(m, f"{cand_mm.name}:0")
    act = m.single_user(cz, tuple(ACTIVATIONS))
    if act is None:
        raise m.fail("the GRU candidate has no activation")
    cand = flow.source(f"{act[0].name}:0")
    # candidate terms: concat(x, r*h) @ Wc ; treat the r*h operand as "h" rows
    rh = None
    for n, partner in _mul_partner(m, split[r_k]):
        if partner == h_ref:
            rh = f"{n.name}:0"
    cterms, cbias = m.linear(cz, cell, x, {flow.source(rh)})
    cell.cand_terms, cell.cand_bias = cterms, cbias
    new = _update_mix(m, split[u_k], h_ref)  # h' = u*h + (1-u)*c
    used_cand = any(flow.source(i) == cand or _mixes(m, i, cand) for i in flow.node(new).inputs)
    if not used_cand:
        raise m.fail("the GRU candidate does not reach the new state")
    cell.states, cell.new = [inner[h_ref]], [new]
    cell.order = {"reset": r_k, "update": u_k}
    cell.activation = ACTIVATIONS[act[0].op]
    cell.name = flow.src_node(z).name.rsplit("/", 1)[0]
    return cell


def _block_index(m: _Matcher, r: str) -> tuple[str, int] | None:
    """(sliced tensor, block position) of a Split output or a StridedSlice along the last axis."""
    n = m.flow.src_node(r)
    if n is None:
        return None
    if n.op == "Split" and len(n.inputs) == 2:
        return m.flow.source(n.inputs[1]), int(m.flow.source(r).rsplit(":", 1)[1])
    if n.op == "StridedSlice" and len(n.inputs) == 4:
        begin = m.flow.const(n.inputs[1])
        if begin is None:
            return None
        return m.flow.source(n.inputs[0]), int(np.asarray(begin).reshape(-1)[-1])
    return None


def _gru_reset_after(m: _Matcher, x: str, inner: dict[str, Any], zx: str, split: list[str]) -> CellMatch:
    """Keras GRU (reset after the recurrent product): x·W + b_x split in (z, r, h), h·U + b_h
    sliced likewise; z, r = σ(x_k + h_k); h~ = φ(x_h + r·h_h); h' = z·h + (1 - z)·h~."""
    flow = m.flow
    cell = CellMatch("gru", [], [])
    hs = set(inner)
    cell.terms, cell.bias = m.linear(zx, cell, x, hs)
    gates: dict[int, tuple[str, str, Any]] = {}  # x block -> (activation op, act output, inner block ref)
    zh = None
    for k, sref in enumerate(split):
        add = m.single_user(sref, ("Add", "AddV2"))
        if add is None:
            raise m.fail(f"GRU slice {sref!r} is not added to the recurrent part")
        other = add[0].inputs[1 - add[1]]
        act = m.single_user(f"{add[0].name}:0", tuple(ACTIVATIONS))
        if act is None:
            raise m.fail(f"GRU slice {sref!r} has no activation")
        gates[k] = (act[0].op, f"{act[0].name}:0", other)
    sig = [k for k, g in gates.items() if g[0] == "Sigmoid"]
    cand = [k for k in gates if k not in sig]
    if len(cand) != 1 or len(sig) != 2:
        raise m.fail("not a GRU: expected two sigmoid gates and one candidate")
    kc = cand[0]
    mul = flow.src_node(gates[kc][2])  # r * (h·U_h + b_h)
    if mul is not None and mul.op == "MatMul":  # (r * h)·U_h: Keras GRU with reset_after=False
        return _gru_keras_reset_before(m, cell, inner, gates, sig, kc, mul, zx)
    if mul is None or mul.op != "Mul":
        raise m.fail("the GRU candidate does not add r times the recurrent product")
    r_out = {flow.source(gates[k][1]): k for k in sig}
    srcs = [flow.source(i) for i in mul.inputs]
    kr = next((r_out[s_] for s_ in srcs if s_ in r_out), None)
    if kr is None:
        raise m.fail("the GRU candidate's recurrent product is not scaled by a gate")
    ku = [k for k in sig if k != kr][0]
    h_blocks = {}
    for k, ref_ in ((ku, gates[ku][2]), (kr, gates[kr][2]),
                    (kc, next(s_ for s_ in srcs if s_ not in r_out))):
        b = _block_index(m, ref_)
        if b is None:
            raise m.fail("cannot tell which part of the recurrent product feeds each GRU gate")
        if zh is not None and b[0] != zh:
            raise m.fail("the GRU gates read different recurrent products")
        zh, h_blocks[k] = b[0], b[1]
    order_h = {k: i for i, k in enumerate(sorted(h_blocks, key=h_blocks.get))}
    h_terms, h_bias = m.linear(zh, cell, x, hs)
    mix = None
    for n, partner in _mul_partner(m, gates[ku][1]):
        if partner in hs:
            add = m.single_user(f"{n.name}:0", ("Add", "AddV2"))
            if add is not None:
                mix, h_ref = f"{add[0].name}:0", partner
    if mix is None:
        raise m.fail("the GRU update gate does not mix the old state into the new one")
    cell.states, cell.new = [inner[h_ref]], [mix]
    cell.order = {"update": ku, "reset": kr, "hidden": kc}
    cell.h_order = {"update": order_h[ku], "reset": order_h[kr], "hidden": order_h[kc]}
    cell.cand_terms, cell.cand_bias = h_terms, h_bias
    cell.linear_before_reset = True
    cell.activation = ACTIVATIONS[gates[kc][0]]
    cell.name = flow.src_node(zx).name.rsplit("/", 1)[0]
    return cell


def _gru_keras_reset_before(m: _Matcher, cell: CellMatch, inner: dict[str, Any], gates: dict, sig: list[int],
                            kc: int, cand_mm: Any, zx: str) -> CellMatch:
    """Keras GRU(reset_after=False): z, r = σ(x_k + (h·U_zr)_k); h~ = φ(x_h + (r·h)·U_h)."""
    flow = m.flow
    rh = flow.src_node(cand_mm.inputs[0])
    r_out = {flow.source(gates[k][1]): k for k in sig}
    if rh is None or rh.op != "Mul":
        raise m.fail("the GRU candidate's recurrent product does not read r times the state")
    srcs = [flow.source(i) for i in rh.inputs]
    kr = next((r_out[s_] for s_ in srcs if s_ in r_out), None)
    h_ref = next((s_ for s_ in srcs if s_ in inner), None)
    if kr is None or h_ref is None:
        raise m.fail("the GRU candidate's recurrent product does not read r times the state")
    ku = [k for k in sig if k != kr][0]
    h_blocks, zh = {}, None
    for k in (ku, kr):
        b = _block_index(m, gates[k][2])
        if b is None or (zh is not None and b[0] != zh):
            raise m.fail("cannot tell which part of the recurrent product feeds each GRU gate")
        zh, h_blocks[k] = b[0], b[1]
    order_h = {k: i for i, k in enumerate(sorted(h_blocks, key=h_blocks.get))}
    gate_terms, gate_bias = m.linear(zh, cell, "", {h_ref})
    cand_terms, cand_bias = m.linear(f"{cand_mm.name}:0", cell, "", {flow.source(f"{rh.name}:0")})
    if gate_bias is not None or cand_bias is not None:
        raise m.fail("a Keras GRU without reset_after has no recurrent bias")
    mix = _update_mix(m, gates[ku][1], h_ref)
    cell.states, cell.new = [inner[h_ref]], [mix]
    cell.order = {"update": ku, "reset": kr, "hidden": kc}
    cell.h_order = {"update": order_h[ku], "reset": order_h[kr]}
    cell.h_terms, cell.cand_terms = gate_terms, cand_terms
    cell.linear_before_reset = False
    cell.activation = ACTIVATIONS[gates[kc][0]]
    cell.name = flow.src_node(zx).name.rsplit("/", 1)[0]
    return cell


def _update_mix(m: _Matcher, u_out: str, h_ref: str) -> str:
    """h' = u*h + ...: the Add of the update gate times the old state (a GRU's new state)."""
    for n, partner in _mul_partner(m, u_out):
        if partner == h_ref:
            add = m.single_user(f"{n.name}:0", ("Add", "AddV2"))
            if add is not None:
                return f"{add[0].name}:0"
    raise m.fail("the GRU update gate does not mix the old state into the new one")


def _mixes(m: _Matcher, r: str, cand: str) -> bool:
    n = m.flow.src_node(r)
    return n is not None and n.op == "Mul" and any(m.flow.source(i) == cand for i in n.inputs)


# --- weights --------------------------------------------------------------------------
def _rows(terms: list[Term], params: list[np.ndarray], hidden: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(W_x [E, k], W_h [H, k]) from the products of a pre-activation."""
    wx = wh = None
    for t in terms:
        w = np.asarray(params[t.weight], np.float32)
        if w.ndim != 2:
            raise UnsupportedError(f"{what}: a weight of shape {w.shape} is not a matrix")
        if t.operand == "x":
            wx = w if wx is None else wx + w
        elif t.operand == "h":
            wh = w if wh is None else wh + w
        elif t.operand == "xh":
            wx, wh = w[:-hidden], w[-hidden:]
        else:  # "hx"
            wh, wx = w[:hidden], w[hidden:]
    if wx is None or wh is None:
        raise UnsupportedError(f"{what}: the cell does not read both its input and its state")
    return wx, wh


def cell_weights(cell: CellMatch, params: list[np.ndarray]) -> Any:
    """The CellWeights of a matched cell from the values of its parameters."""
    from ..layouts.canonical import CellWeights

    what = cell.name or "cell"
    if cell.kind == "gru" and cell.h_terms:  # Keras reset-before: x split in 3, h·U_zr sliced in 2, (r·h)·U_h
        wx3 = np.asarray(params[cell.terms[0].weight], np.float32)
        H = wx3.shape[1] // 3
        uzr = np.asarray(params[cell.h_terms[0].weight], np.float32)
        uh = np.asarray(params[cell.cand_terms[0].weight], np.float32)
        bx = np.asarray(params[cell.bias], np.float32).reshape(-1) if cell.bias is not None else np.zeros(3 * H, np.float32)
        W, R, Wb, Rb = {}, {}, {}, {}
        for gate in ("update", "reset", "hidden"):
            cx = slice(cell.order[gate] * H, (cell.order[gate] + 1) * H)
            W[gate], Wb[gate], Rb[gate] = wx3[:, cx].T.copy(), bx[cx].copy(), np.zeros(H, np.float32)
            if gate == "hidden":
                R[gate] = uh.T.copy()
            else:
                ch = slice(cell.h_order[gate] * H, (cell.h_order[gate] + 1) * H)
                R[gate] = uzr[:, ch].T.copy()
        return CellWeights("gru", wx3.shape[0], H, W, R, Wb, Rb, linear_before_reset=False,
                           activation=cell.activation, name=what)
    if cell.kind == "gru" and cell.linear_before_reset:  # x and h products kept apart
        if cell.h_order:
            wx3 = np.concatenate([np.asarray(params[t.weight], np.float32) for t in cell.terms if t.operand == "x"], 1)
            wh3 = np.concatenate([np.asarray(params[t.weight], np.float32) for t in cell.cand_terms
                                  if t.operand == "h"], 1)
            H = wx3.shape[1] // 3
            bx = np.asarray(params[cell.bias], np.float32).reshape(-1) if cell.bias is not None else np.zeros(3 * H, np.float32)
            bh = np.asarray(params[cell.cand_bias], np.float32).reshape(-1) if cell.cand_bias is not None \
                else np.zeros(3 * H, np.float32)
            W, R, Wb, Rb = {}, {}, {}, {}
            for gate in ("update", "reset", "hidden"):
                cx, ch = slice(cell.order[gate] * H, (cell.order[gate] + 1) * H), \
                    slice(cell.h_order[gate] * H, (cell.h_order[gate] + 1) * H)
                W[gate], R[gate] = wx3[:, cx].T.copy(), wh3[:, ch].T.copy()
                Wb[gate], Rb[gate] = bx[cx].copy(), bh[ch].copy()
            return CellWeights("gru", wx3.shape[0], H, W, R, Wb, Rb, linear_before_reset=True,
                               activation=cell.activation, name=what)
    if cell.kind == "lstm":
        n_cols = np.asarray(params[cell.terms[0].weight]).shape[-1]
        H = n_cols // 4
    elif cell.kind == "gru":
        H = np.asarray(params[cell.terms[0].weight]).shape[-1] // 2
    else:
        H = np.asarray(params[cell.terms[0].weight]).shape[-1]
    wx, wh = _rows(cell.terms, params, H, what)
    bias = np.asarray(params[cell.bias], np.float32).reshape(-1) if cell.bias is not None else np.zeros(wx.shape[1], np.float32)
    E = wx.shape[0]
    W, R, Wb, Rb = {}, {}, {}, {}
    blocks = cell.order if cell.kind != "rnn" else {"input": 0}
    for gate, k in blocks.items():
        cols = slice(k * H, (k + 1) * H)
        W[gate], R[gate] = wx[:, cols].T.copy(), wh[:, cols].T.copy()
        Wb[gate] = bias[cols].copy()
        if gate in cell.gate_consts:
            Wb[gate] = Wb[gate] + np.float32(np.asarray(params[cell.gate_consts[gate]]).reshape(-1)[0])
        Rb[gate] = np.zeros(H, np.float32)
    if cell.kind == "gru":
        cx, ch = _rows(cell.cand_terms, params, H, what)
        cb = np.asarray(params[cell.cand_bias], np.float32).reshape(-1) if cell.cand_bias is not None else np.zeros(H, np.float32)
        W["hidden"], R["hidden"], Wb["hidden"], Rb["hidden"] = cx.T.copy(), ch.T.copy(), cb.copy(), np.zeros(H, np.float32)
        return CellWeights("gru", E, H, W, R, Wb, Rb, linear_before_reset=False, activation=cell.activation, name=what)
    peep = {g: np.asarray(params[k], np.float32).reshape(-1) for g, k in cell.peepholes.items()} or None
    return CellWeights(cell.kind, E, H, W, R, Wb, Rb, peepholes=peep, activation=cell.activation, name=what)

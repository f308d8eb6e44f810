"""Every reason a TF graph cannot be converted, reported at once: unsupported ops (with counts
and example nodes), inputs without a usable shape, and ops whose handler refused the node
(for example an unsupported attribute value). Used by GraphConverter."""

from __future__ import annotations

from collections import Counter
from typing import Any, Optional

from ..errors import FormatError, UnsupportedError
from .graphdef import DTYPE_NAMES, Node, dtype_of


def parse_shape_arg(text: str) -> tuple[str, list[Optional[int]]]:
    """"NAME=D0,D1,..." (-1 or ? for a dynamic dim; "NAME=" for a scalar) -> (name, dims)."""
    name, sep, dims = text.rpartition("=")
    if not sep or not name:
        raise UnsupportedError(f"input shape {text!r}: expected NAME=D0,D1,... (-1 or ? for a dynamic dim)")
    out: list[Optional[int]] = []
    for d in filter(None, (x.strip() for x in dims.split(","))):
        if d in ("?", "-1", "None"):
            out.append(None)
        elif d.isdigit():
            out.append(int(d))
        else:
            raise UnsupportedError(f"input shape {text!r}: dimension {d!r} is not a number, -1 or ?")
    return name, out


def placeholder_shape(node: Node, given: Optional[list]) -> Optional[list]:
    """The input's shape (None entries = dynamic): the given one, else the placeholder's; None if unknown rank."""
    attr = node.attr("shape")
    own = attr.shape() if attr is not None else None
    if given is not None:
        given = [None if d is None or int(d) < 0 else int(d) for d in given]
        if own is not None and len(own) != len(given):
            raise UnsupportedError(f"input {node.name!r}: shape {given} has rank {len(given)}, the placeholder has "
                                   f"rank {len(own)} ({list(own)})")
        return given
    return None if own is None else [None if d < 0 else d for d in own]


def _examples(counter: Counter, examples: dict[str, str]) -> str:
    return ", ".join(f"{k} x{n} (e.g. node {examples[k]!r})" for k, n in sorted(counter.items()))


def check_graph(cv: Any, order: list[str], inputs: set[str]) -> None:
    """Unsupported ops and inputs without a shape, in one UnsupportedError (nothing if all is well)."""
    bad: Counter = Counter()
    examples: dict[str, str] = {}
    shapeless: list[str] = []
    wrong: list[str] = []
    given = getattr(cv, "input_shapes", {}) or {}
    for name in order:
        node = cv.graph.nodes[name]
        if name in inputs:
            try:
                attr = node.attr("dtype") or node.attr("T")
                code = attr.type() if attr is not None else 1
                if dtype_of(code, f"input {name!r}") is object:
                    raise UnsupportedError(f"input {name!r}: dtype {DTYPE_NAMES.get(code % 100, code)} is not "
                                           "supported (cut the graph after it with inputs=[...] / --inputs)")
                if placeholder_shape(node, given.get(name)) is None:
                    shapeless.append(name)
            except UnsupportedError as exc:
                wrong.append(str(exc))
        elif node.op not in cv.handlers:
            bad[node.op] += 1
            examples.setdefault(node.op, name)
    parts = []
    if bad:
        parts.append(f"unsupported TensorFlow ops: {_examples(bad, examples)}")
    if shapeless:
        parts.append(f"{len(shapeless)} input(s) of unknown rank: {', '.join(repr(s) for s in shapeless)}; give each "
                     "a shape (input_shapes={NAME: [D0, D1, ...]}, or --input-shape NAME=D0,D1,... with -1 for "
                     "a dynamic dim)")
    parts.extend(wrong)
    if not parts:
        return
    msg = "; ".join(parts) if len(parts) == 1 else f"{len(parts)} problems: " + "; ".join(parts)
    if bad:
        msg += f". Supported ops: {', '.join(sorted(cv.handlers))}"
    raise UnsupportedError(msg)


def raise_failures(failed: dict[str, tuple[str, Exception]], graph: Any) -> None:
    """One error for the nodes whose handlers refused them (node -> (op, error)); the first error's type
    when there is one, else UnsupportedError with counts per op and every message."""
    real = {n: v for n, v in failed.items() if v[1] is not None}
    if not real:
        return
    if len(real) == 1:
        (name, (op, exc)), = real.items()
        raise type(exc)(f"node {name!r} ({op}): {exc}") from None
    per_op: Counter = Counter(op for op, _ in real.values())
    examples = {}
    for name, (op, _) in real.items():
        examples.setdefault(op, name)
    lines = [f"  node {name!r} ({op}): {exc}" for name, (op, exc) in real.items()]
    kind = FormatError if all(isinstance(e, FormatError) for _, e in real.values()) else UnsupportedError
    raise kind(f"{len(real)} nodes could not be converted ({_examples(per_op, examples)}):\n" + "\n".join(lines))

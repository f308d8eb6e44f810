"""Reference Loop and If (ONNX opset 17): subgraphs run with the enclosing values in scope."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np

from .registry import op

In = Sequence[Optional[np.ndarray]]


def _flag(x: np.ndarray, what: str) -> bool:
    x = np.asarray(x)
    if x.size != 1:
        raise ValueError(f"{what} must have one element, got shape {list(x.shape)}")
    return bool(x.reshape(-1)[0])


def _given(inputs: In, i: int) -> Optional[np.ndarray]:
    return inputs[i] if len(inputs) > i and inputs[i] is not None else None


@op("Loop", scoped=True)
def loop(inputs: In, attrs: dict, env: Mapping[str, Any]) -> tuple:
    """Iterate while (i < M, if M is given) and cond. cond starts as the cond input (true when
    empty) and is the body's condition output after each iteration, as onnxruntime does
    with and without a cond input. Carried values may change shape between iterations;
    scan outputs are stacked on a new axis 0 (an empty loop gives [0, *declared shape])."""
    body = attrs["body"]
    m, c = _given(inputs, 0), _given(inputs, 1)
    trip = None if m is None else int(np.asarray(m).reshape(-1)[0])
    go = True if c is None else _flag(c, "Loop cond")
    carried = [np.asarray(v) for v in inputs[2:]]
    n = len(carried)
    names = body.input_names
    if len(names) != 2 + n:
        raise ValueError(f"the Loop body has {len(names)} inputs; expected {2 + n} (iteration, cond, "
                         f"{n} carried)")
    scans: list[list[np.ndarray]] = [[] for _ in range(len(body.output_names) - 1 - n)]
    i = 0
    while go and (trip is None or i < trip):
        outs = body.run(dict(zip(names, [np.array(i, np.int64), np.array(go), *carried])), env)
        go = _flag(outs[0], "the Loop body's condition output")
        carried = outs[1:1 + n]
        for k, v in enumerate(outs[1 + n:]):
            if scans[k] and scans[k][0].shape != np.shape(v):
                raise ValueError(f"scan output {k} changes shape between iterations "
                                 f"({list(scans[k][0].shape)} -> {list(np.shape(v))})")
            scans[k].append(np.asarray(v))
        i += 1
    stacked = []
    for k, items in enumerate(scans):
        if items:
            stacked.append(np.stack(items))
        else:  # no iteration: the body's declared per-iteration shape, unknown dims 0 (as onnxruntime)
            dtype, dims = body.output_types[1 + n + k]
            stacked.append(np.zeros((0,) if dims is None else (0, *[d or 0 for d in dims]), dtype))
    return tuple(carried) + tuple(stacked)


@op("If", scoped=True)
def if_(inputs: In, attrs: dict, env: Mapping[str, Any]) -> tuple:
    branch = attrs["then_branch"] if _flag(inputs[0], "If cond") else attrs["else_branch"]
    return tuple(branch.run({}, env))

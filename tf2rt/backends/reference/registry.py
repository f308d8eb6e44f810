"""The reference op registry: one numpy function per ONNX op type.

An op function takes (inputs, attrs): `inputs` is the list of input arrays (None for an
omitted optional input) and `attrs` a dict of the node's attributes (strings decoded);
it returns one array or a tuple of arrays (one per node output). Ops registered with
`scoped=True` (Loop, If) also take the environment of values visible at the node, and find
their subgraphs in `attrs` as prepared interpreter Graphs.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

OpFn = Callable[[Sequence[Optional[np.ndarray]], dict[str, Any]], Union[np.ndarray, tuple]]
OPS: dict[str, OpFn] = {}
SCOPED_OPS: set[str] = set()  # op types whose function takes (inputs, attrs, env)

# Modules holding op functions (absent ones are skipped), imported on first use.
OP_MODULES: tuple[str, ...] = ("ops_core", "ops_rnn", "ops_cnn", "ops_detect", "ops_control", "ops_resize")


def op(*op_types: str, scoped: bool = False) -> Callable[[OpFn], OpFn]:
    """Register `fn` as the numpy implementation of the given ONNX op type(s)."""

    def register(fn: OpFn) -> OpFn:
        for t in op_types:
            OPS[t] = fn
            if scoped:
                SCOPED_OPS.add(t)
        return fn

    return register


def load_ops() -> dict[str, OpFn]:
    for mod in OP_MODULES:
        full = f"{__package__}.{mod}"
        if importlib.util.find_spec(full) is not None:
            importlib.import_module(full)
    return OPS

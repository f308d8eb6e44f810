"""The reference op registry: one numpy function per ONNX op type.

An op function takes (inputs, attrs): `inputs` is the list of input arrays (None for an
omitted optional input) and `attrs` a dict of the node's attributes (strings decoded);
it returns one array or a tuple of arrays (one per node output).
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

OpFn = Callable[[Sequence[Optional[np.ndarray]], dict[str, Any]], Union[np.ndarray, tuple]]
OPS: dict[str, OpFn] = {}

# Modules holding op functions (absent ones are skipped), imported on first use.
OP_MODULES: tuple[str, ...] = ("ops_core", "ops_rnn", "ops_cnn", "ops_detect")


def op(*op_types: str) -> Callable[[OpFn], OpFn]:
    """Register `fn` as the numpy implementation of the given ONNX op type(s)."""

    def register(fn: OpFn) -> OpFn:
        for t in op_types:
            OPS[t] = fn
        return fn

    return register


def load_ops() -> dict[str, OpFn]:
    for mod in OP_MODULES:
        full = f"{__package__}.{mod}"
        if importlib.util.find_spec(full) is not None:
            importlib.import_module(full)
    return OPS

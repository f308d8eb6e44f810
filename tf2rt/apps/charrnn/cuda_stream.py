"""Char-RNN steps on the cuda backend without a launch per character.

A char-RNN engine is: embedding lookup (Gather) -> recurrent stack -> dense head (MatMul +
Add, or Gemm) -> logits. On the cuda backend `char_rnn_parts` splits such an engine into
the table, the stack and the head. Generation runs them all on the GPU (the backend's
DecodeLoop: many characters per launch, the choice of each made on the device); `step()`
runs the stack in a streaming session (one resident kernel for the whole text, state on
chip) with the lookup and the head in numpy, since it returns every step's logits to the
host anyway. Engines of any other shape keep the generic path (one CUDA-graph replay per
character).
"""

from __future__ import annotations

from typing import Any

import numpy as np

GLUE = ("Transpose", "Reshape", "Squeeze", "Unsqueeze", "Cast", "Identity")


class NotStreamable(Exception):
    """The engine is not a plain embedding -> recurrent stack -> dense head."""


def char_rnn_parts(engine: Any, chains: Any, input_name: str, logits_name: str) -> tuple:
    """(embedding table [V, E], head kernel [H, V], head bias [V]) of a plain char-RNN
    engine, read from the engine's own graph around its single recurrent stack (`chains`:
    the cuda executor's); NotStreamable for any other engine."""
    from onnx import numpy_helper

    g = engine.onnx.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    if len(chains) != 1:
        raise NotStreamable(f"{len(chains)} recurrent stacks")
    first, last = chains[0].nodes[0], chains[0].nodes[-1]

    def through_glue(name: str) -> str:
        while name in producer and producer[name].op_type in GLUE:
            name = producer[name].input[0]
        return name

    # Embedding: the first layer's input is a Gather of a table by the character ids.
    gather = producer.get(through_glue(first.input[0]))
    if gather is None or gather.op_type != "Gather" or list(gather.input)[1:] != [input_name] \
            or gather.input[0] not in inits or any(a.name == "axis" and a.i != 0 for a in gather.attribute):
        raise NotStreamable("no embedding lookup feeding the recurrent stack")
    table = inits[gather.input[0]].astype(np.float32)
    kernel, bias = _head(producer, inits, logits_name, last, through_glue)
    return table, kernel, bias


def _head(producer: dict, inits: dict, logits: str, last: Any, through_glue: Any) -> tuple:
    """Head: logits = y_last @ kernel + bias (MatMul + Add, or Gemm)."""
    node = producer.get(through_glue(logits))
    if node is None:
        raise NotStreamable("logits are not computed from the recurrent stack")
    if node.op_type == "Gemm":
        attrs = {a.name: a for a in node.attribute}
        if attrs.get("transA") and attrs["transA"].i or len(node.input) < 3 or node.input[1] not in inits \
                or node.input[2] not in inits or any(k in attrs and attrs[k].f != 1.0 for k in ("alpha", "beta")):
            raise NotStreamable("unsupported Gemm head")
        w = inits[node.input[1]].astype(np.float32)
        kernel = w.T if attrs.get("transB") and attrs["transB"].i else w
        bias, source = inits[node.input[2]].astype(np.float32), node.input[0]
    elif node.op_type == "Add":
        a, b = node.input
        bias_name, mm_out = (b, a) if b in inits else (a, b)
        mm = producer.get(through_glue(mm_out))
        if bias_name not in inits or mm is None or mm.op_type != "MatMul" or mm.input[1] not in inits:
            raise NotStreamable("unsupported dense head")
        kernel, bias, source = inits[mm.input[1]].astype(np.float32), inits[bias_name].astype(np.float32), mm.input[0]
    else:
        raise NotStreamable(f"head op {node.op_type}")
    if through_glue(source) != last.output[0]:
        raise NotStreamable("the head does not read the last recurrent layer's output")
    return kernel, bias.reshape(-1)


class StreamedCharRNN:
    """Embedding row -> streaming session -> dense head, one character per `step`."""

    def __init__(self, engine: Any, runner: Any, input_name: str, logits_name: str) -> None:
        self.table, self.kernel, self.bias = char_rnn_parts(engine, runner.executor.chains, input_name, logits_name)
        self.session = runner.stream_session(batch=1)

    def reset(self) -> None:
        """Start from zero state (a fresh session)."""
        if self.session.is_open:
            self.session.close()
        self.session.open()

    def step(self, char_id: int) -> np.ndarray:
        if not self.session.is_open:
            self.session.open()
        h = self.session.step(self.table[char_id])
        return h.reshape(-1) @ self.kernel + self.bias

    def close(self) -> None:
        if self.session.is_open:
            self.session.close()

"""Control-flow layers: a loop over a body Network (ONNX Loop) and a choice between two branch
Networks (ONNX If). Bodies and branches are separate Networks the caller builds; the contract
of their inputs and outputs is in docs/network.md, "Control flow"."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .layer import Layer
from .network import Network, network_method
from .tensor import Shape, Tensor, shape_str


def merge_shapes(a: Shape, b: Shape) -> Shape:
    """Dims equal in both stay; dims that differ (or are unknown in either) become None."""
    return tuple(x if x == y else None for x, y in zip(a, b))


def _one_element(t: Tensor) -> bool:
    return all(d == 1 for d in t.shape)


def _conflict(a: Shape, b: Shape) -> bool:
    """True when ranks differ or some dimension is known in both and differs."""
    return len(a) != len(b) or any(x is not None and y is not None and x != y for x, y in zip(a, b))


def _spec(t: Tensor) -> str:
    return f"{t.dtype}{shape_str(t.shape)}"


def _body_weights(layers: Sequence[Layer]) -> dict[str, np.ndarray]:
    return {f"{layer.name}/{k}": v for layer in layers for k, v in layer.weights().items()}


def _unchanged(layer: Layer) -> None:
    """At build time: the bodies still give the outputs the layer was added with."""
    if [(t.dtype, t.shape) for t in layer.outputs] != layer.infer():
        raise layer.error("its body changed after the layer was added (outputs differ); add the layer "
                          "after the body is complete")


class LoopLayer(Layer):
    """Runs `body` while (iteration < trip_count, when given) and (condition, when given; the
    body computes the next one): inputs [trip_count, condition, *carried, *invariants] (the
    first two may be None). Outputs: the final value of each carried tensor, then each scan
    output stacked over iterations as [iterations, *per-iteration shape]."""

    type = "loop"

    def __init__(self, body: Network, carried: Sequence[Tensor], invariants: Sequence[Tensor],
                 trip_count: Optional[Tensor], condition: Optional[Tensor]):
        carried, invariants = list(carried), list(invariants)
        super().__init__([trip_count, condition, *carried, *invariants])
        self.body = body
        self.num_carried = len(carried)
        self.num_invariants = len(invariants)

    @property
    def trip_count(self) -> Optional[Tensor]:
        return self.inputs[0]

    @property
    def condition(self) -> Optional[Tensor]:
        return self.inputs[1]

    @property
    def carried(self) -> list[Tensor]:
        return self.inputs[2:2 + self.num_carried]  # type: ignore[return-value]

    @property
    def invariants(self) -> list[Tensor]:
        return self.inputs[2 + self.num_carried:]  # type: ignore[return-value]

    @property
    def num_scan_outputs(self) -> int:
        return len(self.body.outputs) - 1 - self.num_carried

    def infer(self) -> list[tuple[str, Shape]]:
        body, nc, ni = self.body, self.num_carried, self.num_invariants
        if not isinstance(body, Network) or body is self.network:
            raise self.error(f"body must be a separate Network, got {type(body).__name__}")
        trip, cond = self.trip_count, self.condition
        if any(t is None for t in self.inputs[2:]):
            raise self.error("carried and invariant values must be tensors, not None")
        if trip is None and cond is None:
            raise self.error("needs a trip_count or a condition (or both); a loop with neither never ends")
        if trip is not None and (trip.dtype not in ("int64", "int32") or not _one_element(trip)):
            raise self.error(f"trip_count {trip.name} must be an int64 (or int32) scalar, got {_spec(trip)}")
        if cond is not None and (cond.dtype != "bool" or not _one_element(cond)):
            raise self.error(f"condition {cond.name} must be a bool scalar, got {_spec(cond)}")
        ins, outs = body.inputs, body.outputs
        if len(ins) != 1 + nc + ni:
            raise self.error(f"body {body.name!r} has {len(ins)} inputs; expected {1 + nc + ni}: the iteration "
                             f"number, then {nc} carried and {ni} invariant value(s)")
        if ins[0].dtype != "int64" or ins[0].shape != ():
            raise self.error(f"body input 0 ({ins[0].name}) is the iteration number: expected int64[], "
                             f"got {_spec(ins[0])}")
        for k, (t, b) in enumerate(zip(self.carried, ins[1:1 + nc])):
            if b.dtype != t.dtype or _conflict(b.shape, t.shape):
                raise self.error(f"body input {1 + k} ({b.name}) is carried value {k}: expected {_spec(t)} like "
                                 f"{t.name} (None where the size changes between iterations), got {_spec(b)}")
        for k, (t, b) in enumerate(zip(self.invariants, ins[1 + nc:])):
            if b.dtype != t.dtype or _conflict(b.shape, t.shape):
                raise self.error(f"body input {1 + nc + k} ({b.name}) is invariant {k}: expected {_spec(t)} like "
                                 f"{t.name}, got {_spec(b)}")
        if len(outs) < 1 + nc:
            raise self.error(f"body {body.name!r} has {len(outs)} outputs; expected at least {1 + nc}: the next "
                             f"condition, then the next value of each of the {nc} carried value(s)")
        if outs[0].dtype != "bool" or outs[0].shape != ():
            raise self.error(f"body output 0 ({outs[0].name}) is the next condition: expected bool[], "
                             f"got {_spec(outs[0])}")
        specs: list[tuple[str, Shape]] = []
        for k, (t, b, o) in enumerate(zip(self.carried, ins[1:1 + nc], outs[1:1 + nc])):
            if o.dtype != b.dtype or _conflict(o.shape, b.shape):
                raise self.error(f"body output {1 + k} ({o.name}) is the next carried value {k}: expected "
                                 f"{_spec(b)} like body input {1 + k} ({b.name}; declare None there for a "
                                 f"dimension that changes), got {_spec(o)}")
            specs.append((t.dtype, merge_shapes(t.shape, o.shape)))
        specs += [(o.dtype, (None,) + tuple(o.shape)) for o in outs[1 + nc:]]
        self.output_names = tuple(o.name for o in outs[1:])  # type: ignore[misc]
        return specs

    def check(self) -> None:
        _unchanged(self)

    def weights(self) -> dict[str, np.ndarray]:
        return _body_weights(self.body.layers)

    def attributes(self) -> dict[str, Any]:
        return {"carried": self.num_carried, "invariants": self.num_invariants,
                "scan_outputs": self.num_scan_outputs, "body_layers": len(self.body.layers)}

    def summary_note(self) -> str:
        return f"body: {len(self.body.layers)} layers"


class IfLayer(Layer):
    """then_body(*inputs) if condition else else_body(*inputs); inputs [condition, *inputs]."""

    type = "if"

    def __init__(self, condition: Tensor, then_body: Network, else_body: Network, inputs: Sequence[Tensor]):
        super().__init__([condition, *inputs])
        self.then_body = then_body
        self.else_body = else_body

    @property
    def condition(self) -> Optional[Tensor]:
        return self.inputs[0]

    @property
    def branch_inputs(self) -> list[Tensor]:
        return self.inputs[1:]  # type: ignore[return-value]

    def infer(self) -> list[tuple[str, Shape]]:
        cond = self.input_tensor(0)
        if cond.dtype != "bool" or not _one_element(cond):
            raise self.error(f"condition {cond.name} must be a bool tensor with one element, got {_spec(cond)}")
        ins = self.branch_inputs
        if any(t is None for t in ins):
            raise self.error("branch inputs must be tensors, not None")
        for which, body in (("then", self.then_body), ("else", self.else_body)):
            if not isinstance(body, Network) or body is self.network:
                raise self.error(f"the {which} branch must be a separate Network, got {type(body).__name__}")
            if len(body.inputs) != len(ins):
                raise self.error(f"{which} branch {body.name!r} has {len(body.inputs)} inputs; expected "
                                 f"{len(ins)}, one per If input")
            for k, (t, b) in enumerate(zip(ins, body.inputs)):
                if b.dtype != t.dtype or _conflict(b.shape, t.shape):
                    raise self.error(f"{which} branch input {k} ({b.name}): expected {_spec(t)} like {t.name}, "
                                     f"got {_spec(b)}")
            if not body.outputs:
                raise self.error(f"{which} branch {body.name!r} has no outputs; mark its outputs first")
        then_out, else_out = self.then_body.outputs, self.else_body.outputs
        if len(then_out) != len(else_out):
            raise self.error(f"the then branch has {len(then_out)} outputs and the else branch {len(else_out)}; "
                             "they must have the same number")
        specs: list[tuple[str, Shape]] = []
        for k, (a, b) in enumerate(zip(then_out, else_out)):
            if a.dtype != b.dtype or a.rank != b.rank:
                raise self.error(f"output {k}: the then branch gives {_spec(a)} ({a.name}), the else branch "
                                 f"{_spec(b)} ({b.name}); dtypes and ranks must match")
            specs.append((a.dtype, merge_shapes(a.shape, b.shape)))
        self.output_names = tuple(t.name for t in then_out)  # type: ignore[misc]
        return specs

    def check(self) -> None:
        _unchanged(self)

    def weights(self) -> dict[str, np.ndarray]:
        return {**{f"then/{k}": v for k, v in _body_weights(self.then_body.layers).items()},
                **{f"else/{k}": v for k, v in _body_weights(self.else_body.layers).items()}}

    def attributes(self) -> dict[str, Any]:
        return {"then_layers": len(self.then_body.layers), "else_layers": len(self.else_body.layers)}

    def summary_note(self) -> str:
        return f"then: {len(self.then_body.layers)} layers, else: {len(self.else_body.layers)}"


@network_method
def add_loop(self: Network, body: Network, carried: Sequence[Tensor], invariants: Sequence[Tensor] = (),
             trip_count: Optional[Tensor] = None, condition: Optional[Tensor] = None,
             name: Optional[str] = None) -> LoopLayer:
    """A loop over `body` (see LoopLayer and docs/network.md for the body's inputs and outputs)."""
    layer = LoopLayer(body, carried, invariants, trip_count, condition)
    return self.add_layer(layer, name)  # type: ignore[return-value]


@network_method
def add_if(self: Network, condition: Tensor, then_body: Network, else_body: Network,
           inputs: Sequence[Tensor] = (), name: Optional[str] = None) -> IfLayer:
    """then_body(*inputs) when condition is true, else else_body(*inputs) (see IfLayer)."""
    return self.add_layer(IfLayer(condition, then_body, else_body, inputs), name)  # type: ignore[return-value]

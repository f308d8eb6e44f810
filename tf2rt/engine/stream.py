"""Streaming: run an engine step by step, feeding each final state back as the next initial state.

State inputs (engine metadata "states": {"input", "output", "optional"}) exist for streaming;
the model itself never had them. Every way of running an engine (engine.run, Runner.run,
`tf2rt run` / `compare` / `bench`) treats an optional state input that is not fed as zeros,
with the batch size of the fed inputs; a Stream carries them from step to step.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np

from ..errors import Tf2rtError


def optional_state_inputs(engine: Any) -> list[str]:
    """Names of the state inputs that may be left out (they default to zeros)."""
    return [s["input"] for s in engine.metadata.get("states", []) if s.get("optional", True)]


def batch_size(engine: Any, feeds: Mapping[str, Any], skip: "set[str] | frozenset[str]" = frozenset()) -> int:
    """The batch size of the fed inputs: the size of the first dynamic dimension of a fed input
    (inputs that are not states first), else the first dimension of a fed input, else 1."""
    specs = [s for s in engine.inputs if s.name in feeds and s.name not in skip]
    states = {s["input"] for s in engine.metadata.get("states", [])}
    specs.sort(key=lambda s: s.name in states)  # the model's own inputs say it best
    for spec in specs:
        shape = np.shape(feeds[spec.name])
        for d, n in zip(spec.shape, shape):
            if d is None:
                return int(n)
    for spec in specs:
        shape = np.shape(feeds[spec.name])
        if shape:
            return int(shape[0])
    return 1


def zero_states(engine: Any, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Zero arrays for the optional state inputs missing from `feeds` (dynamic dims: the batch size)."""
    missing = [n for n in optional_state_inputs(engine) if n not in feeds]
    if not missing:
        return {}
    batch = batch_size(engine, feeds, set(missing))
    specs = {s.name: s for s in engine.inputs}
    return {n: np.zeros(tuple(batch if d is None else d for d in specs[n].shape), specs[n].np_dtype)
            for n in missing if n in specs}


class Stream:
    """Carries the engine's declared states (Engine.states) between calls of step()."""

    def __init__(self, engine: Any, runner: Any):
        if not engine.states:
            raise Tf2rtError("this engine declares no states (network.mark_state or an RNN layer whose "
                             "initial state is a network input and final state an output); it cannot stream")
        self.engine, self.runner = engine, runner
        self.pairs = engine.states
        specs = {s.name: s for s in engine.inputs}
        self._zero = {}
        for i, _ in self.pairs:
            s = specs[i]
            if any(d is None for d in s.shape):
                self._zero[i] = None  # dynamic shape: the first step must pass it (or reset(batch=...))
            else:
                self._zero[i] = np.zeros(s.shape, dtype=s.np_dtype)
        self.state: dict[str, Optional[np.ndarray]] = {}
        self.reset()

    def reset(self, **states: np.ndarray) -> None:
        """Zero states (or the given ones, by input name)."""
        self.state = {i: (None if z is None else z.copy()) for i, z in self._zero.items()}
        for k, v in states.items():
            if k not in self.state:
                raise Tf2rtError(f"{k!r} is not a state input (states: {', '.join(self.state)})")
            self.state[k] = np.asarray(v)

    def step(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Run one call with the carried states; returns all outputs and updates the states.

        A state given in `feeds` overrides the carried one for this step.
        """
        all_feeds = {}
        optional = set(optional_state_inputs(self.engine))
        for name, value in self.state.items():
            if value is None and name not in feeds:
                if name in optional:
                    continue  # zeros with the batch size of this step's inputs (Runner.check_feeds)
                raise Tf2rtError(f"state {name!r} has a dynamic shape; pass it on the first step or reset({name}=...)")
            all_feeds[name] = value
        all_feeds.update(feeds)
        out = self.runner.run(all_feeds)
        for i, o in self.pairs:
            self.state[i] = out[o]
        return out

    def close(self) -> None:
        self.runner.close()

"""Streaming: run an engine step by step, feeding each final state back as the next initial state."""

from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np

from ..errors import Tf2rtError


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
        for name, value in self.state.items():
            if value is None and name not in feeds:
                raise Tf2rtError(f"state {name!r} has a dynamic shape; pass it on the first step or reset({name}=...)")
            all_feeds[name] = value
        all_feeds.update(feeds)
        out = self.runner.run(all_feeds)
        for i, o in self.pairs:
            self.state[i] = out[o]
        return out

    def close(self) -> None:
        self.runner.close()

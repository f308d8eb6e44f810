"""The model card: what `convert` detected, where each setting came from, what it assumed.

It is stored in the engine metadata under "model", so `tf2rt inspect ENGINE` can show how
an engine was made, and every assumption (a TF default used because the checkpoint does
not say) is visible long after conversion.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("tf2rt.convert")


@dataclass
class ModelCard:
    """Detected structure, settings with their origin, assumptions."""

    source: str
    format: str
    summary: str = ""
    detected: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    assumptions: list[str] = field(default_factory=list)
    ignored: int = 0  # optimizer slots and bookkeeping tensors not converted
    states: list[str] = field(default_factory=list)

    def setting(self, name: str, value: Any, origin: str) -> None:
        """Record a setting and where it came from (option, .meta graph, config, default)."""
        self.settings[name] = {"value": value, "from": origin}

    def assume(self, text: str) -> None:
        """Record (and log) an assumption made because the source does not say."""
        if text not in self.assumptions:
            self.assumptions.append(text)
            log.warning("assumption: %s", text)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form, as stored in the engine metadata."""
        return {
            "source": self.source,
            "format": self.format,
            "summary": self.summary,
            "detected": self.detected,
            "settings": self.settings,
            "assumptions": list(self.assumptions),
            "ignored_tensors": self.ignored,
            "streaming_state": list(self.states),
        }


def card_lines(card: dict[str, Any]) -> list[str]:
    """Human-readable lines of a model card dict (for the CLI)."""
    lines = [f"model: {card['summary']}"] if card.get("summary") else []
    if card.get("source"):
        lines.append(f"source: {card['source']}" + (f" ({card['format']})" if card.get("format") else ""))
    settings = card.get("settings") or {}
    if settings:
        lines.append("settings:")
        for k, v in settings.items():
            lines.append(f"  {k} = {v.get('value')!r}  [{v.get('from')}]")
    states = card.get("streaming_state") or []
    if states:
        lines.append("streaming state: " + ", ".join(states))
    if card.get("ignored_tensors"):
        lines.append(f"ignored: {card['ignored_tensors']} optimizer/bookkeeping tensor(s)")
    for a in card.get("assumptions") or []:
        lines.append(f"ASSUMED: {a}")
    return lines

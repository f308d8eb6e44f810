"""Parse and check the tf2rt metadata of an engine file: JSON from the file, so nothing in it
is trusted. Every field tf2rt later reads is checked here for its type and range, so code
that uses the metadata (specs, states, hints, the model card) never meets a surprise."""

from __future__ import annotations

import json
import math
from typing import Any

from ..errors import FormatError
from ..limits import MAX_JSON_DEPTH, ResourceLimitError, check_elements

MAX_METADATA_CHARS = 16 << 20   # metadata of real engines is a few KB
MAX_TENSORS = 100_000           # engine inputs/outputs/states listed
MAX_RANK = 64
MAX_DIM = (1 << 31) - 1         # one dimension of an engine input/output
DTYPES = {"float32", "float16", "float64", "bfloat16", "int8", "uint8", "int16", "uint16", "int32",
          "uint32", "int64", "uint64", "bool"}


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not a JSON number")


def _depth_ok(obj: Any) -> bool:
    stack = [(obj, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return False
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return True


def parse_metadata(text: str, where: str) -> dict[str, Any]:
    """The metadata dict of an engine, or FormatError naming what is wrong with it."""
    if len(text) > MAX_METADATA_CHARS:
        raise ResourceLimitError(f"{where}: the tf2rt metadata is {len(text)} characters, more than "
                                 f"{MAX_METADATA_CHARS}; the file is damaged or hostile")
    try:
        meta = json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
    except RecursionError:
        raise FormatError(f"{where}: the tf2rt metadata is nested too deeply; rebuild the engine") from None
    except ValueError as exc:
        raise FormatError(f"{where}: the tf2rt metadata is not valid JSON ({exc}); rebuild the engine") from None
    if not _depth_ok(meta):
        raise FormatError(f"{where}: the tf2rt metadata is nested deeper than {MAX_JSON_DEPTH} levels; "
                          "rebuild the engine")
    return meta


def _bad(where: str, what: str) -> FormatError:
    return FormatError(f"{where}: engine metadata is malformed ({what}); rebuild the engine")


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_spec(d: Any, where: str, field: str) -> None:
    """A tensor spec: {"name": str, "dtype": known dtype, "shape": [None | 0 <= int < 2^31, ...]}."""
    if not isinstance(d, dict):
        raise _bad(where, f"an entry of {field!r} is not an object")
    name, dtype, shape = d.get("name"), d.get("dtype"), d.get("shape")
    if not isinstance(name, str) or not name:
        raise _bad(where, f"an entry of {field!r} has no name")
    if dtype not in DTYPES:
        raise _bad(where, f"{field} {name!r} has dtype {str(dtype)[:40]!r}, not one of {', '.join(sorted(DTYPES))}")
    if not isinstance(shape, list) or len(shape) > MAX_RANK:
        raise _bad(where, f"{field} {name!r} has no shape list of at most {MAX_RANK} dimensions")
    for dim in shape:
        if dim is not None and not (_int(dim) and 0 <= dim <= MAX_DIM):
            raise _bad(where, f"{field} {name!r} has dimension {str(dim)[:40]} (want null or 0..{MAX_DIM})")
    # A shape whose fixed dims alone need more memory than allowed can never be fed.
    if 0 not in shape:
        check_elements([1 if d is None else d for d in shape], 1, f"{where}: {field} {name!r}")


def check_metadata(meta: Any, where: str, format_name: str, format_version: int) -> dict[str, Any]:
    """`meta` if every field tf2rt uses has the type and range it expects."""
    if not isinstance(meta, dict) or meta.get("format") != format_name:
        raise FormatError(f"{where}: the tf2rt metadata does not describe an engine; rebuild the engine")
    version = meta.get("version", 0)
    if not _int(version) or version < 0:
        raise _bad(where, f"version {str(version)[:40]!r} is not a non-negative integer")
    if version > format_version:
        raise FormatError(f"{where}: engine format version {version} is newer than this "
                          f"tf2rt understands ({format_version}); upgrade tf2rt")
    names: dict[str, set[str]] = {}
    for field in ("inputs", "outputs"):
        specs = meta.get(field)
        if not isinstance(specs, list) or len(specs) > MAX_TENSORS:
            raise _bad(where, f"{field!r} is not a list of tensor specs")
        for d in specs:
            check_spec(d, where, field[:-1])
        names[field] = {d["name"] for d in specs}
    for key in ("precision", "network", "tf2rt_version"):
        if key in meta and not isinstance(meta[key], str):
            raise _bad(where, f"{key!r} is not a string")
    if meta.get("source") is not None and not isinstance(meta["source"], str):
        raise _bad(where, "'source' is not a string")
    _check_states(meta.get("states", []), names, where)
    _check_hints(meta.get("input_hints", {}), where)
    if not isinstance(meta.get("optimizations", {}), dict):
        raise _bad(where, "'optimizations' is not an object")
    _check_card(meta.get("model"), where)
    return meta


def _check_states(states: Any, names: dict[str, set[str]], where: str) -> None:
    if not isinstance(states, list) or len(states) > MAX_TENSORS:
        raise _bad(where, "'states' is not a list")
    for s in states:
        if not isinstance(s, dict) or not isinstance(s.get("input"), str) or not isinstance(s.get("output"), str):
            raise _bad(where, "an entry of 'states' is not {\"input\": name, \"output\": name}")
        if s["input"] not in names["inputs"] or s["output"] not in names["outputs"]:
            raise _bad(where, f"state {s['input'][:80]!r} -> {s['output'][:80]!r} names a tensor the engine lacks")


def _check_hints(hints: Any, where: str) -> None:
    if not isinstance(hints, dict):
        raise _bad(where, "'input_hints' is not an object")
    for name, h in hints.items():
        if not isinstance(h, dict):
            raise _bad(where, f"input hint of {name[:80]!r} is not an object")
        low, high = h.get("low", 0), h.get("high", 10)
        if not (_int(low) and _int(high) and -(1 << 62) <= low < high <= (1 << 62)):
            raise _bad(where, f"input hint of {name[:80]!r} needs integers low < high")


def _check_card(card: Any, where: str) -> None:
    if card is None:
        return
    if not isinstance(card, dict):
        raise _bad(where, "'model' (the model card) is not an object")
    for key in ("summary", "source", "format"):
        if card.get(key) is not None and not isinstance(card[key], str):
            raise _bad(where, f"model card field {key!r} is not a string")
    for key in ("detected", "settings"):
        if not isinstance(card.get(key) or {}, dict):
            raise _bad(where, f"model card field {key!r} is not an object")
    if not all(isinstance(v, dict) for v in (card.get("settings") or {}).values()):
        raise _bad(where, "model card settings are not {name: {\"value\": ..., \"from\": ...}}")
    for key in ("assumptions", "streaming_state"):
        value = card.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _bad(where, f"model card field {key!r} is not a list of strings")

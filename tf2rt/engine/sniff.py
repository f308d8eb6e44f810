"""Recognise engine files by content (any name, any suffix) without importing onnx."""

from __future__ import annotations

from pathlib import Path

from ..errors import FormatError

_SNIFF_BYTES = 1 << 16
# ModelProto fields and their wire types: ir_version 1 (varint), producer_name 2, producer_version 3,
# domain 4, model_version 5 (varint), doc_string 6, graph 7, opset_import 8, metadata_props 14,
# training_info 20, functions 25, configuration 26.
_MODEL_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2, 26: 2}


def onnx_kind(path: str | Path) -> str | None:
    """"tf2rt" for a tf2rt engine, "onnx" for another ONNX model, None for anything else.

    Reads the top-level fields of the file as an ONNX ModelProto: every one must be a
    ModelProto field of the right wire type, and a graph must be present.
    """
    from ..proto import LEN, Message, iter_fields

    p = Path(path)
    if not p.is_file():
        return None
    try:
        with open(p, "rb") as f:
            head = f.read(_SNIFF_BYTES)
            if not head or head[0] != 0x08:  # every ONNX writer puts ir_version first
                return None
            data = head + f.read()
    except OSError:
        return None
    seen, tf2rt = set(), False
    try:
        for field, wtype, value in iter_fields(data, f"{p} (ONNX ModelProto)"):
            if _MODEL_FIELDS.get(field) != wtype:
                return None
            seen.add(field)
            if field == 14 and wtype == LEN and Message(value, "metadata_props").str(1) == "tf2rt":
                tf2rt = True
    except (FormatError, ValueError, IndexError, UnicodeDecodeError):
        return None
    if 7 not in seen or 1 not in seen:
        return None
    return "tf2rt" if tf2rt else "onnx"


__all__ = ["onnx_kind"]

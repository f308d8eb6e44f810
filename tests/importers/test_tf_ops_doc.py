"""docs/tf-ops.md is generated from the op table: it must match what the generator writes now."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_tf_ops_doc", ROOT / "scripts" / "gen_tf_ops_doc.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tf_ops_doc_is_up_to_date():
    gen = _generator()
    text = gen.render()
    current = (ROOT / "docs" / "tf-ops.md").read_text()
    assert current == text, "docs/tf-ops.md is out of date: run python scripts/gen_tf_ops_doc.py"


def test_doc_lists_every_op_with_its_lowering():
    from tf2rt.importers.graphdef_ops import HANDLERS

    text = (ROOT / "docs" / "tf-ops.md").read_text()
    for op in (o for o in HANDLERS if not o.startswith("_")):  # "_X": tf2rt's own node kinds
        assert f"\n| {op} | " in text, op
    assert "| Dequantize | Folded to float" in text
    assert "handled" in text and "%" in text  # the coverage number

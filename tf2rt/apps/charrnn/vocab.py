"""Character vocabularies for char-RNN models: char <-> id.

Accepted forms (see docs/charrnn.md):
* JSON: an object {"char": id, ...} or a list ["a", "b", ...] (id = position);
* a text file with one character per line, escapes `\\n`, `\\t`, `\\r`, `\\s` (space),
  `\\\\` and `\\uXXXX` for characters a line cannot hold (line i -> id i);
* the training text itself (`Vocab.from_text`): its distinct characters, sorted by code
  point ("sorted", the bundled demo's order) or by decreasing frequency ("frequency", the
  order of common char-rnn TextLoader code; ties keep first appearance).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ...errors import FormatError, Tf2rtError
from ...limits import read_capped

_MAX_VOCAB_FILE = 64 << 20
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "s": " ", "\\": "\\"}


class VocabError(Tf2rtError):
    """Text contains characters outside the vocabulary, or a vocabulary is malformed."""


class Vocab:
    """An ordered character vocabulary: `chars[i]` has id i."""

    def __init__(self, chars: Sequence[str]):
        chars = list(chars)
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise FormatError(f"vocabulary entries must be single characters, got {c!r}")
        if len(set(chars)) != len(chars):
            dup = sorted({c for c in chars if chars.count(c) > 1})
            raise FormatError(f"vocabulary lists character(s) {dup!r} more than once")
        if not chars:
            raise FormatError("the vocabulary is empty")
        self.chars = chars
        self.index = {c: i for i, c in enumerate(chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """Ids of `text` (int32). Raises VocabError naming every character not in the vocabulary."""
        index = self.index
        try:
            return np.fromiter((index[c] for c in text), dtype=np.int32, count=len(text))
        except KeyError:
            bad = sorted({c for c in text if c not in index})
            raise VocabError(
                f"{len(bad)} character(s) not in the vocabulary: {', '.join(repr(c) for c in bad)}; "
                f"the vocabulary has {len(self)} characters"
            ) from None

    def decode(self, ids: Iterable[int]) -> str:
        n = len(self.chars)
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < n:
                raise VocabError(f"id {i} is outside the vocabulary (0..{n - 1})")
            out.append(self.chars[i])
        return "".join(out)

    # --- construction -----------------------------------------------------------------------
    @classmethod
    def from_text(cls, text: str, order: str = "sorted") -> "Vocab":
        """The distinct characters of a training text, "sorted" or by "frequency"."""
        if order == "sorted":
            return cls(sorted(set(text)))
        if order == "frequency":
            counts = Counter(text)
            return cls([c for c, _ in sorted(counts.items(), key=lambda kv: -kv[1])])
        raise Tf2rtError(f"vocabulary order must be 'sorted' or 'frequency', got {order!r}")

    @classmethod
    def load(cls, path: str | Path) -> "Vocab":
        """Read a JSON or one-character-per-line vocabulary file."""
        p = Path(path)
        try:
            # regular files only (a FIFO blocks forever), read no further than the cap
            raw = read_capped(p, _MAX_VOCAB_FILE, "vocabulary").decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError(f"vocabulary {p} is not UTF-8 text") from None
        if p.suffix.lower() == ".json" or raw.lstrip()[:1] in ("{", "["):
            try:
                data = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise FormatError(f"vocabulary {p} is not valid JSON ({exc})") from None
            return cls._from_json(data, p)
        lines = raw.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return cls([_unescape(line, p, n + 1) for n, line in enumerate(lines)])

    @classmethod
    def _from_json(cls, data: object, where: Path) -> "Vocab":
        if isinstance(data, list):
            return cls(data)  # type: ignore[arg-type]
        if not isinstance(data, dict):
            raise FormatError(f"vocabulary {where}: expected a JSON object char -> id or a list of chars")
        items = []
        for k, v in data.items():
            if not isinstance(v, int) or isinstance(v, bool):
                raise FormatError(f"vocabulary {where}: id of {k!r} is {v!r}, not an integer")
            items.append((v, k))
        ids = sorted(i for i, _ in items)
        if ids != list(range(len(ids))):
            raise FormatError(f"vocabulary {where}: ids must be 0..{len(ids) - 1} without gaps")
        return cls([c for _, c in sorted(items)])

    def save(self, path: str | Path) -> Path:
        """Write as JSON {char: id}."""
        from ...outputs import write_text

        return write_text(path, json.dumps({c: i for i, c in enumerate(self.chars)}, ensure_ascii=False, indent=0),
                          what="vocabulary")


def _unescape(line: str, where: Path, lineno: int) -> str:
    if line.endswith("\r"):
        line = line[:-1]
    if len(line) == 1:
        return line
    if line.startswith("\\") and len(line) == 2 and line[1] in _ESCAPES:
        return _ESCAPES[line[1]]
    if line.startswith("\\u") and len(line) == 6:
        try:
            return chr(int(line[2:], 16))
        except ValueError:
            pass
    raise FormatError(
        f"vocabulary {where} line {lineno}: {line!r} is not one character "
        "(use escapes \\n \\t \\r \\s \\\\ \\uXXXX)"
    )

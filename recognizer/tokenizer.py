"""Text <-> ids for CTC. Owns the ordered charset; id 0 is the CTC blank."""
from __future__ import annotations

from collections.abc import Sequence

from crops.codes import CODE_CHARSET

DEFAULT_CHARSET = CODE_CHARSET      # the base model's charset; later characters are only ever appended


def normalize_label(text: str) -> str:
    """DESIGN.md's match form: surrounding whitespace stripped, inner runs of spaces collapsed."""
    """DESIGN.md match form: surrounding whitespace stripped, inner runs collapsed to one space."""
    return " ".join(text.split())


class CTCTokenizer:
    """Ordered charset plus blank. Characters are only ever appended, never re-ordered."""

    blank_id = 0

    def __init__(self, charset: str = DEFAULT_CHARSET) -> None:
        if len(set(charset)) != len(charset):
            raise ValueError("charset has duplicate characters")
        if not charset:
            raise ValueError("charset is empty")
        self.charset = charset
        self._index = {c: i + 1 for i, c in enumerate(charset)}

    @property
    def num_classes(self) -> int:
        """Charset size + 1 (blank)."""
        return len(self.charset) + 1

    def unknown_chars(self, text: str) -> set[str]:
        return {c for c in text if c not in self._index}

    def encode(self, text: str) -> list[int]:
        """Ids of ``text``; raises ``ValueError`` naming characters outside the charset."""
        missing = self.unknown_chars(text)
        if missing:
            raise ValueError(f"characters outside the charset: {''.join(sorted(missing))!r}")
        return [self._index[c] for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        """Greedy CTC collapse: merge repeats, then drop blanks."""
        out, prev = [], self.blank_id
        for i in ids:
            i = int(i)
            if i != prev and i != self.blank_id:
                out.append(self.charset[i - 1])
            prev = i
        return "".join(out)

    def extend(self, chars: str) -> "CTCTokenizer":
        """A new tokenizer with unseen ``chars`` appended (existing ids unchanged)."""
        new = "".join(dict.fromkeys(c for c in chars if c not in self._index))
        return CTCTokenizer(self.charset + new)

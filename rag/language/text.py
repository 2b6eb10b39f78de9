"""Sentence spans and SQuAD-style normalisation, shared by passage selection, citations and eval.

>>> text = "Hi there. Bye now!"
>>> [text[s:e] for s, e in sentence_spans(text)]
['Hi there.', 'Bye now!']
>>> normalize_answer("The  Denver Broncos!")
'denver broncos'
"""

from __future__ import annotations

import re
import string

# A sentence ends at . ! ? (optionally followed by quotes/brackets) before whitespace, or at a newline.
_SENT_END = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+|\n+")
# Titles and company suffixes ("Tiffany & Co. designed ...") do not end a sentence.
_ABBREV = re.compile(r"(?:\b(?:Mr|Mrs|Ms|Dr|Prof|St|Mt|Gen|Lt|Col|Capt|Sgt|Gov|Sen|Rep|Jr|Sr|No|Vs|vs|etc|e\.g|i\.e"
                     r"|U\.S|U\.K|Co|Corp|Inc|Ltd)\.|\b[A-Z]\.)$")


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """(start, end) offsets of the sentences of text[start:end], whitespace trimmed."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    cursor = start
    for m in _SENT_END.finditer(text, start, end):
        if m.group(0).strip() == "" and "\n" not in m.group(0) and _ABBREV.search(text[cursor:m.start()]):
            continue  # "Gen. Quang" is one sentence
        _append_trimmed(text, cursor, m.start(), spans)
        cursor = m.end()
    _append_trimmed(text, cursor, end, spans)
    return spans


def _append_trimmed(text: str, s: int, e: int, out: list[tuple[int, int]]) -> None:
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    if e > s:
        out.append((s, e))


def normalize_answer(s: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation) | {"’", "‘", "“", "”"})
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())

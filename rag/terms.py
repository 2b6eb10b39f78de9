"""Words, stems and stopwords: the one notion of 'content word' shared by BM25, passage selection,
the answer check and the echo fake.

Two stems: `stem`, the crude suffix strip that BM25 and passage selection index with (changing it
changes retrieval, so it waits for its own retrieval measurement), and `root`, Snowball's English
stemmer (PyStemmer), which the answer check also matches on: "regulated" and "regulation" meet at
"regul", where `stem` gives "regulat" and "regulation".

>>> root("regulated") == root("regulation"), stem("regulated") == stem("regulation")
(True, False)
>>> stem("tucker's"), root("tucker's")
('tucker', 'tucker')
"""

from __future__ import annotations

import re
from functools import lru_cache

_WORD = re.compile(r"[^\W_]+(?:[.,'’][^\W_]+)*", re.UNICODE)
STOPWORDS = frozenset(
    """a an and are as at be been but by did do does for from had has have he her his how i if in
    into is it its many much of on or our she so than that the their them then there these they this
    to was we were what when where which who whom whose why will with would you your about after
    also can could during over under up what's""".split()
)


def tokenize(text: str) -> list[str]:
    """Lower-case words; numbers keep inner separators ("1,936" stays one token)."""
    return [w for w in _WORD.findall(text.lower())]


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def stem(word: str) -> str:
    """A crude suffix strip, enough to match 'trained' with 'train', 'forced' with 'force' and
    "Tucker's" with 'Tucker' (the terms of the BM25 index)."""
    if word.endswith(("'s", "’s")) and len(word) > 3:
        word = word[:-2]
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            word = word[: -len(suffix)]
            break
    return word[:-1] if len(word) > 3 and word.endswith("e") else word


@lru_cache(maxsize=200_000)
def root(word: str) -> str:
    """Snowball English stem of a lower-case word ("regulated" -> "regul"; possessive dropped)."""
    if word.endswith(("'s", "’s")) and len(word) > 3:
        word = word[:-2]
    return _stemmer().stemWord(word.lower())


def content_words(text: str) -> list[str]:
    """Tokens minus stopwords: what overlap checks compare."""
    return [w for w in tokenize(text) if w not in STOPWORDS]


def terms(text: str) -> list[str]:
    """Stemmed content words: the terms BM25 and passage selection match on."""
    return [stem(w) for w in content_words(text)]

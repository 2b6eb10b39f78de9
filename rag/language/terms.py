"""Words, stems and stopwords: the one notion of 'content word' shared by BM25, passage selection,
the answer check and the echo fake.

`stem` is Snowball's English stemmer (PyStemmer, the C build of the reference algorithm): stable
("houses" -> "hous" -> "hous", where a hand-written suffix strip went on to "hou"), and it joins the
forms a hand-written strip missed (process/processes, pass/passes) without merging news with new.

>>> stem("regulated") == stem("regulation"), stem("processes") == stem("process"), stem("news") == stem("new")
(True, True, False)
>>> stem(stem("houses")) == stem("houses"), stem("passes") == stem("pass"), stem("tucker's")
(True, True, 'tucker')

A month's abbreviation stems as its name does ("Jul 2013" asks what "July 2013" states):

>>> stem("Jul") == stem("July"), stem("Sept.") == stem("september"), stem("dec") == stem("December")
(True, True, True)
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


# Abbreviated month names; "may" is one already, and "mar" or "jun" read as a month in any text.
MONTHS = {"jan": "january", "feb": "february", "mar": "march", "apr": "april", "jun": "june", "jul": "july",
          "aug": "august", "sep": "september", "sept": "september", "oct": "october", "nov": "november",
          "dec": "december"}


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """Snowball English stem of a word, lower-cased, possessive dropped ("Regulated" -> "regul")."""
    word = word.lower()
    if word.endswith(("'s", "’s")) and len(word) > 3:
        word = word[:-2]
    word = MONTHS.get(word.rstrip("."), word)
    return _stemmer().stemWord(word)


def content_words(text: str) -> list[str]:
    """Tokens minus stopwords: what overlap checks compare."""
    return [w for w in tokenize(text) if w not in STOPWORDS]


def terms(text: str) -> list[str]:
    """Stemmed content words: the terms BM25 and passage selection match on."""
    return [stem(w) for w in content_words(text)]

"""Numbers as values, so that "three", "3" and "5 million" / "5,000,000" compare equal.

Citation support needs this: a claim's number must occur in the passage it cites, and a model often
writes the number in another form than the passage does.

>>> sorted(number_values("Three plays, then 1,936 people and $5 million."))
['1936', '3', '5', '5000000']
>>> number_values("the third quarter") == number_values("the 3rd quarter")
True
"""

from __future__ import annotations

import math
import re

_UNITS = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
WORDS = {w: i for i, w in enumerate(_UNITS)} | _TENS | {"hundred": 100}
ORDINALS = {w: i for i, w in enumerate(
    "zeroth first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth".split())}
SCALES = {"thousand": 10**3, "million": 10**6, "billion": 10**9, "trillion": 10**12}
# Written right after the digits ("£1.2bn", "$5m", "20k"): only then are they scales, not metres or kelvin.
_SUFFIX_SCALES = {"k": 10**3, "m": 10**6, "mn": 10**6, "bn": 10**9, "b": 10**9, "tn": 10**12}
_FRACTIONS = {"half": 0.5, "quarter": 0.25}
_TOKEN = re.compile(r"\d[\d,]*(?:\.\d+)?(?:st|nd|rd|th)?|[a-z]+", re.IGNORECASE)
_ORDINAL_SUFFIX = re.compile(r"(?<=\d)(st|nd|rd|th)$", re.IGNORECASE)


def number_values(text: str) -> set[str]:
    """Canonical values of the numbers in text: each number as written and, where a scale follows,
    scaled ("5 million" gives 5 and 5000000); runs of number words as one number ("twenty-one" is 21,
    "two thousand and twenty-three" 2023, "half a million" 500000); ordinals as 'Nth'.

    >>> sorted(number_values("twenty-one people, half a million pounds and £1.2bn"))
    ['1.2', '1200000000', '21', '500000']
    """
    values: set[str] = set()
    for plain, scaled in _runs(text):
        values.add(plain)
        if scaled is not None:
            values.add(scaled)
    return values


def is_number(word: str) -> bool:
    """Whether the whole word is one number ("three", "1,936", "3rd"; not "2½" or "a1")."""
    return _TOKEN.fullmatch(word) is not None and _value(word.lower()) is not None


def _runs(text: str):
    """(value as written, value with its scale or None) for each number in text, in order."""
    tokens = [(m.group(0).lower(), m.start(), m.end()) for m in _TOKEN.finditer(text)]
    i = 0
    while i < len(tokens):
        token, start, _ = tokens[i]
        if token in _FRACTIONS and i + 2 < len(tokens) and tokens[i + 1][0] == "a" and tokens[i + 2][0] in SCALES:
            yield _format(_FRACTIONS[token] * SCALES[tokens[i + 2][0]]), None  # "half a million"
            i += 3
            continue
        if token[0].isdigit() or token in ORDINALS:
            value = _value(token)
            i += 1
            if value is None:
                continue
            yield value, (None if value.endswith("th") else _scaled(float(value), tokens, i, text))
            continue
        if token in WORDS or (token == "a" and i + 1 < len(tokens) and tokens[i + 1][0] in (*SCALES, "hundred")):
            number, end = _word_run(tokens, i)
            if end > i:  # a lone "hundred" is no number
                yield _format(number), None
                i = end
                continue
        i += 1


def _scaled(value: float, tokens: list, i: int, text: str) -> str | None:
    """The value times the scale right after it: a word ("5 million") or a suffix on the digits ("5m")."""
    if i >= len(tokens):
        return None
    word, start, _ = tokens[i]
    if word in SCALES:
        return _format(value * SCALES[word])
    if word in _SUFFIX_SCALES and start == tokens[i - 1][2] and not text[start - 1].isalpha():
        return _format(value * _SUFFIX_SCALES[word])
    return None


def _word_run(tokens: list, i: int) -> tuple[float, int]:
    """The value of the number words from tokens[i] on ("two thousand and twenty three"), and where they end.

    Words join only as numbers are spoken: a unit after a tens word ("twenty one"), "hundred" or a
    scale after a number, "and" after "hundred" or a scale ("one hundred and five"); "twenty and
    thirty" stays two numbers.
    """
    total = current = 0.0
    last = ""  # what the previous word was: "", "a", "unit", "tens", "hundred", "scale", "and"
    start = i
    while i < len(tokens):
        word = tokens[i][0]
        if word == "a" and not last and i + 1 < len(tokens) and tokens[i + 1][0] in (*SCALES, "hundred"):
            current, last = 1.0, "a"  # "a million", "a hundred"
        elif word in _TENS and last in ("", "hundred", "scale", "and"):
            current, last = current + _TENS[word], "tens"
        elif word in WORDS and word != "hundred" and word not in _TENS and last in ("", "tens", "hundred", "scale", "and"):
            if last == "tens" and WORDS[word] >= 10:
                break
            current, last = current + WORDS[word], "unit"
        elif word == "hundred" and last in ("unit", "a"):
            current, last = current * 100, "hundred"
        elif word in SCALES and last in ("unit", "tens", "hundred", "a"):
            total, current, last = total + current * SCALES[word], 0.0, "scale"
        elif word == "and" and last in ("hundred", "scale") and i + 1 < len(tokens) and tokens[i + 1][0] in WORDS:
            last = "and"
        else:
            break
        i += 1
    return (total + current, i) if i > start else (0.0, i)


def _value(token: str) -> str | None:
    """The canonical value of one `_TOKEN` match, or None if it is not a number."""
    if token[0].isdigit():
        if _ORDINAL_SUFFIX.search(token):
            return _ORDINAL_SUFFIX.sub("", token).replace(",", "") + "th"
        return _format(float(token.replace(",", "")))
    if token in WORDS:
        return str(WORDS[token])
    if token in ORDINALS:
        return f"{ORDINALS[token]}th"
    return None


def _format(x: float) -> str:
    if math.isinf(x):  # a run of 310+ digits: no finite value, and never equal to an ordinary number
        return "inf"
    return str(int(x)) if x == int(x) else f"{x:g}"


def phrase_value(text: str) -> str | None:
    """The canonical value of one number phrase: its first number, scaled by the words after it.

    >>> phrase_value("1 million"), phrase_value("more than 7 million"), phrase_value("1,936"), phrase_value("two hundred")
    ('1000000', '7000000', '1936', '200')
    >>> phrase_value("twenty-one"), phrase_value("£1.2bn"), phrase_value("pounds") is None
    ('21', '1200000000', True)
    """
    for plain, scaled in _runs(text):
        return scaled or plain
    return None

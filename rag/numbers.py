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
_TOKEN = re.compile(r"\d[\d,]*(?:\.\d+)?(?:st|nd|rd|th)?|[a-z]+", re.IGNORECASE)
_ORDINAL_SUFFIX = re.compile(r"(?<=\d)(st|nd|rd|th)$", re.IGNORECASE)


def number_values(text: str) -> set[str]:
    """Canonical values of the numbers in text (cardinals as digits, ordinals as 'Nth', scaled amounts both ways)."""
    tokens = _TOKEN.findall(text)
    values: set[str] = set()
    for i, token in enumerate(tokens):
        value = _value(token.lower())
        if value is None:
            continue
        values.add(value)
        scale = SCALES.get(tokens[i + 1].lower()) if i + 1 < len(tokens) else None
        if scale and not value.endswith("th"):
            values.add(_format(float(value) * scale))
    return values


def is_number(word: str) -> bool:
    """Whether the whole word is one number ("three", "1,936", "3rd"; not "2½" or "a1")."""
    return _TOKEN.fullmatch(word) is not None and _value(word.lower()) is not None


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
    >>> phrase_value("pounds") is None
    True
    """
    value: str | None = None
    for token in _TOKEN.findall(text):
        lower = token.lower()
        if value is None:
            value = _value(lower) if lower != "hundred" else None
            if value is not None and value.endswith("th"):
                return value
        elif lower in SCALES or lower == "hundred":
            value = _format(float(value) * SCALES.get(lower, 100))
        elif _value(lower) is not None:
            break  # a second number: the phrase was two numbers ("2021 2025"); keep the first
    return value

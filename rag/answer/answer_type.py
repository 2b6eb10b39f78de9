"""Does the answer's type fit the question? who -> a person or organisation, when -> a date or time,
where -> a place, how many -> a count (not an amount of money), how much -> an amount.

Read from spaCy's entities on the answer (`rag.language.nlp`). A question whose type is not one of these is
not checked.

>>> expected("Who delivered the opening speech?"), expected("In what year was it founded?"), expected("Why?")
('who', 'when', None)
>>> problem("Who opened IMM6?", "The conference opened on November 19.")
'the question asks who, and the answer names no person, group or organisation'
>>> problem("Who opened IMM6?", "Deputy Prime Minister Bui Thanh Son opened it.")
''
"""

from __future__ import annotations

import re

from ..language import nlp as nlp_loader

_KINDS = (
    ("how_many", re.compile(r"^\s*(?:\w+\s+)?how many\b", re.I)),
    ("how_much", re.compile(r"^\s*(?:\w+\s+)?how much\b", re.I)),
    ("when", re.compile(r"^\s*(?:\w+\s+)?(?:when\b|(?:in |on |during )?(?:what|which) (?:year|date|day|month|decade|century|time)\b)", re.I)),
    ("who", re.compile(r"^\s*(?:\w+\s+)?(?:who|whom|whose)\b", re.I)),
    ("where", re.compile(r"^\s*(?:\w+\s+)?where\b", re.I)),
)
ACCEPT = {
    "who": {"PERSON", "ORG", "NORP", "GPE"},
    "when": {"DATE", "TIME"},
    "where": {"GPE", "LOC", "FAC", "ORG"},
    "how_many": {"CARDINAL", "QUANTITY", "PERCENT", "MONEY"},
    "how_much": {"MONEY", "QUANTITY", "PERCENT", "CARDINAL"},
}
NAMES = {
    "who": "person, group or organisation", "when": "date or time", "where": "place",
    "how_many": "count", "how_much": "amount",
}
# One line the instruction may carry (setting `answer_hint`): what kind of answer the question wants.
HINTS = {
    "who": "The answer names a person, group or organisation.", "when": "The answer is a date or a time.",
    "where": "The answer is a place.", "how_many": "The answer is a number.", "how_much": "The answer is an amount.",
}
_LOCATIVE = frozenset("at in near from to into across along through".split())
_NOT_PLACES = frozenset("DATE TIME CARDINAL ORDINAL MONEY QUANTITY PERCENT".split())
_MONEY_NOUNS = re.compile(r"\b(money|dollars?|pounds?|euros?|yen|cost|price|budget|fund|grant|amount|paid|pay)\b", re.I)


_LATER_WH = re.compile(r"\b(?:which|what|who|whom|whose|where|how)\b", re.I)


def expected(question: str) -> str | None:
    """The kind of answer the question asks for, from its first words (None: not checked).

    A question that opens with a clause ("When the Rhine leaves the lake, which way does it flow?")
    asks what its later wh-word asks: not checked.
    """
    if re.match(r"^\s*when\b", question, re.I) and _LATER_WH.search(question):
        return None
    for kind, pattern in _KINDS:
        if pattern.search(question):
            return kind
    return None


def hint(question: str) -> str:
    """The instruction's line on the kind of answer wanted ("" when the question's kind is not known).

    >>> hint("Who opened IMM6?"), hint("Why?")
    ('The answer names a person, group or organisation.', '')
    """
    kind = expected(question)
    return HINTS[kind] if kind else ""


def problem(question: str, answer: str, nlp_model: str = nlp_loader.PACKAGED) -> str:
    """Why the answer's type does not fit the question ("" when it fits or is not checked).

    Only the entities and words of the answer that the question did not give are read ("Who opened
    IMM6?" is not answered by the "IMM6" of "IMM6 opened on November 19").
    """
    kind = expected(question)
    if kind is None:
        return ""
    nlp = nlp_loader.load(nlp_model)
    doc, qdoc = nlp_loader.parse(nlp, answer), nlp_loader.parse(nlp, question)
    asked = {t.lower_ for t in qdoc} | {t.lemma_.lower() for t in qdoc}
    new = [t for t in doc if t.lower_ not in asked and t.lemma_.lower() not in asked]
    labels = {e.label_ for e in doc.ents if any(t.lower_ not in asked for t in e)}
    has_number = any(t.like_num for t in new)
    if kind == "how_many":
        if labels & ACCEPT[kind] == {"MONEY"} and not _MONEY_NOUNS.search(question):
            return "the question asks how many, and the answer gives an amount of money"
        fits = bool(labels & ACCEPT[kind]) or has_number
    elif kind == "how_much":
        fits = bool(labels & ACCEPT[kind]) or has_number
    elif kind == "when":
        fits = bool(labels & ACCEPT[kind]) or any(t.like_num and len(t.text) == 4 for t in new)
    else:  # who, where: a tagged entity, or at least a name (capitalised inside the sentence) that is not a date or a number
        fits = bool(labels & ACCEPT[kind]) or any(
            (t.pos_ == "PROPN" or (t.i > 0 and t.text[:1].isupper())) and t.ent_type_ in ("", *ACCEPT[kind]) for t in new)
        if kind == "where" and not fits:  # NER misses small places ("at Fußach" tagged a person): trust the preposition
            fits = any(t.pos_ == "PROPN" and t.head.lower_ in _LOCATIVE and t.ent_type_ not in _NOT_PLACES for t in new)
    return "" if fits else f"the question asks {kind.replace('_', ' ')}, and the answer names no {NAMES[kind]}"


def fitting_entities(question: str, answer: str, nlp_model: str = nlp_loader.PACKAGED) -> list[str]:
    """The entities of the answer that have the type the question asks for and that the question did
    not give ("Who was the MVP?" -> "Cam Newton" of "Cam Newton was named the MVP"), in order; empty
    when the question's type is not one of ours or none fits.

    >>> fitting_entities("When did Super Bowl City open?", "Super Bowl City opened on January 30 at Justin Herman Plaza.")
    ['January 30']
    """
    kind = expected(question)
    if kind is None:
        return []
    doc = nlp_loader.parse(nlp_loader.load(nlp_model), answer)
    asked = question.lower()
    return [e.text for e in doc.ents if e.label_ in ACCEPT[kind] and e.text.lower() not in asked]

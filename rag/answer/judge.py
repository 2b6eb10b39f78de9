"""Does a passage state a claim, as an answer to the question asked? The one judgement behind
citations, abstention and `eval`'s citation metric.

A claim (one sentence of the model's answer, markers removed) is supported by an evidence span, one
sentence of a passage or two adjacent ones, when all of these hold:

1. Its own words: at least `min_support` of the claim's content words that the question did not
   already use occur in the span (compared by stem), and every word of its names and dates does.
   A claim made only of the question's words answers nothing.
2. Numbers belong to what they count: each number of the claim occurs in the span with the same
   value and, where both sides name one, the same unit or counted noun ("1 million pounds" does not
   support "1 million people"; "$1 million" is not "1 million pounds").
3. It answers the question asked: the question's content words, weighted by rarity (IDF), occur in
   the span or in the sentence on either side of it, with a share of at least `min_coverage`. A claim
   made of the question's words plus one name found elsewhere in the passage is not supported.
   The question's words (names and numbers too) may also come from the cited document's name or whole title.
   A span of years the question gives ("from 1942 to 1976") is met by any year of it stated there.
4. It is not garbage: no empty slots ("appears in,, and"), no runs of punctuation.
5. It is about the question's own one: a claim that repeats what the question asks about ("the Deputy
   Prime Minister") but drops whose it is ("of Thailand") speaks of someone else.
6. A when-question's event (its main verb) is stated in or next to the span (`when_event`).
7. It does not assert more than `max_restated_absent` of the question's nouns that no passage given
   uses (checked by `citations`, over all passages, with `restated_absent`).

>>> from rag.records import Chunk, Hit, Passage
>>> text = "The UK gave a grant of 1 million pounds. The project trained 1,936 people."
>>> p = Passage(1, Hit(Chunk("a#0", "a.txt", 0, len(text), text), 1.0, 1), 0, len(text), text)
>>> judge("The project trained 1,936 people.", "How many people did the project train?", [p]).supported
True
>>> judge("The project trained 1 million people.", "How many people did the project train?", [p]).reason
"the answer's 1 million counts person, the passage's counts pound"
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Sequence

from . import answer_type
from ..language import nlp as nlp_loader
from ..language.terms import content_words, stem
from ..language.numbers import number_values, phrase_value
from ..records import Passage
from ..retrieval.exact_terms import year_ranges, years_in
from ..language.text import sentence_spans

# Words that frame a question rather than name what it is about ("What is the name of ...",
# "In what year ..."): an answer's evidence rarely repeats them.
# A name in more than half of the chunks is the corpus's topic ("Rhine" in a book on the Rhine): it
# need not be repeated near the evidence. BM25's idf is ln 2 at a document frequency of one half.
TOPIC_IDF = math.log(2)
FRAME_WORDS = frozenset("name named called call type kind term example year years date day month".split())
OWNER_LABELS = frozenset("GPE NORP PERSON ORG LOC FAC EVENT".split())  # "the minister of Thailand", "Laos's delegation"
NAME_LABELS = frozenset("PERSON ORG GPE LOC FAC NORP EVENT WORK_OF_ART LAW PRODUCT LANGUAGE DATE TIME".split())
CURRENCIES = {"$": "dollar", "us$": "dollar", "usd": "dollar", "£": "pound", "gbp": "pound", "€": "euro", "eur": "euro",
              "¥": "yen", "₫": "dong", "vnd": "dong"}
# Nouns that count occurrences, not things: "intercepted 17 times" states the passage's "17 interceptions".
COUNTERS = frozenset("time occasion instance".split())
CURRENCY_WORDS = frozenset("dollar pound euro yen dong yuan franc mark rupee baht".split())
# Garbled output: doubled punctuation (",," ",." "in,, and"), empty brackets, an article before punctuation.
_GARBAGE = re.compile(r"[,;:]\s*[,;:.!?]|\(\s*\)|\[\s*\]|\b(?:the|a|an)\s*[,;:.!?]|[!?]{2,}|^\W*$", re.I)


@dataclass(frozen=True)
class Thresholds:
    """How strict the judgement is (settings `min_support`, `min_coverage`)."""

    min_support: float = 0.5
    min_coverage: float = 0.5
    all_nouns: bool = False  # every new noun, name and adjective of the claim must be in the evidence
    min_restated: float = 0.0  # IDF-weighted share of the question's words the claim repeats that must be near
    # Where the names and numbers the question gave ("Thailand", "2018", "Super Bowl 50") must occur:
    # "window" (the cited sentence or the next one to it), "chunk" (anywhere in the chunk cited), "off".
    asked_near: str = "window"
    # A when-question's event (its main verb: "When did Vietnam *join* COMMIT?") must be stated in or
    # next to the cited sentence: a date there may be the date of another event ("Chair in 2025").
    when_event: bool = True
    # Abstain when more than this many of the question's nouns and adjectives that a claim repeats occur in
    # no passage given ("the *annual budget* of the Fund is 1 million pounds" over passages that speak of a
    # grant): the claim is about something the passages never discuss. -1: never.
    max_restated_absent: int = 1


@dataclass(frozen=True)
class Quantity:
    """A number of a text: its canonical value and what it counts (a noun lemma or a currency)."""

    text: str
    value: str
    unit: str | None


@dataclass(frozen=True)
class Evidence:
    """The best span of a passage for a claim, with the figures the verdict rests on."""

    passage: Passage
    start: int  # offsets into passage.text
    end: int
    support: float  # share of the claim's new content words in the span
    coverage: float  # IDF-weighted share of the question's words in the span and its neighbours
    restated: float  # the same share for the question's words that the claim itself repeats
    problem: str  # "" when the span supports the claim

    @property
    def text(self) -> str:
        return self.passage.text[self.start : self.end]


@dataclass(frozen=True)
class Verdict:
    claim: str
    evidence: Evidence | None  # the supporting span, or the closest one when unsupported
    reason: str  # why it is not supported; "" when it is

    @property
    def supported(self) -> bool:
        return not self.reason


@dataclass(frozen=True)
class _Judging:
    """What every step of judging one claim reads: the spaCy pipeline, the words' rarity, the thresholds."""

    nlp: Any
    idf: Callable[[str], float]
    th: Thresholds


def judge(
    claim: str, question: str, candidates: Sequence[Passage], idf: Callable[[str], float] | None = None,
    thresholds: Thresholds = Thresholds(), nlp_model: str = nlp_loader.PACKAGED,
) -> Verdict:
    """The verdict on one claim: the first candidate passage with a supporting span wins.

    `candidates` are tried in order (the passages the claim cites first, then the others, is the
    caller's choice); `idf` weighs question words by rarity (uniform when None).
    """
    if not claim.strip() or _GARBAGE.search(claim):
        return Verdict(claim, None, "the answer is garbled (empty slots or stray punctuation)")
    nlp = nlp_loader.load(nlp_model)
    c = _read_claim(claim, question, nlp)
    if not c.new:
        return Verdict(claim, None, "the answer only restates the question")
    j = _Judging(nlp, idf or (lambda w: 1.0), thresholds)
    owner = _dropped_owner(claim, question, j)
    if owner:
        return Verdict(claim, None, owner)
    best: Evidence | None = None
    for passage in candidates:
        for ev in _spans(passage, c, j):
            if best is None or rank(ev) > rank(best):
                best = ev
        if best is not None and not best.problem:
            return Verdict(claim, best, "")
    if best is None:
        return Verdict(claim, None, "no passage to check the answer against")
    return Verdict(claim, best, best.problem)


def rank(ev: Evidence) -> tuple:
    """Order of evidence: supporting first, then by support plus coverage, then shorter."""
    return (not ev.problem, min(ev.support, 1.0) + ev.coverage + ev.restated, -(ev.end - ev.start))


@dataclass(frozen=True)
class _Claim:
    new: tuple[str, ...]  # content words the question did not use
    nouns: tuple[str, ...]  # those of them that are nouns, names or adjectives (what a claim is about)
    names: tuple[str, ...]  # words of its names and dates: all must be in the evidence
    qualifiers: tuple[str, ...]  # "Vietnam" of "Hanoi, Vietnam": must be in the passage
    asked_names: tuple[str, ...]  # words of its names the question gave: all must be in the window
    numbers: tuple[Quantity, ...]  # new numbers: must be in the span
    asked_numbers: tuple[Quantity, ...]  # numbers the question gave ("Super Bowl 50"): must be in the window
    ranges: tuple[tuple[int, int], ...]  # the question's spans of years: any year of one meets its two ends
    event: str  # a when-question's main verb ("join"), which the evidence must state; "" otherwise
    wanted: tuple[str, ...]  # the question's words (frame words removed)
    repeated: tuple[str, ...]  # those the claim repeats, verbs aside ("the closing speech")
    lemmas: dict  # word -> lemma, for claim and question words
    joined: dict  # question word -> the compounds it makes with a neighbour ("half" -> {"halftime", ...})


def _read_claim(claim: str, question: str, nlp) -> _Claim:
    doc, qdoc = _parse(nlp, claim), _parse(nlp, question)
    lemmas = {t.lower_: t.lemma_.lower() for d in (doc, qdoc) for t in d}
    asked = {k for w in content_words(question) for k in _keys(w, lemmas)}
    new = tuple(w for w in dict.fromkeys(content_words(claim)) if not _keys(w, lemmas) & asked)
    pos = {t.lower_: t.pos_ for t in doc}
    nouns = tuple(w for w in new if pos.get(w) in ("NOUN", "PROPN", "ADJ", "NUM"))
    qualifiers = _place_qualifiers(doc)
    names = [w for w in _name_words(doc) if w not in qualifiers]
    fresh = tuple(w for w in names if not _keys(w, lemmas) & asked)
    given = tuple(w for w in names if w not in fresh)
    quantities = _quantities(doc, 0, len(claim))
    in_question = number_values(question)
    numbers = tuple(q for q in quantities if q.value not in in_question)
    asked_numbers = tuple(q for q in quantities if q.value in in_question)
    wanted = tuple(question_terms(question))
    # Verbs are paraphrased freely ("gets" for "receives"); the nouns, names and numbers a claim repeats are not.
    said = {k for t in doc if t.pos_ not in ("VERB", "AUX") for k in _keys(t.lower_, lemmas)}
    repeated = tuple(w for w in wanted if _keys(w, lemmas) & said)
    return _Claim(new, nouns, fresh, tuple(qualifiers), given, numbers, asked_numbers, tuple(year_ranges(question)),
                  _event(question, qdoc), wanted, repeated, lemmas, _compounds(question))


def _compounds(text: str) -> dict[str, set[str]]:
    """Each word mapped to the closed compounds it makes with a neighbour written apart ("half-time",
    "post season"), which a passage may write as one word ("halftime", "postseason")."""
    out: dict[str, set[str]] = {}
    words = list(re.finditer(r"[A-Za-z]{2,}", text))
    for m, n in zip(words, words[1:]):
        if text[m.end() : n.start()] in ("-", " "):
            whole = (m.group() + n.group()).lower()
            out.setdefault(m.group().lower(), set()).add(whole)
            out.setdefault(n.group().lower(), set()).add(whole)
    return out


# Verbs that name no event of their own ("When was it made?", "When did it take place?").
LIGHT_VERBS = frozenset("be do have become make get take give go come say use call know include happen occur".split())


def _event(question: str, qdoc) -> str:
    """The main verb of a when-question ("When did Vietnam join the COMMIT Process?" -> "join"), else ""."""
    if answer_type.expected(question) != "when":
        return ""
    root = next((t for t in qdoc if t.dep_ == "ROOT"), None)
    if root is None or root.pos_ != "VERB" or root.lemma_.lower() in LIGHT_VERBS:
        return ""
    return root.lower_


def restated_absent(claim: str, question: str, passages: Sequence[Passage], nlp_model: str = nlp_loader.PACKAGED) -> list[str]:
    """The question's nouns and adjectives the claim repeats that no passage's chunk holds (by word, stem, lemma).

    >>> from rag.records import Chunk, Hit, Passage
    >>> p = Passage(1, Hit(Chunk("a#0", "a", 0, 28, "The Fund gave a 1 million grant."), 1.0, 1), 0, 28, "The Fund gave a 1 million grant.")
    >>> restated_absent("The annual budget of the Fund is 1 million.", "What is the annual budget of the Fund?", [p])
    ['annual', 'budget']
    """
    nlp = nlp_loader.load(nlp_model)
    asked = {stem(w) for w in content_words(question)}
    have: set[str] = set()
    for chunk_text in dict.fromkeys(p.hit.chunk.text for p in passages):
        have |= _text_vocabulary(nlp, chunk_text)
    joined = _compounds(claim)  # "half-time" in the claim, "halftime" in a passage
    out: list[str] = []
    for t in _parse(nlp, claim):
        if t.pos_ in ("NOUN", "ADJ", "PROPN") and stem(t.lower_) in asked and t.lower_ not in out:
            if not {t.lower_, stem(t.lower_), t.lemma_.lower()} & have and not joined.get(t.lower_, set()) & have:
                out.append(t.lower_)
    return out


def _dropped_owner(claim: str, question: str, j: _Judging) -> str:
    """Why the claim speaks of another one than the question's ("" if it does not).

    "What did the Deputy Prime Minister of Thailand say?" answered with "Deputy Prime Minister Bui Thanh
    Son delivered the speech": the claim repeats whose-ever "Deputy Prime Minister" it found, and leaves
    out the name ("of Thailand", "Thailand's") that made it the question's. The corpus's topic names
    (in more than half of the chunks) may be left out.
    """
    idf = j.idf
    doc, qdoc = _parse(j.nlp, claim), _parse(j.nlp, question)
    said = {k for t in doc for k in (t.lower_, stem(t.lower_), t.lemma_.lower())}
    for ent in qdoc.ents:
        if ent.label_ not in OWNER_LABELS:
            continue
        words = content_words(ent.text)
        if not words or any(stem(w) in said or w in said for w in words) or min(idf(w) for w in words) < TOPIC_IDF:
            continue
        root = ent.root
        if root.dep_ == "pobj" and root.head.lower_ == "of" and root.head.head.pos_ in ("NOUN", "PROPN"):
            owned = root.head.head
        elif root.dep_ == "poss":
            owned = root.head
        else:
            continue
        if owned.lower_ in said or stem(owned.lower_) in said:
            return f"the answer speaks of a {owned.text.lower()} but not of {ent.text}'s, which the question asks about"
    return ""


def _keys(word: str, lemmas: dict) -> set[str]:
    """The forms a word is matched by: itself, its Snowball stem, its lemma."""
    return {word, stem(word), lemmas.get(word, word)}


def _spans(passage: Passage, c: _Claim, j: _Judging):
    """Evidence for every sentence of the passage and every two adjacent ones."""
    text = passage.text
    sents = sentence_spans(text)
    doc = _parse(j.nlp, text)
    vocab = [_vocabulary(doc, s, e) for s, e in sents]
    found = [{w for w in c.new if _has(w, v, text[s:e], c)} for v, (s, e) in zip(vocab, sents)]
    for i in range(len(sents)):
        for k in (i, i + 1):
            if k >= len(sents):
                continue
            # The question's words are looked for around the sentence that carries most of the claim.
            core = i if len(found[i]) >= len(found[k]) else k
            yield _evidence(passage, (sents[i][0], sents[k][1], sents[core]), doc, vocab[i] | vocab[k], c, j)


def _vocabulary(doc, s: int, e: int) -> set[str]:
    """Words, stems and lemmas of a span of a parsed text."""
    out: set[str] = set()
    for t in doc:
        if s <= t.idx < e:
            out |= {t.lower_, stem(t.lower_), t.lemma_.lower(), t.lower_.rstrip(".")}  # "Co." also as "co"
    return out


def _has(word: str, vocab: set[str], text: str, c: _Claim) -> bool:
    """Whether a word of the claim or question occurs in a span: as is, by stem, by lemma, or by value;
    an end of the question's span of years occurs where any year of that span does."""
    if word in vocab or stem(word) in vocab or c.lemmas.get(word, word) in vocab or _number_in(word, text):
        return True
    return bool(c.ranges) and word.isdigit() and _range_met(word, c.ranges, years_in(text))


def _evidence(passage, where, doc, vocab, c: _Claim, j: _Judging) -> Evidence:
    """The evidence of span `where` = (start, end, the core sentence's (start, end)) of the passage."""
    s, e, core = where
    nlp, idf, th = j.nlp, j.idf, j.th
    span = passage.text[s:e]
    found = [w for w in c.new if _has(w, vocab, span, c)]
    support = len(found) / len(c.new)
    window = _window(passage, *core)
    named = document_name(passage)  # the document's name frames every passage of it ("Annual_Report_2023.pdf")
    coverage = _coverage(c.wanted, c, f"{window}\n{named}", j)  # a snippet need not repeat its subject
    restated = _coverage(c.repeated, c, window, j)
    missing = [w for w in c.names if not _has(w, vocab, span, c)]
    if c.qualifiers:  # checked against the whole chunk the passage was cut from (the citation opens it)
        chunk = passage.hit.chunk.text
        whole = _text_vocabulary(nlp, chunk)
        missing += [w for w in c.qualifiers if not _has(w, whole, chunk, c)]
    far: list[str] = []
    scope = {"window": window, "chunk": passage.hit.chunk.text}.get(th.asked_near)
    if scope is not None:
        scope = f"{scope}\n{named}"
    if c.asked_names and scope is not None:
        near = _text_vocabulary(nlp, scope)
        far = [w for w in c.asked_names if not _has(w, near, scope, c) and idf(w) >= TOPIC_IDF]
    lost_nouns = [w for w in c.nouns if w not in found] if th.all_nouns else []
    no_event = th.when_event and c.event and not _has(c.event, _text_vocabulary(nlp, window), window, c)
    have = _quantities(doc, s, e)
    problem = next((p for q in c.numbers if (p := _number_problem(q, have, span))), "")
    if not problem and c.asked_numbers and scope is not None:
        around = _quantities(_parse(nlp, scope), 0, len(scope))
        stated = years_in(scope)
        asked = [q for q in c.asked_numbers if not _range_met(q.value, c.ranges, stated)]
        problem = next((p for q in asked if (p := _number_problem(q, around, scope))), "")
    if problem:
        pass
    elif missing or lost_nouns:
        problem = f"{', '.join((missing + lost_nouns)[:3])} is not in the cited sentence"
    elif no_event:
        problem = f"the cited sentence does not say when it happened (\"{c.event}\" is not near it)"
    elif far:
        problem = f"the cited sentence does not answer the question asked ({', '.join(far[:3])} is not near it)"
    elif support < th.min_support:
        problem = "the cited sentence does not state the answer"
    elif coverage < th.min_coverage:
        problem = "the cited sentence does not answer the question asked"
    elif restated < th.min_restated:
        problem = "the answer repeats words of the question that the cited sentence does not have"
    return Evidence(passage, s, e, support, coverage, restated, problem)


def document_name(passage: Passage) -> str:
    """The cited document's title and file name as words: "Super_Bowl_50_021.txt" reads "Super Bowl 50 021".

    The names and numbers a question gives may be found here as well as near the cited sentence: a
    user who asks about "revenue in 2023" of "Annual_Report_2023.pdf" need not find the year repeated.
    """
    chunk = passage.hit.chunk
    base = re.sub(r"\.[A-Za-z0-9]{1,5}$", "", chunk.source.rsplit("/", 1)[-1])
    words = re.sub(r"[_\W]+", " ", base).strip()
    whole_title = chunk.title and not chunk.title.endswith("…")  # a cut first line is no title
    return f"{chunk.title}. {words}." if whole_title else f"{words}."


def _number_problem(q: Quantity, have: list[Quantity], text: str) -> str:
    same = [h for h in have if h.value == q.value]
    if not same:
        if q.unit is None and re.search(rf"(?<!\w){re.escape(q.text)}(?!\w)", text, re.I):
            return ""  # the same words, read as part of a name there ("Xbox One")
        return f"the number {q.text} is not in the cited sentence"
    if q.unit and all(h.unit and h.unit != q.unit for h in same):
        return f"the answer's {q.text} counts {q.unit}, the passage's counts {same[0].unit}"
    return ""


def _range_met(value: str, ranges: tuple[tuple[int, int], ...], stated: set[int]) -> bool:
    """Whether `value` ends one of the question's spans of years and a year of that span is `stated`.

    "From 1942 to 1976" asks about the years between; a passage that says "in 1942 he became a
    citizen" states one, and an answer restating the question's span claims no more than it asked.
    """
    return any(value in (str(lo), str(hi)) and any(lo <= y <= hi for y in stated) for lo, hi in ranges)


def _number_in(word: str, span: str) -> bool:
    value = phrase_value(word)
    return value is not None and value in number_values(span)


def question_terms(question: str) -> list[str]:
    """The question's content words, once each, frame words ("name", "year") aside."""
    return [w for w in dict.fromkeys(content_words(question)) if w not in FRAME_WORDS]


def _coverage(words: tuple[str, ...], c: _Claim, window: str, j: _Judging) -> float:
    """IDF-weighted share of `words` found in the window (by word, stem or lemma)."""
    if not words:
        return 1.0
    idf = j.idf
    vocab = _text_vocabulary(j.nlp, window)
    total = sum(idf(w) for w in words)
    hit = sum(idf(w) for w in words if _has(w, vocab, window, c) or c.joined.get(w, set()) & vocab)
    return hit / total if total else 1.0


def _window(passage: Passage, s: int, e: int) -> str:
    """The span with one sentence of the chunk on either side (the subject is often named just before)."""
    chunk = passage.hit.chunk
    cs, ce = passage.start + s - chunk.start, passage.start + e - chunk.start
    sents = sentence_spans(chunk.text)
    before = [a for a, b in sents if b <= cs]
    after = [b for a, b in sents if a >= ce]
    lo = before[-1] if before else cs
    hi = after[0] if after else ce
    return chunk.text[min(lo, cs) : max(hi, ce)]


_parse = nlp_loader.parse


@lru_cache(maxsize=512)
def _text_vocabulary(nlp, text: str) -> frozenset[str]:
    """`_vocabulary` of a whole text (a window, a chunk): asked for several times per claim."""
    return frozenset(_vocabulary(_parse(nlp, text), 0, len(text)))


def _name_words(doc) -> list[str]:
    """Content words of the claim's names, titles and dates (not numbers): its entities and proper nouns."""
    out: list[str] = []
    for ent in doc.ents:
        if ent.label_ not in NAME_LABELS:
            continue
        for w in content_words(ent.text):
            if phrase_value(w) is None and w not in out:
                out.append(w)
    for t in doc:  # "Prime Minister" is no entity to the tagger, but a title the evidence must give
        if t.pos_ == "PROPN" and not t.ent_type_ and phrase_value(t.lower_) is None:
            out += [w for w in content_words(t.text) if w not in out]
    return out


def _place_qualifiers(doc) -> list[str]:
    """Words of a place named in apposition right after another ("Hanoi, Vietnam"; "Santa Clara, California").

    The model adds such a qualifier from what it knows; it is checked against the passage's whole chunk,
    not the span.
    """
    ents = list(doc.ents)
    out: list[str] = []
    for a, b in zip(ents, ents[1:]):
        between = doc[a.end : b.start].text.strip()
        if a.label_ in ("GPE", "LOC", "FAC") and b.label_ in ("GPE", "LOC") and between == ",":
            out += [w for w in content_words(b.text) if w not in out]
    return out


def _quantities(doc, start: int, end: int) -> list[Quantity]:
    """Numbers in doc between character offsets, each with its canonical value and unit."""
    out: list[Quantity] = []
    run: list = []
    for tok in doc:
        if tok.idx < start or tok.idx + len(tok.text) > end:
            continue
        if _is_number_token(tok) and (not run or tok.i == run[-1].i + 1):
            run.append(tok)
            continue
        if run:
            out += _quantity(run, doc)
        run = [tok] if _is_number_token(tok) else []
    if run:
        out += _quantity(run, doc)
    return out


def _is_number_token(tok) -> bool:
    if tok.lower_ == "one" and tok.i + 1 < len(tok.doc) and tok.doc[tok.i + 1].lower_ == "of":
        return False  # "one of three venues" picks one out; it counts nothing
    return (tok.like_num or tok.lower_ in ("million", "billion", "thousand", "trillion", "hundred")) and tok.pos_ != "PROPN"


def _quantity(run, doc) -> list[Quantity]:
    text = " ".join(t.text for t in run)
    value = phrase_value(text)
    if value is None:
        return []
    return [Quantity(text, value, _unit(run, doc))]


def _unit(run, doc) -> str | None:
    """A currency from the money entity around the number, else the noun the number modifies."""
    for ent in doc.ents:
        if ent.label_ == "MONEY" and ent.start <= run[0].i < ent.end:
            for t in ent:
                c = CURRENCIES.get(t.lower_) or (t.lemma_.lower() if t.lemma_.lower() in CURRENCY_WORDS else None)
                if c:
                    return c
            before = doc[ent.start - 1] if ent.start > 0 else None
            if before is not None and before.lower_ in CURRENCIES:
                return CURRENCIES[before.lower_]
    last = run[-1]
    if last.dep_ == "nummod" and last.head.pos_ == "NOUN" and last.head.i > last.i:
        lemma = last.head.lemma_.lower()
        if lemma in COUNTERS:
            return None  # "17 times" repeats the count of whatever the passage names ("17 interceptions")
        return "person" if lemma in ("people", "person", "persons") else lemma
    return None

"""HTML and Markdown for showing answers and sources (used by the web UI; pure functions).

Citation markers become links to their source card (`#src-<turn>-<n>`); each card shows the
passage with the cited span in `<mark>`, and a fold-out with the whole document, span marked.

>>> linked_answer("Paris [1].", turn=3)
'Paris <a class="cite" href="#src-3-1">[1]</a>.'
"""

from __future__ import annotations

import html
import re
from typing import Sequence

from ..records import Answer, Citation, Passage

DOC_VIEW_MAX_CHARS = 200_000  # larger documents show a window around the span


_MARKER = re.compile(r"\[(\d+)\]")
# Markdown's own syntax characters (links, images, emphasis, code, headings, tables), escaped with a backslash.
_MD_SYNTAX = re.compile(r"([\\`*_#\[\]()!~|])")
# GFM renderers (Gradio's included) also link bare URLs, www. names and e-mail addresses: a backslash
# before their ":", "." or "@" renders as nothing but no longer matches their patterns.
_BARE_LINK = re.compile(r"(?i)\b(?:https?|ftp)(?=://)|\bwww(?=\.)|(?=@)")


def linked_answer(text: str, turn: int) -> str:
    """Answer text as Markdown: escaped, and each `[n]` a link to source card n of this turn (its only links)."""
    pieces = _MARKER.split(text)  # text, marker number, text, ..., text
    return "".join(
        plain_markdown(piece) if i % 2 == 0 else f'<a class="cite" href="#src-{turn}-{piece}">[{piece}]</a>'
        for i, piece in enumerate(pieces)
    )


def plain_markdown(text: str) -> str:
    """`text` as Markdown that renders as exactly that text: no markup, link, image or HTML of its own.

    >>> print(plain_markdown("[x](http://e.org) *hi* <b>"))
    \\[x\\]\\(http\\://e.org\\) \\*hi\\* &lt;b&gt;
    """
    text = html.escape(text, quote=False)  # raw HTML and <autolinks> become text
    text = _MD_SYNTAX.sub(r"\\\1", text)
    return _BARE_LINK.sub(r"\g<0>\\", text)


def provisional_markdown(raw: str) -> str:
    """Text still streaming, before the answer check has kept or removed it: greyed, labelled, as text.

    >>> print(provisional_markdown("Denver *won*"))
    <span class="provisional">Denver \\*won\\*</span>
    <BLANKLINE>
    <small class="checking">⏳ Draft: not yet checked against the passages…</small>
    """
    return f'<span class="provisional">{plain_markdown(raw)}</span>\n\n<small class="checking">⏳ Draft: not yet checked against the passages…</small>'


def answer_markdown(answer: Answer, turn: int) -> str:
    """The chat message: the short answer in bold first, then the cited answer (or the abstention)."""
    if answer.abstained:
        reason = plain_markdown(answer.abstain_reason or "no supporting passage")
        if answer.readings > 1:
            reason = (f"read twice; the first time {plain_markdown(answer.first_reason)}; with "
                      f"{len(answer.passages)} passages, {reason}")
        return f"**{plain_markdown(answer.answer)}**\n\n<small>Not answered: {reason}. The passages searched are listed under Sources.</small>"
    head = f"**{plain_markdown(answer.short_answer)}**\n\n" if answer.short_answer else ""
    body = linked_answer(answer.answer, turn)
    note = f"\n\n<small>{confidence_words(answer.confidence)}</small>" if answer.confidence is not None else ""
    if answer.unsupported:
        removed = "; ".join(f"“{u.claim}” ({u.reason})" for u in answer.unsupported)
        note = "\n\n<small>⚠ Removed from the answer because no passage states it: " + plain_markdown(removed) + "</small>"
    return head + body + note


def confidence_words(confidence: float) -> str:
    """The calibrated confidence as a person reads it (docs/decision.md: it ranks answers well; its
    level is estimated on our development sets and varies between collections of documents).

    >>> confidence_words(0.93)
    "Confidence: high (93%, the answer check's estimate that this answer is right)."
    """
    level = "high" if confidence >= 0.8 else "medium" if confidence >= 0.6 else "low"
    return f"Confidence: {level} ({confidence:.0%}, the answer check's estimate that this answer is right)."


def sources_html(
    passages: Sequence[Passage], citations: Sequence[Citation], turn: int, search_query: str = "",
    question: str = "", documents: dict[str, str] | None = None, status: str = "",
) -> str:
    """The sources panel: rewritten query, then one card per passage, cited spans highlighted."""
    cited = {c.marker: c for c in citations}
    parts = ['<div class="sources">']
    if status:
        parts.append(f'<p class="status">{html.escape(status)}</p>')
    if search_query and search_query != question:
        parts.append(f'<p class="query">Searched for: <q>{html.escape(search_query)}</q></p>')
    if not passages:
        parts.append("<p>No passages.</p>")
    for p in passages:
        parts.append(_card(p, cited.get(p.number), turn, (documents or {}).get(p.hit.chunk.source)))
    parts.append("</div>")
    return "\n".join(parts)


def _card(p: Passage, citation: Citation | None, turn: int, doc_text: str | None) -> str:
    chunk = p.hit.chunk
    span = (citation.start, citation.end) if citation else None
    body = _marked(p.text, p.start, span)
    link = f' · <a href="{html.escape(chunk.url)}" target="_blank" rel="noopener">source link</a>' if chunk.url else ""
    cls = "card cited" if citation else "card"
    badge = "cited" if citation else "not cited"
    out = [
        f'<div class="{cls}" id="src-{turn}-{p.number}">',
        f'<div class="card-head"><b>[{p.number}]</b> {html.escape(chunk.title)}</div>',
        f'<div class="card-meta">{html.escape(chunk.source)}{_where(p, citation)} · chars {p.start}–{p.end} · {_scores(p.hit)} · {badge}{link}</div>',
        f'<div class="passage">{body}</div>',
    ]
    if doc_text is not None:
        out.append(f"<details><summary>Open the whole document</summary><div class=\"doc\">{document_html(doc_text, span or (p.start, p.end))}</div></details>")
    out.append("</div>")
    return "\n".join(out)


def _where(p: Passage, citation: Citation | None) -> str:
    """ · page 3 (the cited span's place in the file, else the passage's; nothing for plain text)."""
    where = (citation.location if citation else "") or p.location
    return f" · {html.escape(where)}" if where else ""


def document_html(text: str, span: tuple[int, int]) -> str:
    """The document text with `span` in <mark>; very long documents show a window around it."""
    start, end = span
    lo, hi = 0, len(text)
    if len(text) > DOC_VIEW_MAX_CHARS:
        lo = max(0, start - DOC_VIEW_MAX_CHARS // 2)
        hi = min(len(text), end + DOC_VIEW_MAX_CHARS // 2)
    prefix = f"<p><i>(characters {lo}–{hi} of {len(text)})</i></p>" if (lo, hi) != (0, len(text)) else ""
    return prefix + _marked(text[lo:hi], lo, span)


def _marked(text: str, offset: int, span: tuple[int, int] | None) -> str:
    """Escape `text` (which starts at document offset `offset`) and wrap `span` in <mark>."""
    if span is None:
        return html.escape(text).replace("\n", "<br>")
    s = max(span[0] - offset, 0)
    e = min(span[1] - offset, len(text))
    if e <= s:
        return html.escape(text).replace("\n", "<br>")
    pieces = (html.escape(text[:s]), f"<mark>{html.escape(text[s:e])}</mark>", html.escape(text[e:]))
    return "".join(pieces).replace("\n", "<br>")


CSS = """
.sources .card { border: 1px solid #ddd; border-radius: 8px; padding: 8px 10px; margin: 8px 0; }
.sources .card.cited { border-color: #e0a800; }
.sources .card:target { outline: 3px solid #ff9800; background: #fff8e1; }
.sources .card-meta { color: #666; font-size: 0.85em; margin: 2px 0 6px; }
.sources mark { background: #ffe066; padding: 0 1px; }
.sources .doc { max-height: 360px; overflow-y: auto; font-size: 0.9em; border-top: 1px dashed #ccc; padding-top: 6px; }
.sources .query, .sources .status { color: #555; font-style: italic; }
a.cite { text-decoration: none; font-weight: 600; }
.provisional { color: #8a8a8a; }
.checking { color: #8a8a8a; font-style: italic; }
"""


def _scores(hit) -> str:
    """The two raw scores a reader can interpret (the fused score is relative to the other candidates)."""
    cosine = f"cosine {hit.dense_score:.2f}" if hit.dense_score is not None else ""
    return " · ".join(x for x in (cosine, f"BM25 {hit.keyword_score or 0.0:.1f}") if x)

"""rag/app/present.py: what the chat and the sources panel show, checked on the rendered HTML."""

import html
import re
from html.parser import HTMLParser

from markdown_it import MarkdownIt

from rag.app.present import answer_markdown, document_html, sources_html
from rag.records import Answer, Chunk, Citation, Hit, Passage, Timings, Unsupported

EVIL = "evil.example"
PLANTED = (
    "[click](http://evil.example/a) ![pic](http://evil.example/i.png) <http://evil.example/auto> "
    "<a href=\"http://evil.example/raw\">raw</a> [ref][r] [[1]](http://evil.example/n)\n"
    "[r]: http://evil.example/def\n"
)


class Links(HTMLParser):
    """Every link target and image source in a piece of HTML."""

    def __init__(self, markup: str):
        super().__init__()
        self.targets: list[str] = []
        self.feed(markup)

    def handle_starttag(self, tag, attrs):
        self.targets += [f"{tag}:{v}" for k, v in attrs if k in ("href", "src")]


def rendered(markdown: str) -> str:
    """The chat message as a Markdown renderer with raw HTML allowed turns it into HTML (an independent oracle)."""
    return MarkdownIt("commonmark", {"html": True}).render(markdown)


def visible_text(markup: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def answer(text: str, **kw) -> Answer:
    return Answer("q", text, kw.pop("abstained", False), (), (), Timings(), **kw)


def test_answer_text_cannot_plant_a_link_or_image_but_citations_link():
    md = answer_markdown(answer("The UK funded it [1]. " + PLANTED, short_answer="[short](http://evil.example/s)"), turn=2)
    out = rendered(md)
    assert set(Links(out).targets) == {"a:#src-2-1"}  # only the app's own citation links ("[[1]](...)" holds one)
    shown = visible_text(out)
    assert "[click](http://evil.example/a)" in shown and "![pic](http://evil.example/i.png)" in shown  # shown as text
    assert "<http://evil.example/auto>" in shown and "[short](http://evil.example/s)" in shown


def test_bare_urls_and_addresses_are_not_left_for_autolinking():
    """GFM renderers (Gradio's) also link bare http(s):// and www. names and e-mail addresses."""
    md = answer_markdown(answer("See https://evil.example/x or www.evil.example or me@evil.example [1]."), turn=1)
    assert not re.search(r"(?i)(https?|ftp)://|www\.|\w@\w", md)
    assert "See https://evil.example/x or www.evil.example or me@evil.example" in visible_text(rendered(md))


def test_abstention_and_removed_claims_are_escaped_too():
    out = rendered(answer_markdown(answer(PLANTED, abstained=True, abstain_reason="[r](http://evil.example/r)"), turn=1))
    assert Links(out).targets == [] and EVIL in visible_text(out)
    removed = (Unsupported("[u](http://evil.example/u) <b>bold</b>", "no passage"),)
    out = rendered(answer_markdown(answer("Yes [1].", unsupported=removed), turn=1))
    assert Links(out).targets == ["a:#src-1-1"] and "<b>bold</b>" in visible_text(out)


def test_streamed_text_is_shown_as_text_and_as_unchecked():
    from rag.app.present import provisional_markdown

    out = rendered(provisional_markdown("Partial [1] " + PLANTED + " **bold** <script>x</script>"))
    assert Links(out).targets == [] and "<script>" not in out
    assert "**bold**" in visible_text(out) and "[1]" in visible_text(out)
    # Greyed (its own class) and labelled until the check has kept or removed it; the checked answer is not.
    assert '<span class="provisional">' in out and "not yet checked" in visible_text(out)
    final = rendered(answer_markdown(answer("Yes [1]."), turn=1))
    assert "provisional" not in final and "not yet checked" not in visible_text(final)


# ---- the sources panel

DOC = ("Intro <b>not bold</b> & more.\n"
       "The UK gave 1 million pounds to <i>fight</i>\ntrafficking [x](http://evil.example/p).\n"
       "End.")


def card_parts(turn=4):
    start = DOC.index("The UK")
    end = DOC.index("End.") - 1
    chunk = Chunk("d#0", "news <1>.txt", 0, len(DOC), DOC, title="<img src=x onerror=alert(1)>", url='https://ex.org/?a="b"')
    passage = Passage(1, Hit(chunk, 0.5, 1, 0.41, 3.2), start, end, DOC[start:end])
    cs = DOC.index("1 million")
    ce = DOC.index("trafficking") + len("trafficking")
    citation = Citation(1, chunk.source, cs, ce, DOC[cs:ce])
    return passage, citation


def marked(markup: str) -> list[str]:
    """The text inside each <mark>, as the reader sees it."""
    return [html.unescape(m.replace("<br>", "\n")) for m in re.findall(r"<mark>(.*?)</mark>", markup, re.S)]


def test_highlight_is_exactly_the_cited_text_in_card_and_document():
    passage, citation = card_parts()
    out = sources_html([passage], [citation], 4, documents={citation.source: DOC})
    assert marked(out) == [citation.text, citation.text]  # the passage, then the whole document
    assert 'id="src-4-1"' in out and "card cited" in out


def test_html_in_documents_is_escaped():
    passage, citation = card_parts()
    out = sources_html([passage], [citation], 4, "<u>search</u>", "q", {citation.source: DOC}, status="<b>s</b>")
    for planted in ("<b>not bold</b>", "<i>fight</i>", "<img src=x", "<1>", "<u>search</u>", "<b>s</b>"):
        assert planted not in out
    assert html.escape("<b>not bold</b>") in out and html.escape("<i>fight</i>") in out
    assert [t for t in Links(out).targets if t.startswith("img")] == []
    assert Links(out).targets == ["a:https://ex.org/?a=\"b\""]  # the document's source link, its quote escaped
    assert 'href="https://ex.org/?a=&quot;b&quot;"' in out


def test_uncited_passage_has_no_highlight_and_long_documents_show_a_window():
    passage, _ = card_parts()
    assert marked(sources_html([passage], [], 1)) == []
    long_doc = "x" * 300_000 + "NEEDLE" + "y" * 300_000
    view = document_html(long_doc, (300_000, 300_006))
    assert marked(view) == ["NEEDLE"] and "of 600006" in view and len(view) < 250_000

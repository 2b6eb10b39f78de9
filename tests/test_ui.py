"""The real app in a subprocess, driven through gradio_client and a headless browser."""

import os
import shutil
import threading
from pathlib import Path

import pytest

from conftest import SEEDS, UK_DOC
from uiapp import App

FAKE = {"RAG_EMBEDDER": "hashing", "RAG_ENGINE": "echo"}
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


@pytest.fixture(scope="module")
def fake_app(tmp_path_factory):
    base = tmp_path_factory.mktemp("ui")
    shutil.copytree(SEEDS, base / "docs")
    app = App(base / "docs", base / "index", env=FAKE)
    yield app
    app.stop()


def text_of(message: dict) -> str:
    """Chat message content: a string, or (gradio 6 client) a list of {"type": "text", "text": ...}."""
    content = message["content"]
    return content if isinstance(content, str) else " ".join(part.get("text", "") for part in content)


def client(app):
    from gradio_client import Client

    return Client(app.url, verbose=False)


def test_ask_endpoint_returns_the_cli_json(fake_app):
    out = client(fake_app).predict("What did the UK fund?", api_name="/ask")
    assert set(out) >= {"question", "answer", "abstained", "citations", "passages", "timings"}
    assert not out["abstained"]
    c = out["citations"][0]
    assert c["source"] == UK_DOC and "1 million pounds" in c["text"]
    assert (SEEDS / UK_DOC).read_text()[c["start"] : c["end"]] == c["text"]


def test_ask_endpoint_reports_bad_questions(fake_app):
    out = client(fake_app).predict("   ", api_name="/ask")
    assert "empty" in out["error"]


def test_chat_endpoint_streams_answer_and_sources(fake_app):
    chat, sources, box = client(fake_app).predict("What did the UK fund?", [], 480, 160, api_name="/chat")
    answer = text_of(chat[-1])
    assert 'href="#src-1-1"' in answer
    assert "<mark>" in sources and "1 million pounds" in sources.split("<mark>")[1].split("</mark>")[0]


def test_questions_can_be_restricted_to_documents(fake_app):
    from conftest import MEKONG_DOC

    out = client(fake_app).predict("What did the UK fund?", [MEKONG_DOC], api_name="/ask")
    assert {p["source"] for p in out["passages"]} == {MEKONG_DOC}
    assert all(c["source"] == MEKONG_DOC for c in out["citations"])
    bad = client(fake_app).predict("What did the UK fund?", ["no-such.txt"], api_name="/ask")
    assert "no document matches" in bad["error"]
    chat, sources, box = client(fake_app).predict("What did the UK fund?", [], 480, 160, [MEKONG_DOC], api_name="/chat")
    assert MEKONG_DOC in sources and UK_DOC not in sources


def test_two_sessions_at_once_get_their_own_answers(fake_app):
    questions = {"uk": "What did the UK fund?", "hanoi": "Who delivered the opening speech at IMM6?"}
    results = {}

    def ask(key):
        results[key] = client(fake_app).predict(questions[key], [], 480, 160, api_name="/chat")

    threads = [threading.Thread(target=ask, args=(k,)) for k in questions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert "1 million pounds" in results["uk"][1] and "UK" in text_of(results["uk"][0][-1])
    assert "Bui Thanh Son" in text_of(results["hanoi"][0][-1])
    assert text_of(results["uk"][0][0]) == questions["uk"]
    assert text_of(results["hanoi"][0][0]) == questions["hanoi"]


def test_follow_up_is_rewritten_with_the_previous_turn(tmp_path):
    from rag.pipeline import Pipeline
    from rag.settings import Settings

    shutil.copytree(SEEDS, tmp_path / "docs")
    p = Pipeline.from_settings(Settings(docs_dir=tmp_path / "docs", index_dir=tmp_path / "ix", embedder="hashing", engine="echo"))
    first = p.ask("What did the UK fund?")
    follow = p.ask("How many people did it train?", history=[(first.question, first.short_answer or first.answer)])
    assert follow.search_query != follow.question and "fund" in follow.search_query
    assert any("1,936" in x.text for x in follow.passages)


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_browser_click_citation_highlights_the_grant(fake_app):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "ui-citation.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(fake_app.url)
            page.wait_for_selector("#question textarea", timeout=60_000)
            page.fill("#question textarea", "What did the UK fund?")
            page.press("#question textarea", "Enter")
            page.wait_for_selector("#sources .card", timeout=60_000)
            page.wait_for_selector("#chat a.cite", timeout=120_000)
            page.click("#chat a.cite >> nth=0")
            page.wait_for_selector("#sources .card:target mark", timeout=10_000)
            highlighted = page.inner_text("#sources .card:target mark")
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    print(f"\nscreenshot: {shot}")
    assert "1 million pounds" in highlighted


def test_uploads_are_checked_and_indexed(tmp_path):
    import ui
    from rag.pipeline import Pipeline
    from rag.settings import Settings

    shutil.copytree(SEEDS, tmp_path / "docs")
    p = Pipeline.from_settings(Settings(docs_dir=tmp_path / "docs", index_dir=tmp_path / "ix", embedder="hashing", engine="echo", max_upload_mb=0.01))
    good = tmp_path / "up" / "notes.md"
    good.parent.mkdir()
    good.write_text("# Notes\nThe Mekong meeting agreed on a plan.")
    bad_type = tmp_path / "up" / "run.sh"
    bad_type.write_text("echo hi")
    big = tmp_path / "up" / "big.txt"
    big.write_text("x " * 20_000)
    msg, rows, _, _ = ui._add_uploads(p, [str(good), str(bad_type), str(big)])
    assert "added notes.md" in msg and "run.sh" in msg and "big.txt" in msg and "limit" in msg
    assert sorted(os.listdir(tmp_path / "docs")) == sorted([*os.listdir(SEEDS), "notes.md"])
    assert p.last_report.added == ["notes.md"] and p.last_report.chunks_embedded == 1
    assert ["notes.md", "Notes", 1] in rows
    a = p.ask("What did the Mekong meeting agree on?")  # the new document answers at once
    assert not a.abstained and [c.source for c in a.citations] == ["notes.md"]
    msg, rows, _ = ui._remove(p, "notes.md")
    assert "removed" in msg and not (tmp_path / "docs" / "notes.md").exists()
    msg, _, _ = ui._remove(p, "../outside.txt")
    assert "no such document" in msg


def test_upload_names_cannot_escape_the_documents_folder():
    import ui

    assert ui.safe_upload_name("../../etc/passwd.txt") == "passwd.txt"
    assert ui.safe_upload_name("..\\..\\x.md") == "x.md"
    assert ui.safe_upload_name("report 2024 é.pdf") == "report 2024 é.pdf"
    assert ui.safe_upload_name("evil.exe") is None
    assert ui.safe_upload_name(".hidden.txt") == "hidden.txt"


@pytest.mark.models
def test_default_model_answers_through_the_api(tmp_path):
    """The real default models (MiniLM + Qwen2.5-1.5B via llama.cpp) behind the real app."""
    shutil.copytree(SEEDS, tmp_path / "docs")
    app = App(tmp_path / "docs", tmp_path / "index", env={"RAG_CACHE_DIR": str(tmp_path.parent / "default-model-cache")}, timeout=600)
    try:
        out = client(app).predict("What did the UK fund?", api_name="/ask")
    finally:
        app.stop()
    assert not out["abstained"], out
    assert "1 million pound" in out["answer"]
    grant = [c for c in out["citations"] if c["source"] == UK_DOC and "1 million pounds" in c["text"]]
    assert grant and (SEEDS / UK_DOC).read_text()[grant[0]["start"] : grant[0]["end"]] == grant[0]["text"]
    assert out["timings"]["ttft_s"] > 0 and out["timings"]["prompt_tokens"] > 0


def test_stop_event_ends_generation_early(fake_settings):
    from rag.generation.echo import EchoGenerator
    from rag.pipeline import Done, Pipeline, Token

    long_reply = " ".join(f"word{i}" for i in range(200)) + " [1]."
    p = Pipeline.from_settings(fake_settings, generator=EchoGenerator(script=long_reply))
    stop = threading.Event()
    tokens, done = 0, None
    for event in p.ask_stream("What did the UK fund?", stop_event=stop, max_new_tokens=500):
        if isinstance(event, Token):
            tokens += 1
            if tokens == 5:
                stop.set()  # what the Stop button does for this session
        elif isinstance(event, Done):
            done = event.answer
    assert tokens == 5 and done.timings.completion_tokens == 5


def test_upload_with_an_existing_name_is_reported_as_replaced_and_reindexed(tmp_path):
    import ui
    from rag.pipeline import Pipeline
    from rag.settings import Settings

    shutil.copytree(SEEDS, tmp_path / "docs")
    p = Pipeline.from_settings(Settings(docs_dir=tmp_path / "docs", index_dir=tmp_path / "ix", embedder="hashing", engine="echo"))
    new = tmp_path / "up" / UK_DOC
    new.parent.mkdir()
    new.write_text("The UK funded a new bridge over the Red River.")
    msg, rows, _, _ = ui._add_uploads(p, [str(new)])
    assert f"replaced {UK_DOC}" in msg and f"added {UK_DOC}" not in msg
    assert p.last_report.updated == [UK_DOC] and p.last_report.added == []
    assert (tmp_path / "docs" / UK_DOC).read_text() == new.read_text()
    assert any("Red River" in h.chunk.text for h in p.search("bridge over the Red River"))
    same = tmp_path / "again" / UK_DOC  # the same bytes again: replaced, nothing to re-embed
    same.parent.mkdir()
    same.write_text(new.read_text())
    msg, _, _, _ = ui._add_uploads(p, [str(same)])
    assert f"replaced {UK_DOC} (same content)" in msg and p.last_report.chunks_embedded == 0


def _chat_examples(app) -> list[str]:
    """The example questions the app's chat offers."""
    import gradio as gr

    chat = next(b for b in app.blocks.values() if isinstance(b, gr.Chatbot))
    return [e["text"] for e in chat.examples or []]


def test_example_questions_come_from_the_documents_folder(tmp_path):
    """The seed questions are examples for the seed documents only; a folder can bring its own (or none)."""
    import ui
    from rag.pipeline import Pipeline
    from rag.settings import Settings

    def app_for(docs, examples=None):
        p = Pipeline.from_settings(Settings(docs_dir=docs, index_dir=docs.parent / f"ix-{docs.name}", embedder="hashing", engine="echo"))
        return ui.build_app(p) if examples is None else ui.build_app(p, ui.example_questions(p.settings, examples))

    shutil.copytree(SEEDS, tmp_path / "seeds")
    assert "What did the UK fund?" in _chat_examples(app_for(tmp_path / "seeds"))
    other = tmp_path / "other"
    other.mkdir()
    (other / "cats.txt").write_text("Cats purr when they are content.")
    assert _chat_examples(app_for(other)) == []  # not the seed questions
    (other / "questions.jsonl").write_text('{"question": "Why do cats purr?"}\n')
    assert _chat_examples(app_for(other)) == ["Why do cats purr?"]
    mine = tmp_path / "mine.jsonl"
    mine.write_text('{"id": 1, "question": "When do cats purr?"}\n')
    assert _chat_examples(app_for(other, mine)) == ["When do cats purr?"]
    assert ui.parse_args(["--examples", str(mine)]).examples == mine


def test_streamed_answer_cannot_show_a_planted_link(tmp_path):
    """While tokens arrive, the chat shows the model's raw text: it must render as text, like the final answer."""
    import ui
    from markdown_it import MarkdownIt

    from rag.generation.echo import EchoGenerator
    from rag.pipeline import Pipeline
    from rag.settings import Settings

    shutil.copytree(SEEDS, tmp_path / "docs")
    reply = "See [the fund](http://evil.example/a) ![x](http://evil.example/i.png): a grant of 1 million pounds [1]."
    p = Pipeline.from_settings(Settings(docs_dir=tmp_path / "docs", index_dir=tmp_path / "ix", embedder="hashing", engine="echo"),
                               generator=EchoGenerator(script=reply))
    shown = [chat[-1]["content"] for chat, *_ in ui._respond(p, "What did the UK fund?", [], [], 0, 480, 160, threading.Event())]
    assert len(shown) > 3  # several streamed states, then the final answer
    for message in shown:
        rendered = MarkdownIt("commonmark", {"html": True}).render(message)
        assert "evil.example/a\"" not in rendered and "<img" not in rendered, message


def test_page_gives_the_model_the_same_passages_as_the_cli(fake_settings):
    """The page's evidence slider starts at the budget `ask`, `eval` and `/ask` use, with passage states on or
    off, and the page's question then gets the same passages as `ask`."""
    import threading

    import ui
    from rag.generation.echo import EchoGenerator
    from rag.pipeline import Pipeline, Retrieved

    class WithStates(EchoGenerator):
        reuses_passage_states = True

    settings = fake_settings.replace(evidence_tokens=300, evidence_tokens_windows=200)
    for generator, expected in ((EchoGenerator(), 200), (WithStates(), 300)):
        p = Pipeline.from_settings(settings, generator=generator)
        slider = next(c for c in ui.build_app(p).blocks.values()
                      if getattr(c, "label", "") == "Evidence given to the model (tokens)")
        assert p.evidence_tokens == expected and slider.value == expected
        seen = []
        real = p.ask_stream

        def recording(*args, **kwargs):
            for event in real(*args, **kwargs):
                if isinstance(event, Retrieved):
                    seen.append([(x.hit.chunk.source, x.start, x.end) for x in event.passages])
                yield event

        p.ask_stream = recording
        list(ui._respond(p, "What did the UK fund?", [], [], 0, slider.value, 160, threading.Event()))
        cli = [(x.hit.chunk.source, x.start, x.end) for x in p.prompt_for("What did the UK fund?")[1]]
        assert seen == [cli] and cli


def test_browser_chat_survives_reload_and_restart_and_clears(tmp_path):
    """The chat is kept in the browser (encrypted with the index folder's key): a reload and a server
    restart on the same address show it again, with the follow-up history; Clear empties it for good."""
    from playwright.sync_api import sync_playwright

    shutil.copytree(SEEDS, tmp_path / "docs")
    app = App(tmp_path / "docs", tmp_path / "index", env=FAKE)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            page = browser.new_page()
            page.goto(app.url)
            page.wait_for_selector("#question textarea", timeout=60_000)
            page.fill("#question textarea", "What did the UK fund?")
            page.press("#question textarea", "Enter")
            page.wait_for_selector("#chat a.cite", timeout=120_000)
            page.wait_for_timeout(1500)  # the kept chat is written after the answer
            page.reload()
            page.wait_for_selector("#chat a.cite", timeout=60_000)
            assert "1 million pounds" in page.inner_text("#chat") and "1 million pounds" in page.inner_text("#sources")
            port = app.port
            app.stop()
            app = App(tmp_path / "docs", tmp_path / "index", env=FAKE, port=port)  # a restart, same address
            page.goto(app.url)
            page.wait_for_selector("#chat a.cite", timeout=60_000)
            assert "1 million pounds" in page.inner_text("#chat")
            page.click("#clear")
            page.wait_for_function("!document.querySelector('#chat a.cite')", timeout=30_000)
            page.wait_for_timeout(1000)
            page.reload()
            page.wait_for_selector("#question textarea", timeout=60_000)
            page.wait_for_timeout(2000)
            assert page.query_selector("#chat a.cite") is None and "1 million pounds" not in page.inner_text("#chat")
        finally:
            browser.close()
            app.stop()


def test_transcript_markdown_has_citations_and_excerpts(fake_settings):
    import ui
    from rag.pipeline import Pipeline
    from rag.app.transcript import history_of, transcript_markdown, turn_record

    p = Pipeline.from_settings(fake_settings)
    kept = []
    for q in ("What did the UK fund?", "Who won the 1998 World Cup?"):
        a = p.ask(q)
        kept.append(turn_record(a, "shown", "<div></div>"))
    md = transcript_markdown(kept)
    assert md.startswith("# ") and "## 1. What did the UK fund?" in md and "## 2. Who won the 1998 World Cup?" in md
    c = kept[0]["citations"][0]
    assert f"[{c['marker']}] {UK_DOC}" in md and "> " + c["text"].splitlines()[0] in md
    assert "The documents do not say." in md  # the abstention is in the transcript too
    assert history_of(kept) == [("What did the UK fund?", kept[0]["short_answer"] or kept[0]["answer"])]
    path = ui._transcript_file(kept)
    assert Path(path).read_text(encoding="utf-8") == md
    assert ui._transcript_file([]) is None


def test_browser_upload_a_docx_watch_progress_ask_and_reload(tmp_path):
    """The page as a user meets it: upload a Word file, see the indexing progress, ask about it, get a
    cited answer whose card names the section and opens the cited span; reload and the chat is there."""
    from playwright.sync_api import sync_playwright

    from test_formats import _docx

    shutil.copytree(SEEDS, tmp_path / "docs")
    upload = tmp_path / "upload" / "grant-report.docx"
    upload.parent.mkdir()
    _docx(upload)
    app = App(tmp_path / "docs", tmp_path / "index", env=FAKE)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(app.url)
            page.wait_for_selector("#question textarea", timeout=60_000)
            page.click("#documents button >> nth=0")  # open the Documents panel
            page.evaluate("""() => { window.progressSeen = [];
                new MutationObserver(() => { const t = document.body.innerText;
                  for (const w of ["Reading files", "Embedding chunks"]) if (t.includes(w) && !window.progressSeen.includes(w))
                    window.progressSeen.push(w); }).observe(document.body, {subtree: true, childList: true, characterData: true}); }""")
            page.set_input_files("#upload input[type=file]", str(upload))
            page.wait_for_function("document.querySelector('#doc-status').innerText.includes('added grant-report.docx')",
                                   timeout=60_000)
            seen = page.evaluate("window.progressSeen")
            page.fill("#question textarea", "Which region trained 1,200 people?")
            page.press("#question textarea", "Enter")
            page.wait_for_selector("#chat a.cite", timeout=120_000)
            card = page.inner_text("#sources .card.cited >> nth=0")
            page.click("#chat a.cite >> nth=0")
            page.wait_for_selector("#sources .card:target mark", timeout=10_000)
            marked = page.inner_text("#sources .card:target mark")
            page.wait_for_timeout(1500)
            page.reload()
            page.wait_for_selector("#chat a.cite", timeout=60_000)
            kept = page.inner_text("#chat")
        finally:
            browser.close()
            app.stop()
    assert seen, "no indexing progress was shown"
    assert "grant-report.docx" in card and "section “Results by region”" in card
    assert "North" in marked and "1,200" in marked
    assert "1,200" in kept

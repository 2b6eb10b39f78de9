"""The chat in the browser: `python ui.py [--port 7860] [--host 127.0.0.1] [--docs seeds] [--index index]`.

A thin Gradio wrapper around `rag.Pipeline`: it streams the pipeline's events into the page and
renders them with `rag.app.present`. It holds no retrieval or prompting logic.
"""

import argparse
import filecmp
import logging
import os
import shutil
import sys
import threading
from pathlib import Path

import gradio as gr

from rag.options import settings_from_args
from rag.ingest.documents import SUPPORTED_SUFFIXES
from rag.errors import RagError
from rag.pipeline import Done, Pipeline, Reread, Retrieved, Token
from rag.app.present import CSS, answer_markdown, plain_markdown, provisional_markdown, sources_html
from rag.questions import QUESTIONS_FILE, folder_questions, question_texts
from rag.settings import Settings
from rag.app.transcript import appended, browser_secret, chat_messages, history_of, transcript_markdown, turn_record

log = logging.getLogger("ui")

MAX_EXAMPLES = 5
_STOPS: dict[str, threading.Event] = {}  # one stop flag per browser session, keyed by session hash


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Local cited Q&A chat in the browser.")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 opens it to the network: use --auth)")
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    p.add_argument("--auth", default=os.environ.get("RAG_UI_AUTH"), help="user:password required to open the page")
    for flag in ("--docs", "--index", "--settings"):
        p.add_argument(flag, type=Path)
    for flag in ("--embedder", "--generator", "--engine"):
        p.add_argument(flag)
    p.add_argument("--examples", type=Path, help=f"JSONL file of {{\"question\": ...}} shown as example questions "
                   f"(default: {QUESTIONS_FILE} in the documents folder; none without it)")
    p.add_argument("--no-warm-up", action="store_true", help="load the model on the first question instead")
    return p.parse_args(argv)


def example_questions(settings: Settings, path: Path | None = None) -> list[str]:
    """The chat's example questions: those of `path`, else the documents folder's own questions.jsonl, else none."""
    questions = question_texts(path) if path is not None else folder_questions(settings.docs_dir)
    return questions[:MAX_EXAMPLES]


def build_app(pipeline: Pipeline, examples: list[str] | None = None):
    """The Gradio Blocks app for a ready pipeline (examples: by default the documents folder's own)."""
    s = pipeline.settings
    examples = example_questions(s) if examples is None else examples
    with gr.Blocks(title="Local cited Q&A") as app:
        gr.Markdown("## Ask your documents\nAnswers come from a local model and cite the passages they use. Nothing leaves this machine.")
        chat, box, send, stop, sources = _chat_panel(examples)
        within = gr.Dropdown(choices=sorted(pipeline.index.documents), value=[], multiselect=True,
                             label="Search within", info="Leave empty to search every document.", elem_id="within")
        # The chat, kept in this browser across reloads and server restarts (rag/app/transcript.py).
        saved = gr.BrowserState([], storage_key="local-rag-chat", secret=browser_secret(s.index_dir))
        with gr.Row():
            clear = gr.Button("Clear chat", size="sm", elem_id="clear")
            gr.DownloadButton("Download chat (Markdown)", value=_transcript_file, inputs=[saved], size="sm",
                              elem_id="download")  # its file follows `saved`
        with gr.Accordion("Settings", open=False):
            k = gr.Slider(100, 2000, value=pipeline.evidence_tokens, step=20, label="Evidence given to the model (tokens)",
                          info="Passages are taken in rank order while they fit; short snippets fit many, long chunks few.")
            max_tokens = gr.Slider(16, 512, value=s.max_new_tokens, step=16, label="Max answer length (tokens)")
            gr.Textbox(value=_engine_line(pipeline), label="Engine and models", interactive=False)
        history, turn = _wire_chat(pipeline, chat, box, send, stop, sources, k, max_tokens, within, saved)
        app.load(_restore, saved, [chat, sources, history, turn], api_visibility="private")
        clear.click(_cleared, None, [chat, sources, history, turn, saved], api_visibility="private")
        _documents_panel(pipeline, within)

        def ask(question: str, only: list[str] | None = None) -> dict:
            """Answer one question (within the documents named in `only`, when given); returns the same
            JSON object as `python -m rag ask --json`."""
            try:
                return pipeline.ask(question, only=only or ()).to_json()
            except RagError as e:
                return {"question": question, "error": str(e)}

        gr.api(ask, api_name="ask")
    return app


def _chat_panel(examples: list[str]):
    """The chat (with example questions), the question box and its buttons, and the sources pane."""
    with gr.Row():
        with gr.Column(scale=3):
            chat = gr.Chatbot(label="Chat", height=520, examples=[{"text": q} for q in examples] or None,
                              placeholder="Ask a question about the documents.", elem_id="chat")
            with gr.Row():
                box = gr.Textbox(placeholder="Ask a question and press Enter", show_label=False, scale=5, elem_id="question")
                send = gr.Button("Ask", variant="primary", scale=1)
                stop = gr.Button("Stop", scale=1, elem_id="stop")
        with gr.Column(scale=2):
            gr.Markdown("### Sources")
            sources = gr.HTML(_NO_SOURCES, elem_id="sources")
    return chat, box, send, stop, sources


def _wire_chat(pipeline: Pipeline, chat, box, send, stop, sources, k, max_tokens, within, saved):
    """Enter or Ask streams an answer; Stop cancels it; an example fills the box. Returns the history
    and turn states (a restored chat refills them)."""
    history = gr.State([])  # [(question, answer text)] of this browser's chat
    turn = gr.State(0)

    last = gr.State(None)  # the turn just answered, for the chat kept in the browser

    def respond(message, chat_msgs, hist, turn_no, k_value, max_new, only, request: gr.Request):
        try:
            yield from _respond(pipeline, message, chat_msgs, hist, turn_no, int(k_value), int(max_new), _stop_flag(request),
                                only or ())
        finally:  # the flag is only needed while this session's answer is being written
            _STOPS.pop(getattr(request, "session_hash", None) or "default", None)

    inputs = [box, chat, history, turn, k, max_tokens, within]
    outputs = [chat, sources, history, turn, box, last]
    ev1 = box.submit(respond, inputs, outputs, api_name="chat")
    ev2 = send.click(respond, inputs, outputs, api_visibility="private")
    for event in (ev1, ev2):  # then kept in the browser (not an input of the /chat endpoint)
        event.then(_kept_with, [saved, last], [saved, last], api_visibility="private")

    def pick_example(evt: gr.SelectData):
        return evt.value["text"]

    chat.example_select(pick_example, None, box, api_visibility="private")

    def stop_now(request: gr.Request):
        _stop_flag(request).set()

    stop.click(stop_now, None, None, cancels=[ev1, ev2], queue=False, api_visibility="private")
    return history, turn


_NO_SOURCES = "<p>The passages used for the answer will appear here.</p>"


def _restore(kept):
    """The chat kept in this browser, as it was: messages, the last sources panel, follow-up history."""
    kept = list(kept or [])
    panel = kept[-1].get("sources_html", _NO_SOURCES) if kept else _NO_SOURCES
    return chat_messages(kept), panel, history_of(kept), len(kept)


def _kept_with(kept, turn):
    return (appended(kept, turn) if turn else list(kept or [])), None


def _cleared():
    return [], _NO_SOURCES, [], 0, []


_TRANSCRIPTS: Path | None = None  # one folder per process for the files to download
_TRANSCRIPT_AGE_S = 3600  # older ones are deleted (each chat's file is made again when it changes)


def _transcript_file(kept) -> str | None:
    """The kept chat as a Markdown file to download (None while there is nothing to download)."""
    global _TRANSCRIPTS
    if not kept:
        return None
    import hashlib
    import tempfile
    import time

    if _TRANSCRIPTS is None:
        _TRANSCRIPTS = Path(tempfile.mkdtemp(prefix="rag-chats-"))
    for old in _TRANSCRIPTS.glob("*/chat.md"):
        if time.time() - old.stat().st_mtime > _TRANSCRIPT_AGE_S:
            old.unlink(missing_ok=True)
            old.parent.rmdir()
    text = transcript_markdown(kept)
    path = _TRANSCRIPTS / hashlib.sha256(text.encode("utf-8")).hexdigest()[:16] / "chat.md"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return str(path)


def _documents_panel(pipeline: Pipeline, within) -> None:
    """The indexed documents, with upload and removal (each re-indexes at once; the "Search within"
    choices follow)."""
    s = pipeline.settings
    with gr.Accordion("Documents", open=False, elem_id="documents"):
        doc_list = gr.Dataframe(value=_doc_rows(pipeline), headers=["document", "title", "chunks"], interactive=False)
        upload = gr.File(label=f"Add documents ({', '.join(SUPPORTED_SUFFIXES)}; up to {s.max_upload_mb:g} MB each)",
                         file_count="multiple", file_types=list(SUPPORTED_SUFFIXES), elem_id="upload")
        with gr.Row():
            remove_choice = gr.Dropdown(choices=sorted(pipeline.index.documents), label="Remove a document")
            remove = gr.Button("Remove")
        doc_status = gr.Markdown("", elem_id="doc-status")
        states_status = gr.Markdown("", elem_id="states-status")
        gr.Timer(2.0).tick(lambda: _WARMER.status(), None, states_status, api_visibility="private", queue=False)

    def on_upload(files, chosen, progress=gr.Progress()):
        return (*_add_uploads(pipeline, files, progress), _within(pipeline, chosen))

    upload.upload(on_upload, [upload, within], [doc_status, doc_list, remove_choice, upload, within], api_visibility="private")

    def on_remove(source, chosen):
        return (*_remove(pipeline, source), _within(pipeline, chosen))

    remove.click(on_remove, [remove_choice, within], [doc_status, doc_list, remove_choice, within], api_visibility="private")


def _within(pipeline: Pipeline, chosen):
    """The "Search within" choices after the documents changed, keeping the chosen ones that remain."""
    names = sorted(pipeline.index.documents)
    return gr.Dropdown(choices=names, value=[c for c in chosen or [] if c in names])


class _StateWarmer:
    """Computes the model's states of new chunks in the background after an update (questions go first:
    `Pipeline.warm_states` holds the generation lock one block at a time), and says how far it is."""

    def __init__(self):
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.done, self.total = 0, 0

    def start(self, pipeline: Pipeline, sources) -> None:
        if not sources or not pipeline.generator.reuses_passage_states:
            return
        self._stop.set()  # an earlier warm-up gives way to this one
        if self._thread is not None:
            self._thread.join()
        self._stop = threading.Event()
        self.done, self.total = 0, 0

        def tell(_stage, done, total):
            self.done, self.total = done, total

        def run(stop=self._stop):
            try:
                pipeline.warm_states(sources, tell, stop)
            except RagError as e:  # the next question computes what is missing
                log.warning("passage states not computed in the background: %s", e)

        self._thread = threading.Thread(target=run, name="warm-states", daemon=True)
        self._thread.start()

    def status(self) -> str:
        if self._thread is None or not self.total:
            return ""
        if self._thread.is_alive():
            return f"Preparing new passages for fast answers: {self.done} of {self.total}…"
        return f"New passages prepared ({self.done} of {self.total})."


_WARMER = _StateWarmer()


def _stop_flag(request) -> threading.Event:
    key = getattr(request, "session_hash", None) or "default"
    return _STOPS.setdefault(key, threading.Event())


def _respond(pipeline, message, chat_msgs, hist, turn_no, k, max_new, stop_flag, only=()):
    """Stream one answer: passages first, then tokens, then the checked answer with linked citations;
    the last value of each update is the turn's record for the kept chat (None until it is answered)."""
    stop_flag.clear()
    turn_no += 1
    kept = None
    chat_msgs = list(chat_msgs or []) + [{"role": "user", "content": message}, {"role": "assistant", "content": "…"}]
    panel = sources_html([], [], turn_no, status="Searching…")
    yield chat_msgs, panel, hist, turn_no, "", kept
    raw, query = "", ""
    try:
        for event in pipeline.ask_stream(message, history=hist, evidence_tokens=int(k), max_new_tokens=max_new,
                                          stop_event=stop_flag, only=only):
            if isinstance(event, Retrieved):
                query = event.search_query
                panel = sources_html(event.passages, [], turn_no, query, message, status="Writing the answer…")
                yield chat_msgs, panel, hist, turn_no, "", kept
            elif isinstance(event, Reread):  # the first reply was refused: a second, wider reading follows
                raw = ""
                chat_msgs[-1] = {"role": "assistant", "content": "…"}
                panel = sources_html(event.passages, [], turn_no, query, message,
                                     status=f"Reading {len(event.passages)} passages: the first reply was not kept…")
                yield chat_msgs, panel, hist, turn_no, "", kept
            elif isinstance(event, Token):
                raw += event.text
                # The model's text, not markup, greyed and labelled until the check has kept or removed it.
                chat_msgs[-1] = {"role": "assistant", "content": provisional_markdown(raw)}
                yield chat_msgs, panel, hist, turn_no, "", kept
            elif isinstance(event, Done):
                a = event.answer
                docs = {p.hit.chunk.source: pipeline.document_text(p.hit.chunk.source) for p in a.passages}
                chat_msgs[-1] = {"role": "assistant", "content": answer_markdown(a, turn_no)}
                status = "Stopped." if stop_flag.is_set() else ""
                panel = sources_html(a.passages, a.citations, turn_no, a.search_query, a.question,
                                     {k_: v for k_, v in docs.items() if v is not None}, status)
                hist = list(hist) + [(a.question, a.short_answer or a.answer)] if not a.abstained else list(hist)
                kept = turn_record(a, chat_msgs[-1]["content"], panel)
                yield chat_msgs, panel, hist, turn_no, "", kept
    except RagError as e:
        chat_msgs[-1] = {"role": "assistant", "content": f"⚠ {plain_markdown(str(e))}"}
        yield chat_msgs, sources_html([], [], turn_no, status="No answer."), hist, turn_no, "", kept


def _engine_line(pipeline: Pipeline) -> str:
    g = pipeline.generator
    return f"engine: {g.name} · generator: {g.model_name} · embedder: {pipeline.settings.embedder}"


def _doc_rows(pipeline: Pipeline) -> list[list]:
    return [[name, d.get("title", ""), d.get("chunks", 0)] for name, d in sorted(pipeline.index.documents.items())]


def _add_uploads(pipeline: Pipeline, files, progress=None):
    """Copy the uploaded files into the documents folder, then update the index (only changed files are
    embedded), telling `progress` (the page's bar) of each file read and each batch of chunks embedded."""
    messages = [_copy_upload(Path(getattr(f, "name", f)), pipeline.settings) for f in files or []]

    def tell(stage: str, done: int, total: int) -> None:
        if progress is not None and total:
            progress((done, total), desc="Reading files" if stage == "files" else "Embedding chunks", unit=stage)

    try:
        report = pipeline.update_index(progress=tell)
        _WARMER.start(pipeline, set(report.added) | set(report.updated))
        for sk in report.skipped:
            messages.append(f"✗ {sk.source}: {sk.reason} (not indexed)")
        for w in report.warnings:
            messages.append(f"⚠ {w.source}: {w.reason}")
        messages.append(f"index: {report.summary()}")
    except RagError as e:
        messages.append(f"✗ {e}")
    return "\n\n".join(messages), _doc_rows(pipeline), gr.Dropdown(choices=sorted(pipeline.index.documents)), None


def _copy_upload(path: Path, settings: Settings) -> str:
    """Copy one upload into the documents folder; the line that says what happened to it."""
    name = safe_upload_name(path.name)
    if name is None:
        return f"✗ {path.name}: only {', '.join(SUPPORTED_SUFFIXES)} files are accepted"
    size_mb = path.stat().st_size / 1e6
    if size_mb > settings.max_upload_mb:
        return f"✗ {name}: {size_mb:.1f} MB is over the {settings.max_upload_mb:g} MB limit"
    target = settings.docs_dir / name
    # A document of that name is overwritten: say so (the index update re-embeds it if its bytes changed).
    if not target.exists():
        action = f"added {name}"
    elif filecmp.cmp(path, target, shallow=False):
        action = f"replaced {name} (same content)"
    else:
        action = f"replaced {name}"
    shutil.copyfile(path, target)
    return action


def safe_upload_name(name: str):
    """A plain file name inside the documents folder, or None if the type is not accepted."""
    base = Path(name.replace("\\", "/")).name.strip().lstrip(".")
    if not base or Path(base).suffix.lower() not in SUPPORTED_SUFFIXES:
        return None
    return base


def _remove(pipeline: Pipeline, source):
    if not source:
        return "Choose a document to remove.", _doc_rows(pipeline), gr.Dropdown(choices=sorted(pipeline.index.documents))
    try:
        report = pipeline.remove_document(source)
        msg = f"removed {source}; index: {report.summary()}"
    except RagError as e:
        msg = f"✗ {e}"
    return msg, _doc_rows(pipeline), gr.Dropdown(choices=sorted(pipeline.index.documents), value=None)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = settings_from_args(args)
        examples = example_questions(settings, args.examples)  # a bad file is refused before the index is built
        pipeline = Pipeline.from_settings(settings)
        report = pipeline.last_report
        if report is not None and report.changed:
            print(f"index: {report.summary()}", flush=True)
        if not args.no_warm_up:
            print("loading models…", flush=True)
            pipeline.warm_up()
            if report is not None and report.changed:  # new chunks' states, computed while nobody asks
                _WARMER.start(pipeline, set(report.added) | set(report.updated))
    except RagError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    app = build_app(pipeline, examples)
    app.queue(default_concurrency_limit=4)
    auth = tuple(args.auth.split(":", 1)) if args.auth and ":" in args.auth else None
    if args.host not in ("127.0.0.1", "localhost") and auth is None:
        print("warning: listening beyond this machine without --auth: anyone who can reach it can use it", flush=True)
    server = _server(app, pipeline, args, auth, settings)
    return serve(server, f"ready: http://{args.host}:{args.port} (OpenAI API: http://{args.host}:{args.port}/v1)")


def _server(app, pipeline: Pipeline, args, auth, settings: Settings):
    """One web server for the page and the OpenAI chat API (`rag/app/openai_server.py`) beside it."""
    import uvicorn
    from fastapi import FastAPI

    from rag.app import openai_server

    root = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    openai_server.install(root, pipeline, auth)
    root = gr.mount_gradio_app(root, app, path="", auth=auth, css=CSS, max_file_size=f"{int(settings.max_upload_mb)}mb",
                               footer_links=["api"], server_name=args.host, server_port=args.port)
    return uvicorn.Server(uvicorn.Config(root, host=args.host, port=args.port, log_level="warning"))


def serve(server, ready_line: str) -> int:
    """Run the server; print `ready_line` once it listens (tests and scripts wait for it)."""
    import time

    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            print("error: the web server did not start (is the port in use?)", file=sys.stderr)
            return 2
        time.sleep(0.05)
    print(ready_line, flush=True)
    try:
        thread.join()
    except KeyboardInterrupt:
        server.should_exit = True
        thread.join(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

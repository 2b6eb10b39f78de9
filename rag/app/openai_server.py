"""The OpenAI chat API over the documents: `POST /v1/chat/completions` (streamed or not) and
`GET /v1/models`, served beside the page (`ui.py`), so any OpenAI client (Open WebUI, LibreChat,
Continue, the OpenAI SDKs) can ask the documents.

- The last user message is the question; earlier user/assistant turns are the history that follow-ups
  lean on (as in the chat). System messages are ignored: the answer prompt is ours.
- The reply's text is the checked answer with its `[n]` markers; the response (and the last chunk of a
  stream) carries `sources`, the citations with file, offsets and text (the records of `ask --json`),
  and `abstained`. An abstention is a normal reply that says so.
- A stream sends the role at once, then the answer once it has been checked (the check reads the whole
  reply, so unchecked words are never sent), then the end with `sources`.
- With `auth` (ui.py --auth user:password) every route requires `Authorization: Bearer user:password`,
  what OpenAI clients send as their API key. The page's login cookie does not cover these routes.
"""

from __future__ import annotations

import hmac
import json
import time
import uuid
from typing import Any, Iterator

from fastapi import Request  # module level: FastAPI reads the routes' annotations from this module's names

from ..errors import RagError

MODEL_ID = "local-rag"  # the one model this server offers: the documents, answered with citations


def make_router(pipeline, auth: tuple[str, str] | None = None):
    """A FastAPI router with the two routes, answering from `pipeline`."""
    from fastapi import APIRouter, Depends
    from fastapi.responses import JSONResponse, StreamingResponse

    def check_key(request: Request) -> None:
        if auth is None:
            return
        sent = request.headers.get("authorization", "")
        expected = "Bearer " + ":".join(auth)
        if not hmac.compare_digest(sent.encode(), expected.encode()):
            raise _Refused(401, "a valid API key is required: send Authorization: Bearer user:password", "invalid_api_key")

    router = APIRouter(prefix="/v1", dependencies=[Depends(check_key)])

    @router.get("/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "local"}]}

    @router.post("/chat/completions")
    async def chat_completions(request: Request):
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _Refused(400, "the request body is not JSON") from None
        question, history, max_tokens, stream = parse_request(body)
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        if stream:
            events = stream_completion(pipeline, completion_id, question, history, max_tokens)
            return StreamingResponse(events, media_type="text/event-stream")
        from starlette.concurrency import run_in_threadpool

        answer = await run_in_threadpool(_answer, pipeline, question, history, max_tokens)
        return JSONResponse(completion(completion_id, answer))

    return router


def install(app, pipeline, auth: tuple[str, str] | None = None) -> None:
    """Add the routes to a FastAPI `app`, with errors in OpenAI's shape (`{"error": {...}}`)."""
    from fastapi.responses import JSONResponse

    app.include_router(make_router(pipeline, auth))

    @app.exception_handler(_Refused)
    async def refused(_request, e: "_Refused"):
        headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
        return JSONResponse({"error": {"message": e.message, "type": "invalid_request_error", "code": e.code}},
                            status_code=e.status, headers=headers)


class _Refused(Exception):
    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def parse_request(body: Any) -> tuple[str, list[tuple[str, str]], int | None, bool]:
    """The question, the earlier turns, the answer's token limit and whether to stream; a bad request is
    refused with a one-line reason."""
    if not isinstance(body, dict):
        raise _Refused(400, "the request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _Refused(400, "messages must be a non-empty list")
    turns: list[tuple[str, str]] = []
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ("system", "developer", "user", "assistant", "tool"):
            raise _Refused(400, "each message needs a role: system, user or assistant")
        if m["role"] in ("user", "assistant"):
            turns.append((m["role"], _text(m.get("content"))))
    if not turns or turns[-1][0] != "user":
        raise _Refused(400, "the last message must be the user's question")
    history, asked = [], None
    for role, text in turns[:-1]:
        if role == "user":
            asked = text
        elif asked is not None:
            history.append((asked, text))
            asked = None
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise _Refused(400, "max_tokens must be a positive integer")
    return turns[-1][1], history, max_tokens, bool(body.get("stream", False))


def _text(content: Any) -> str:
    """A message's text: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    if content is None:
        return ""
    raise _Refused(400, "a message's content must be text")


def _answer(pipeline, question: str, history, max_tokens: int | None):
    try:
        return pipeline.ask(question, history=history, max_new_tokens=max_tokens)
    except RagError as e:
        raise _Refused(400, str(e)) from None


def reply_text(answer) -> str:
    """What the client shows: the answer with its markers, or the abstention and why."""
    if answer.abstained:
        return f"{answer.answer} ({answer.abstain_reason})" if answer.abstain_reason else answer.answer
    return answer.answer


def _extras(answer) -> dict:
    out = answer.to_json()
    return {"sources": out["citations"], "abstained": answer.abstained, "confidence": out["confidence"],
            "search_query": answer.search_query}


def completion(completion_id: str, answer) -> dict:
    t = answer.timings
    return {
        "id": completion_id, "object": "chat.completion", "created": int(time.time()), "model": MODEL_ID,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply_text(answer)}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": t.prompt_tokens, "completion_tokens": t.completion_tokens,
                  "total_tokens": t.prompt_tokens + t.completion_tokens},
        **_extras(answer),
    }


def stream_completion(pipeline, completion_id: str, question: str, history, max_tokens: int | None) -> Iterator[str]:
    """Server-sent events of `chat.completion.chunk`s, ending with `data: [DONE]`."""
    from ..pipeline import Done

    created = int(time.time())

    def chunk(delta: dict, finish: str | None = None, **extra) -> str:
        body = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": MODEL_ID,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    try:
        answer = None
        for event in pipeline.ask_stream(question, history=history, max_new_tokens=max_tokens):
            if isinstance(event, Done):
                answer = event.answer
    except RagError as e:  # the stream has begun: the error is the reply, in one line
        yield chunk({"content": f"error: {e}"})
        yield chunk({}, "stop")
        yield "data: [DONE]\n\n"
        return
    for piece in _pieces(reply_text(answer)):
        yield chunk({"content": piece})
    yield chunk({}, "stop", **_extras(answer))
    yield "data: [DONE]\n\n"


def _pieces(text: str, size: int = 24) -> Iterator[str]:
    """The text in short pieces at word ends (what a client expects of a stream)."""
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        space = text.find(" ", end)
        end = len(text) if space == -1 or space - end > 16 else space + 1
        yield text[start:end]
        start = end

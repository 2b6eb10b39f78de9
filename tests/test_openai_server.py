"""The OpenAI chat API beside the page: the real app in a subprocess, spoken to as an OpenAI client would."""

from __future__ import annotations

import json
import shutil

import httpx
import pytest

from rag.app.openai_server import _pieces, _Refused, parse_request

from conftest import SEEDS, UK_DOC
from uiapp import App

FAKE = {"RAG_EMBEDDER": "hashing", "RAG_ENGINE": "echo"}
UK_QUESTION = "What did the UK fund?"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    base = tmp_path_factory.mktemp("openai")
    shutil.copytree(SEEDS, base / "docs")
    app = App(base / "docs", base / "index", env=FAKE)
    yield app
    app.stop()


def post(app, body: dict, **kw) -> httpx.Response:
    return httpx.post(app.url + "v1/chat/completions", json=body, timeout=120, **kw)


def events(response: httpx.Response) -> list:
    """The `data:` payloads of a server-sent event stream, parsed (the last is the string [DONE])."""
    out = []
    for line in response.text.splitlines():
        if line.startswith("data: "):
            payload = line[len("data: "):]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def test_models_lists_the_documents_model(app):
    r = httpx.get(app.url + "v1/models", timeout=30)
    assert r.status_code == 200
    assert [m["id"] for m in r.json()["data"]] == ["local-rag"]


def test_completion_carries_markers_and_sources_with_exact_offsets(app):
    r = post(app, {"model": "local-rag", "messages": [{"role": "system", "content": "Be brief."},
                                                     {"role": "user", "content": UK_QUESTION}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion" and body["choices"][0]["finish_reason"] == "stop"
    text = body["choices"][0]["message"]["content"]
    assert "[1]" in text and not body["abstained"]
    source = body["sources"][0]
    assert source["source"] == UK_DOC and "1 million pounds" in source["text"]
    assert (SEEDS / UK_DOC).read_text()[source["start"]:source["end"]] == source["text"]


def test_stream_sends_the_same_checked_answer_then_sources(app):
    plain = post(app, {"messages": [{"role": "user", "content": UK_QUESTION}]}).json()
    r = post(app, {"messages": [{"role": "user", "content": [{"type": "text", "text": UK_QUESTION}]}], "stream": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    got = events(r)
    assert got[-1] == "[DONE]"
    chunks = got[:-1]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == plain["choices"][0]["message"]["content"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["sources"] == plain["sources"]


def test_follow_up_uses_the_history(app):
    first = post(app, {"messages": [{"role": "user", "content": UK_QUESTION}]}).json()
    follow = post(app, {"messages": [
        {"role": "user", "content": UK_QUESTION},
        {"role": "assistant", "content": first["choices"][0]["message"]["content"]},
        {"role": "user", "content": "And how much was it?"},
    ]}).json()
    assert follow["search_query"] != "And how much was it?"  # rewritten with the earlier turn's words
    assert "UK" in follow["search_query"] or "fund" in follow["search_query"]


@pytest.mark.parametrize("body, message", [
    ({}, "messages must be a non-empty list"),
    ({"messages": []}, "messages must be a non-empty list"),
    ({"messages": [{"role": "assistant", "content": "hi"}]}, "the last message must be the user's question"),
    ({"messages": [{"role": "user", "content": "   "}]}, "the question is empty"),
    ({"messages": [{"role": "user", "content": "x"}], "max_tokens": -3}, "max_tokens must be a positive integer"),
])
def test_bad_requests_get_one_line_errors(app, body, message):
    r = post(app, body)
    assert r.status_code == 400
    assert message in r.json()["error"]["message"] and "Traceback" not in r.text


def test_parse_request_pairs_turns():
    q, history, max_tokens, stream = parse_request({"messages": [
        {"role": "system", "content": "ignored"}, {"role": "user", "content": "a?"}, {"role": "assistant", "content": "A."},
        {"role": "user", "content": "b?"}, {"role": "assistant", "content": "B."}, {"role": "user", "content": "c?"},
    ], "max_tokens": 64, "stream": True})
    assert (q, history, max_tokens, stream) == ("c?", [("a?", "A."), ("b?", "B.")], 64, True)
    with pytest.raises(_Refused):
        parse_request({"messages": [{"role": "user", "content": {"no": "text"}}]})


def test_pieces_rebuild_the_text():
    text = "The UK funded 1 million pounds [1]. Training and support for victims of trafficking followed [2]."
    parts = list(_pieces(text))
    assert "".join(parts) == text and len(parts) > 2


def test_the_official_openai_client_streams_and_not(app):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=app.url + "v1", api_key="unused without --auth")
    assert [m.id for m in client.models.list()] == ["local-rag"]
    reply = client.chat.completions.create(model="local-rag", messages=[{"role": "user", "content": UK_QUESTION}])
    text = reply.choices[0].message.content
    assert "[1]" in text
    sources = reply.model_extra["sources"]
    assert sources[0]["source"] == UK_DOC and (SEEDS / UK_DOC).read_text()[sources[0]["start"]:sources[0]["end"]] == sources[0]["text"]
    pieces, last = [], None
    for chunk in client.chat.completions.create(model="local-rag", stream=True,
                                                messages=[{"role": "user", "content": UK_QUESTION}]):
        pieces.append(chunk.choices[0].delta.content or "")
        last = chunk
    assert "".join(pieces) == text
    assert last.choices[0].finish_reason == "stop" and last.model_extra["sources"] == sources
    with pytest.raises(openai.BadRequestError, match="the question is empty"):
        client.chat.completions.create(model="local-rag", messages=[{"role": "user", "content": " "}])

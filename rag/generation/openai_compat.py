"""Any OpenAI-compatible chat server (vLLM, TGI, llama.cpp's server, Ollama), streamed over SSE.

This lets a team serve the model on a GPU machine and keep this app as the front end.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Iterator

from ..errors import GenerationError
from .base import Generator, Grounding, Usage

log = logging.getLogger(__name__)


class OpenAICompatGenerator(Generator):
    name = "openai"

    def __init__(self, base_url: str, model: str, api_key: str = "", context_window: int = 4096, timeout: float = 120.0):
        self.base_url = base_url.rstrip("/")
        self.model_name = model
        self.api_key = api_key
        self.context_window = context_window
        self.timeout = timeout

    def stream(self, messages, max_tokens=160, temperature=0.0, usage: Usage | None = None, stop_event=None,
               grounding: Grounding | None = None) -> Iterator[str]:
        import httpx

        body = {
            "model": self.model_name, "messages": messages, "max_tokens": max_tokens,
            "temperature": temperature, "stream": True, "stream_options": {"include_usage": True},
        }
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        produced = 0
        try:
            with httpx.stream("POST", f"{self.base_url}/chat/completions", json=body, headers=headers, timeout=self.timeout) as r:
                if r.status_code != 200:
                    r.read()
                    raise GenerationError(f"server {self.base_url} answered {r.status_code}: {_one_line(r.text)}")
                for line in r.iter_lines():
                    if stop_event is not None and stop_event.is_set():
                        break
                    event = _parse_sse(line)
                    if event is None:
                        continue
                    if event.get("error"):  # a failure after the 200 header arrives as an event
                        raise GenerationError(f"server {self.base_url} failed mid-answer: {_one_line(event['error'])}")
                    if event.get("usage") and usage is not None:
                        usage.prompt_tokens = int(event["usage"].get("prompt_tokens") or 0)
                    for choice in event.get("choices") or []:
                        piece = (choice.get("delta") or {}).get("content")
                        if piece:
                            produced += 1
                            if usage is not None:
                                usage.completion_tokens = produced
                            yield piece
        except httpx.HTTPError as e:
            raise GenerationError(f"cannot reach the model server at {self.base_url}: {e}") from None


def _one_line(error: object, limit: int = 200) -> str:
    """An error body or event as one short line: its OpenAI-style "message" if any, else its text without markup."""
    if isinstance(error, str):
        try:
            error = json.loads(error)
        except json.JSONDecodeError:
            error = re.sub(r"<[^>]*>", " ", error)  # an HTML error page from a proxy
    if isinstance(error, dict):
        inner = error.get("error", error)
        error = (inner.get("message") or json.dumps(inner)) if isinstance(inner, dict) else inner
    return " ".join(str(error).split())[:limit]


def _parse_sse(line: str) -> dict | None:
    if not line.startswith("data:"):
        return None
    data = line[5:].strip()
    if not data or data == "[DONE]":
        return None
    try:
        return json.loads(data)
    except json.JSONDecodeError:
        return None

"""A chat as records that survive a page reload and a server restart (the page keeps them in the
browser's storage, encrypted with a key kept in the index folder), and as Markdown to download.

A turn is the question, the shown answer (its Markdown, with the citation links), the checked answer's
record (`Answer.to_json()` without the long fields: the citations, the passages' places and excerpts,
the confidence) and the sources panel's HTML, so a restored chat looks as it did.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any, Sequence

MAX_TURNS = 200  # the oldest turns are dropped past this (the browser's storage is a few MB)
EXCERPT_CHARS = 400


def turn_record(answer, markdown: str, sources: str) -> dict[str, Any]:
    """What a chat keeps of one answered question."""
    out = answer.to_json()
    return {
        "question": answer.question,
        "markdown": markdown,
        "sources_html": sources,
        "answer": out["answer"],
        "abstained": out["abstained"],
        "abstain_reason": out["abstain_reason"],
        "short_answer": out["short_answer"],
        "confidence": out["confidence"],
        "citations": out["citations"],
        "passages": [{k: p[k] for k in ("rank", "source", "start", "end", "location") if k in p}
                     | {"text": p["text"][:EXCERPT_CHARS]} for p in out["passages"]],
    }


def appended(turns: Sequence[dict] | None, turn: dict) -> list[dict]:
    return (list(turns or []) + [turn])[-MAX_TURNS:]


def history_of(turns: Sequence[dict]) -> list[tuple[str, str]]:
    """The (question, answer) pairs that follow-ups lean on: answered turns only, as in the live chat."""
    return [(t["question"], t["short_answer"] or t["answer"]) for t in turns if not t.get("abstained")]


def chat_messages(turns: Sequence[dict]) -> list[dict]:
    out: list[dict] = []
    for t in turns:
        out += [{"role": "user", "content": t["question"]}, {"role": "assistant", "content": t["markdown"]}]
    return out


def transcript_markdown(turns: Sequence[dict], title: str = "Chat with your documents") -> str:
    """The chat as Markdown: each question, its answer with [n] markers, its confidence, and under it
    every cited source with its place in the file and the cited excerpt."""
    lines = [f"# {title}", ""]
    for n, t in enumerate(turns, start=1):
        lines += [f"## {n}. {t['question']}", ""]
        if t.get("abstained"):
            reason = f" ({t['abstain_reason']})" if t.get("abstain_reason") else ""
            lines += [f"{t['answer']}{reason}", ""]
        else:
            lines += [t["answer"], ""]
            if t.get("confidence") is not None:
                lines += [f"Confidence: {t['confidence']:.2f}", ""]
        for c in t.get("citations", []):
            where = f", {c['location']}" if c.get("location") else ""
            lines.append(f"[{c['marker']}] {c['source']}{where}, characters {c['start']}–{c['end']}:")
            lines += ["> " + line for line in c["text"].splitlines() or [""]]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def browser_secret(index_dir: Path) -> str:
    """The key the page's stored chats are encrypted with: made once and kept in the index folder, so
    chats survive a server restart (Gradio's default key is new in every process)."""
    path = Path(index_dir) / ".chat-secret"
    try:
        return path.read_text(encoding="ascii").strip()
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(32)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(secret, encoding="ascii")
    tmp.chmod(0o600)
    tmp.replace(path)
    return secret

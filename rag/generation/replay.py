"""A record of replies keyed by the exact prompt, so evaluation can re-judge the same replies.

Greedy decoding makes a reply a function of (model, messages, max_tokens): recording it lets
`python -m rag eval --reply-cache FILE` re-run the answer checks after a change to them in seconds,
on the very replies the model gave, instead of an hour of generation. A prompt that changed is a
miss and goes to the model; sampled generation (temperature > 0) is never cached.

>>> import tempfile, pathlib
>>> from .echo import EchoGenerator
>>> path = pathlib.Path(tempfile.mkdtemp()) / "replies.jsonl"
>>> g = ReplayCache(EchoGenerator(script="Hi [1]."), path)
>>> g.generate([{"role": "user", "content": "q"}]), g.hits
('Hi [1].', 0)
>>> g2 = ReplayCache(EchoGenerator(script="other"), path)
>>> g2.generate([{"role": "user", "content": "q"}]), g2.hits
('Hi [1].', 1)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterator

from ..errors import RagError
from .base import Generator, Grounding, Usage


class ReplayCache(Generator):
    """Wraps a generator; replays a recorded reply for a prompt seen before, records new ones."""

    def __init__(self, inner: Generator, path: Path):
        self.inner = inner
        self.path = Path(path)
        self.name = inner.name
        self.model_name = inner.model_name
        self.context_window = inner.context_window
        self.hits = 0
        self.last_replayed = False
        self._replies = self._read()

    def _read(self) -> dict[str, dict]:
        if not self.path.is_file():
            return {}
        replies = {}
        lines = self.path.read_text(encoding="utf-8").splitlines()
        for n, line in enumerate(lines, start=1):
            try:
                row = json.loads(line)
                replies[row["key"]] = row
            except (json.JSONDecodeError, KeyError, TypeError):
                # Only the last line may be cut (a killed run): drop it, so the next record starts a line.
                if n != len(lines):
                    raise RagError(f"{self.path}:{n}: not a reply record") from None
                self.path.write_text("".join(f"{x}\n" for x in lines[:-1]), encoding="utf-8")
        return replies

    def key(self, messages: list[dict], max_tokens: int) -> str:
        # A reply from saved passage states can differ from one prefilled whole: not the same entry.
        states = ["passage-states"] if self.inner.reuses_passage_states else []
        blob = json.dumps([self.inner.model_name, max_tokens, messages] + states, ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def stream(self, messages, max_tokens=160, temperature=0.0, usage: Usage | None = None, stop_event=None,
               grounding: Grounding | None = None) -> Iterator[str]:
        key = self.key(messages, max_tokens)
        row = self._replies.get(key) if temperature == 0 else None
        if row is not None and "token_logprobs" not in row:
            row = None  # recorded before replies kept their tokens' log-probabilities: asked again
        self.last_replayed = row is not None
        if row is not None:
            self.hits += 1
            if usage is not None:
                usage.prompt_tokens, usage.completion_tokens = row["prompt_tokens"], row["completion_tokens"]
                usage.token_logprobs = [tuple(x) for x in row["token_logprobs"]]
            yield row["reply"]
            return
        inner_usage = usage if usage is not None else Usage()
        pieces = []
        for piece in self.inner.stream(messages, max_tokens, temperature, inner_usage, stop_event, grounding):
            pieces.append(piece)
            yield piece
        if temperature == 0 and not (stop_event is not None and stop_event.is_set()):
            row = {"key": key, "reply": "".join(pieces), "prompt_tokens": inner_usage.prompt_tokens,
                   "completion_tokens": inner_usage.completion_tokens,
                   "token_logprobs": [list(x) for x in inner_usage.token_logprobs]}
            self._replies[key] = row
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")

    def yes_probability(self, messages: list[dict], grounding: Grounding | None = None,
                        hidden: list | None = None) -> float | None:
        key = "p:" + self.key(messages, 1)
        row = self._replies.get(key)
        if row is None or (hidden is not None and "hidden" not in row):  # a row without the state: asked again
            state: list = []
            extra = {"hidden": state} if hidden is not None else {}
            row = {"key": key, "p": self.inner.yes_probability(messages, grounding, **extra)}
            if hidden is not None:  # "" when the engine has none to give: not asked again
                row["hidden"] = pack_vector(state[0]) if state else ""
            self._replies[key] = row
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
        if hidden is not None and row.get("hidden"):
            hidden.append(unpack_vector(row["hidden"]))
        return row["p"]

    def choice_shares(self, messages: list[dict], options, grounding: Grounding | None = None) -> list[float] | None:
        key = "c:" + self.key(messages + [{"role": "options", "content": list(options)}], 0)
        row = self._replies.get(key)
        if row is None:
            row = {"key": key, "shares": self.inner.choice_shares(messages, options, grounding)}
            self._replies[key] = row
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
        return row["shares"]

    def count_tokens(self, messages: list[dict]) -> int:
        return self.inner.count_tokens(messages)

    def count_text(self, text: str) -> int:
        return self.inner.count_text(text)

    @property
    def reuses_passage_states(self) -> bool:
        return self.inner.reuses_passage_states

    def without_passage_states(self) -> Generator:
        return self.inner.without_passage_states()

    def warm_up(self, system_prompt: str = "") -> None:
        self.inner.warm_up(system_prompt)

    def precompute_states(self, system: str, head: str, blocks) -> int:
        return self.inner.precompute_states(system, head, blocks)


def pack_vector(vector) -> str:
    """A float vector as base64 of its float16 bytes (a hidden state in a JSON line: 3 KB, not 30)."""
    import base64

    import numpy as np

    return base64.b64encode(np.asarray(vector, dtype=np.float16).tobytes()).decode("ascii")


def unpack_vector(text: str):
    import base64

    import numpy as np

    return np.frombuffer(base64.b64decode(text), dtype=np.float16).astype(np.float32)

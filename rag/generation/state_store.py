"""Saved model states of passage blocks: one checked file per block, an LRU in memory, a cap on disk.

A state is the KV cache of one passage block as llama.cpp computed it behind the fixed prompt head.
It is only valid for the exact model file, head tokens and block tokens it was computed from, so its
key is a hash of all three (plus this file format and the engine's cache type); a file whose header
or checksum does not match is deleted and recomputed, never used. Files are written to a temporary
name and renamed, so a killed process leaves either the old state or the new one, whole.

>>> import tempfile, pathlib
>>> store = StateStore(pathlib.Path(tempfile.mkdtemp()), identity="model-sha")
>>> key = store.key([1, 2], [3, 4])
>>> store.put(key, BlockState((3, 4), 2, b"kv"))
>>> store.get(key).tokens, StateStore(store.folder, identity="other-model").get(key) is None
((3, 4), True)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

log = logging.getLogger(__name__)

STATE_FORMAT = 1
SUFFIX = ".kvstate"


@dataclass(frozen=True)
class BlockState:
    """A block's tokens, the position of its first token when computed, and the engine's state bytes."""

    tokens: tuple[int, ...]
    start: int
    data: bytes


@dataclass
class StoreStats:
    """Counters for `bench` and the logs (mutable: updated as the store is used)."""

    hits: int = 0
    misses: int = 0
    computed: int = 0


class StateStore:
    """Block states in `folder`, keyed by what they were computed from; LRU-capped in memory and on disk."""

    def __init__(self, folder: Path, identity: str, memory_mb: float = 256, disk_mb: float = 4096):
        self.folder = Path(folder)
        self.identity = identity  # model sha256, engine version and build (CPU features), cache type: what the bytes depend on
        self.memory_cap = int(memory_mb * 1024 * 1024)
        self.disk_cap = int(disk_mb * 1024 * 1024)
        self._memory: OrderedDict[str, BlockState] = OrderedDict()
        self._memory_bytes = 0
        self.stats = StoreStats()

    def key(self, head_tokens: Sequence[int], block_tokens: Sequence[int]) -> str:
        h = hashlib.sha256(f"{STATE_FORMAT}|{self.identity}|".encode())
        h.update(json.dumps([list(head_tokens), list(block_tokens)]).encode())
        return h.hexdigest()

    def get(self, key: str) -> BlockState | None:
        """The state for `key` from memory or disk; None (and counted as a miss) if absent or invalid."""
        state = self._memory.get(key)
        if state is not None:
            self._memory.move_to_end(key)
        else:
            state = self._read(key)
            if state is not None:
                self._remember(key, state)
        if state is None:
            self.stats.misses += 1
        else:
            self.stats.hits += 1
        return state

    def put(self, key: str, state: BlockState, text: str = "") -> None:
        """Keep `state` (computed for the block `text`) in memory and on disk."""
        self._remember(key, state)
        try:
            self._write(key, state, text_hash(text))
        except OSError as e:  # a full or read-only disk costs speed, not answers
            log.warning("state not saved key=%s error=%s", key[:12], e)

    def clear(self) -> int:
        """Drop every state, in memory and on disk (bench's cold start); return how many files went."""
        self._memory.clear()
        self._memory_bytes = 0
        files = list(self.folder.glob(f"*{SUFFIX}")) if self.folder.is_dir() else []
        for path in files:
            path.unlink(missing_ok=True)
        return len(files)

    def forget(self, key: str) -> None:
        """Drop a state from memory and disk (one llama.cpp would not load): the next use computes it anew."""
        state = self._memory.pop(key, None)
        if state is not None:
            self._memory_bytes -= len(state.data)
        self._path(key).unlink(missing_ok=True)
        log.warning("state forgotten key=%s (it will be recomputed)", key[:12])

    def _remember(self, key: str, state: BlockState) -> None:
        if key in self._memory:
            return
        self._memory[key] = state
        self._memory_bytes += len(state.data)
        while self._memory_bytes > self.memory_cap and len(self._memory) > 1:
            _, old = self._memory.popitem(last=False)
            self._memory_bytes -= len(old.data)

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}{SUFFIX}"

    def _write(self, key: str, state: BlockState, text_sha: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        header = {"format": STATE_FORMAT, "identity": self.identity, "key": key, "text_sha256": text_sha, "start": state.start,
                  "tokens": list(state.tokens), "bytes": len(state.data), "sha256": hashlib.sha256(state.data).hexdigest()}
        tmp = self.folder / f".{key}.{uuid.uuid4().hex[:8]}.tmp"
        with tmp.open("wb") as f:
            f.write(json.dumps(header).encode() + b"\n")
            f.write(state.data)
        os.replace(tmp, self._path(key))
        self._trim_disk()

    def _read(self, key: str) -> BlockState | None:
        path = self._path(key)
        try:
            with path.open("rb") as f:
                header = json.loads(f.readline())
                data = f.read()
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            return self._reject(path, f"unreadable ({e})")
        if not isinstance(header, dict):
            return self._reject(path, "no header")
        expected = {"format": STATE_FORMAT, "identity": self.identity, "key": key}
        wrong = [k for k, v in expected.items() if header.get(k) != v]
        if wrong:
            return self._reject(path, f"{', '.join(wrong)} differ")
        if header.get("bytes") != len(data) or header.get("sha256") != hashlib.sha256(data).hexdigest():
            return self._reject(path, "checksum mismatch")
        os.utime(path)  # recently used: the disk cap removes the least recently used first
        return BlockState(tuple(header["tokens"]), int(header["start"]), data)

    def _reject(self, path: Path, why: str) -> None:
        log.warning("state refused file=%s reason=%s (it will be recomputed)", path.name, why)
        path.unlink(missing_ok=True)
        return None

    def _trim_disk(self) -> None:
        files = sorted(self.folder.glob(f"*{SUFFIX}"), key=lambda p: p.stat().st_mtime)
        total = sum(p.stat().st_size for p in files)
        for path in files[:-1]:  # never the newest: it was just written for the question at hand
            if total <= self.disk_cap:
                break
            total -= path.stat().st_size
            path.unlink(missing_ok=True)

    def has_room(self) -> bool:
        """Whether one more state of the average size fits under the disk cap without pushing one out."""
        files = list(self.folder.glob(f"*{SUFFIX}")) if self.folder.is_dir() else []
        used = sum(p.stat().st_size for p in files)
        mean = used / len(files) if files else 0
        return used + mean <= self.disk_cap

    def mean_state_mb(self) -> float:
        """Average size of a saved state on disk, in MB (0 when none is saved)."""
        files = list(self.folder.glob(f"*{SUFFIX}")) if self.folder.is_dir() else []
        return sum(p.stat().st_size for p in files) / len(files) / 1e6 if files else 0.0


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def prune_states(folder: Path, keep_texts: set[str]) -> int:
    """Delete saved states whose block text is none of `keep_texts` (chunks an index update removed or changed).

    States of unchanged chunks stay: a state is keyed by the exact tokens it was computed from, so it
    remains exact in any index that holds the same chunk. Needs no model: headers name their text's hash.
    """
    if not folder.is_dir():
        return 0
    keep = {text_hash(t) for t in keep_texts}
    removed = 0
    for path in folder.glob(f"*{SUFFIX}"):
        try:
            with path.open("rb") as f:
                header = json.loads(f.readline())
        except (OSError, ValueError):
            header = None
        if not isinstance(header, dict) or header.get("text_sha256") not in keep:
            path.unlink(missing_ok=True)
            removed += 1
    return removed

"""Milvus connections and the two collections of one index, through pymilvus's `MilvusClient`.

The same client code talks to a Milvus cluster, a standalone server, Milvus Lite shared by several
processes (`python -m rag milvus-serve`, then `http://host:port`), or Milvus Lite started for this
process alone, for a local path ending in `.db`.
An index is two collections: `<name>` holds the chunks (text, source, offsets, title, url, content
hash, build number) and their vectors; `<name>_meta` holds the manifest, split into rows, and
`head-<version>-<n>` rows, the newest naming the committed manifest: adding a head row is the commit
point. (Indexes written with the single `head` row of before 2026-11-30 are not found, so they rebuild.)

>>> is_lite("index/milvus.db"), is_lite("http://milvus:19530")
(True, False)
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ...errors import IndexCorruptError, StoreError

HEAD = "head"
PART_CHARS = 60_000  # a manifest row's text; VARCHAR holds at most 65,535 bytes (ASCII JSON: 1 byte a char)
TEXT_BYTES = 65_535


def is_lite(uri: str) -> bool:
    """A local path (Milvus Lite in this process) rather than a server address."""
    return not re.match(r"^(https?|tcp|grpc)://|^unix:", uri)


def resolve_uri(uri: str, index_dir: Path) -> str:
    """The setting, or Milvus Lite inside the index folder when it is empty."""
    return uri or str(index_dir / "milvus.db")


@contextmanager
def milvus_errors(uri: str, doing: str) -> Iterator[None]:
    """Turn pymilvus and gRPC failures into one-line StoreErrors that name the store."""
    from pymilvus.exceptions import MilvusException

    try:
        yield
    except MilvusException as e:
        message = str(getattr(e, "message", "") or e).splitlines()[0]
        raise StoreError(f"Milvus at {uri} failed while {doing}: {message}") from None
    except Exception as e:  # grpc.RpcError and friends carry multi-line reprs
        if type(e).__module__.split(".")[0] not in ("grpc", "pymilvus"):
            raise
        raise StoreError(f"Milvus at {uri} failed while {doing}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None


def connect(uri: str, token: str = "", timeout: float = 10.0):
    """A MilvusClient, or a StoreError within about `timeout` seconds that says what is wrong."""
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise StoreError("store = milvus needs pymilvus and milvus-lite: pip install -r requirements.txt") from None
    if is_lite(uri):
        _check_lite_path(uri)
    try:
        with milvus_errors(uri, "connecting"):
            return MilvusClient(uri=uri, token=token, timeout=timeout)
    except StoreError as e:
        raise StoreError(f"{e} (is it running? connect timeout {timeout:g} s, setting milvus_timeout_s)") from None


def _check_lite_path(uri: str) -> None:
    """Milvus Lite keeps an index in one file and serves one process: say what is wrong in one line,
    rather than let milvus_lite log a traceback."""
    _import_lite()
    path = Path(uri)
    if path.suffix != ".db":
        raise StoreError(f"milvus_uri {uri!r} is neither http://host:port nor a Milvus Lite path ending in .db")
    if not re.fullmatch(r"[A-Za-z0-9.\-_]{1,36}", path.name):
        raise StoreError(f"milvus_uri {uri}: Milvus Lite wants a file name of at most 36 letters, digits, '.', '-' or '_'")
    if path.is_dir():
        raise StoreError(f"milvus_uri {uri} is a folder (Milvus Lite 3's layout), not a Milvus Lite 2.5 data file: "
                         f"remove it and run `python -m rag index --store milvus` to rebuild")
    path.parent.mkdir(parents=True, exist_ok=True)
    if _lock_held(path.parent / f".{path.name}.lock", path):
        raise StoreError(
            f"the Milvus Lite data at {uri} is open in another process (Milvus Lite serves one process); "
            f"to share it, run `python -m rag milvus-serve --milvus-uri {uri} --port 19530` and use milvus_uri = http://127.0.0.1:19530"
        )


def _import_lite() -> None:
    """Import milvus_lite before pymilvus does: 2.5 imports the deprecated pkg_resources, which warns."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import milvus_lite  # noqa: F401
        except ImportError:
            raise StoreError("a Milvus Lite path (.db) needs milvus-lite: pip install -r requirements.txt") from None


def _lock_held(lock: Path, data: Path) -> bool:
    """Whether another process holds the lock Milvus Lite takes on its data file (a POSIX lock)."""
    import fcntl
    import os

    from milvus_lite.server_manager import server_manager_instance

    if str(data.absolute().resolve()) in server_manager_instance._servers:
        return False  # our own in-process server: pymilvus reuses it
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def serve_lite(uri: str, host: str, port: int) -> None:
    """Serve a Milvus Lite data file on host:port until interrupted, so that several processes share it."""
    import signal
    import threading

    _check_lite_path(uri)
    from milvus_lite.server import Server
    server = Server(str(Path(uri).absolute()), f"{host}:{port}")
    if not (server.init() and server.start()):
        raise StoreError(f"Milvus Lite could not serve {uri} on {host}:{port} (is the port taken, or the file open elsewhere?)")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        server.stop()  # unlocks, waits 2 s for the server, then kills it


def server_has_bm25(client, uri: str) -> bool:
    """Whether `milvus_bm25 = auto` uses Milvus's BM25: on Milvus >= 2.5 (collection-wide statistics,
    TEXT_MATCH for the IDF), not on Milvus Lite, which serves one machine (and Lite 2.5 does not even
    say its version: UNIMPLEMENTED)."""
    if is_lite(uri):
        return False
    try:
        with quiet_pymilvus():
            version = str(client.get_server_version())
    except Exception as e:
        if "UNIMPLEMENTED" in repr(e):
            return False
        with milvus_errors(uri, "reading the server version"):
            raise
    if "lite" in version.lower():
        return False
    numbers = [int(x) for x in re.findall(r"\d+", version)[:2]]
    return len(numbers) == 2 and tuple(numbers) >= (2, 5)


@contextmanager
def quiet_pymilvus() -> Iterator[None]:
    """pymilvus logs a traceback for each refused call; around calls whose refusal we expect, it is noise."""
    logger = logging.getLogger("pymilvus.decorators")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def create_meta(client, name: str, uri: str) -> None:
    """The manifest collection: a text body per row (Milvus needs a vector field: a 2-d placeholder)."""
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False)
    schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("body", DataType.VARCHAR, max_length=TEXT_BYTES)
    schema.add_field("unused", DataType.FLOAT_VECTOR, dim=2)
    index = client.prepare_index_params()
    index.add_index("unused", index_type="FLAT", metric_type="IP")
    with milvus_errors(uri, f"creating collection {name}"):
        client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong")


def load(client, uri: str, names: list[str]) -> None:
    """Load collections for search (a no-op when loaded; Milvus Lite starts with them released)."""
    with milvus_errors(uri, "loading the index"):
        for name in names:
            if client.has_collection(name):
                client.load_collection(name)


def read_head(client, name: str, uri: str) -> dict | None:
    """The committed head ({version, parts, sha256, stale_chunks}), or None if nothing was committed.

    Head rows are only ever added (`commit_head`): Milvus Lite 2.5's upsert deletes before it inserts,
    and a reader between the two saw no head at all (measured: 53 of 4,536 reads during 300 upserts).
    The newest row (highest key) is the head."""
    with milvus_errors(uri, "reading the index head"):
        if not client.has_collection(name):
            return None
        rows = client.query(name, filter=f'key like "{HEAD}-%"', output_fields=["key", "body"], limit=1024)
    if not rows:
        return None
    try:
        head = json.loads(max(rows, key=lambda r: r["key"])["body"])
        return head if isinstance(head, dict) and isinstance(head.get("version"), int) else _bad_head()
    except json.JSONDecodeError:
        return _bad_head()


def _bad_head() -> dict:
    raise IndexCorruptError("the Milvus index head is not valid JSON")


def read_manifest(client, name: str, uri: str, head: dict) -> dict:
    """The manifest the head names, checked against its sha256."""
    keys = [_part_key(head["version"], i) for i in range(int(head.get("parts", 0)))]
    with milvus_errors(uri, "reading the index manifest"):
        rows = client.get(name, ids=keys, output_fields=["body"]) if keys else []
    bodies = {r["key"]: r["body"] for r in rows}
    text = "".join(bodies.get(k, "") for k in keys)
    if len(bodies) != len(keys) or hashlib.sha256(text.encode()).hexdigest() != head.get("sha256"):
        raise IndexCorruptError("the Milvus index manifest is incomplete or fails its checksum")
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError:
        raise IndexCorruptError("the Milvus index manifest is not valid JSON") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("documents"), dict):
        raise IndexCorruptError("the Milvus index manifest lacks its documents")
    return manifest


def write_manifest(client, name: str, uri: str, manifest: dict, version: int) -> dict:
    """Write the manifest's rows for `version` (not yet committed); return the head that commits them."""
    text = json.dumps(manifest, ensure_ascii=True, separators=(",", ":"))
    parts = [text[i : i + PART_CHARS] for i in range(0, len(text), PART_CHARS)] or [""]
    rows = [{"key": _part_key(version, i), "body": p, "unused": [0.0, 0.0]} for i, p in enumerate(parts)]
    with milvus_errors(uri, "writing the index manifest"):
        client.upsert(name, rows)
    return {"version": version, "parts": len(parts), "sha256": hashlib.sha256(text.encode()).hexdigest()}


def commit_head(client, name: str, uri: str, head: dict) -> None:
    """The commit point: a new head row (an insert of one row is atomic), then older head rows go.
    A version's head is written at most twice: with rows left to delete (`stale_chunks`), then without."""
    key = f"{HEAD}-{head['version']:012d}-{0 if head.get('stale_chunks') else 1}"
    with milvus_errors(uri, "committing the index"):
        keys = [r["key"] for r in client.query(name, filter=f'key like "{HEAD}-%"', output_fields=["key"], limit=1024)]
        if key not in keys:  # never rewrite a row readers may be reading (see read_head)
            client.upsert(name, [{"key": key, "body": json.dumps(head), "unused": [0.0, 0.0]}])
        older = [k for k in keys if k < key]
        if older:
            client.delete(name, ids=older)


def delete_manifests_except(client, name: str, uri: str, version: int) -> None:
    """Remove manifest rows of other versions (earlier commits, interrupted builds)."""
    keep = f"m{version}-"
    with milvus_errors(uri, "removing old manifests"):
        rows = client.query(name, filter='key like "m%"', output_fields=["key"], limit=16_384)
        old = [r["key"] for r in rows if not r["key"].startswith(keep)]
        if old:  # by key: Milvus Lite 2.5 has no `not` in filters
            client.delete(name, ids=old)


def _part_key(version: int, part: int) -> str:
    return f"m{version}-{part}"

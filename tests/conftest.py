"""Shared fixtures. Fakes are real selectable backends: `embedder="hashing"`, `engine="echo"`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rag.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
SHARED = ROOT.parent / "shared"
UK_DOC = "000_cfdc63a43af77a2b.txt"
MEKONG_DOC = "002_c8f5d3a0ab282200.txt"


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """A private copy of the seed documents."""
    d = tmp_path / "docs"
    shutil.copytree(SEEDS, d)
    return d


@pytest.fixture
def fake_settings(tmp_path: Path, docs: Path) -> Settings:
    """Hashing embedder + echo generator: no model files, milliseconds per test."""
    return Settings(
        docs_dir=docs, index_dir=tmp_path / "index", cache_dir=tmp_path / "cache",
        embedder="hashing", engine="echo",
    )


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    """One cache folder per test session for assembled/dequantized models."""
    return tmp_path_factory.mktemp("model-cache")


def pytest_terminal_summary(terminalreporter):
    """List the files tests left in artifacts/ (the browser test's screenshot) in the CI log."""
    shots = sorted((ROOT / "artifacts").glob("*.png"))
    if shots:
        terminalreporter.section("artifacts")
        for shot in shots:
            terminalreporter.write_line(str(shot))

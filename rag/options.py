"""Command-line options shared by every command (`cli`, `evaluate`, `bench`, `ui.py`), and the
settings they make. Below all of them, so imports point one way: commands -> options -> settings."""

from __future__ import annotations

import argparse
from pathlib import Path

from .settings import Settings


def add_common_options(p: argparse.ArgumentParser) -> None:
    """The options every command shares: where the documents, index and models are."""
    g = p.add_argument_group("common options")
    g.add_argument("--docs", type=Path, help="documents folder (default: seeds)")
    g.add_argument("--index", type=Path, help="index folder (default: index)")
    g.add_argument("--embedder", help="embedding model: packaged:all-MiniLM-L6-v2 (default), a path or a Hub id")
    g.add_argument("--generator", help="generator model: packaged:qwen2.5-coder-1.5b-instruct (default), a .gguf path or a Hub id")
    g.add_argument("--engine", choices=["auto", "llama_cpp", "transformers", "openai", "echo"], help="generation engine (default: auto)")
    g.add_argument("--store", choices=["faiss", "milvus"], help="where the index lives (default: faiss, files in --index)")
    g.add_argument("--milvus-uri", help="Milvus: http://host:19530, or a Milvus Lite path ending in .db (default: INDEX/milvus.db)")
    g.add_argument("--settings", type=Path, help="settings file (default: rag.toml if present)")
    g.add_argument("-v", "--verbose", action="store_true", help="log what happens (to stderr)")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings with the command line on top: flag > environment > settings file > default."""
    overrides = {
        "docs_dir": getattr(args, "docs", None), "index_dir": getattr(args, "index", None),
        "embedder": getattr(args, "embedder", None), "generator": getattr(args, "generator", None),
        # --k: `search`'s hits, and the most passages a prompt gets; --evidence-tokens: the prompt's budget
        # (either prompt: whole chunks from states, or sentence windows)
        "engine": getattr(args, "engine", None), "top_k": getattr(args, "k", None), "max_passages": getattr(args, "k", None),
        "evidence_tokens": getattr(args, "evidence_tokens", None),
        "evidence_tokens_windows": getattr(args, "evidence_tokens", None),
        "max_new_tokens": getattr(args, "max_new_tokens", None),
        "store": getattr(args, "store", None), "milvus_uri": getattr(args, "milvus_uri", None),
    }
    return Settings.load(overrides=overrides, settings_file=getattr(args, "settings", None))

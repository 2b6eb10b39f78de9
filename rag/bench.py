"""`python -m rag bench`: speed and memory figures (filled in by the speed issue)."""

from __future__ import annotations

from pathlib import Path


def add_parser(sub, common) -> None:
    p = sub.add_parser("bench", help="measure speed and memory", description="Benchmark indexing, retrieval and generation.")
    p.add_argument("--json", dest="json_out", type=Path, help="write the figures here")
    common(p)
    p.set_defaults(func=run_bench)


def run_bench(args) -> int:
    from .errors import RagError

    raise RagError("bench is not implemented yet")

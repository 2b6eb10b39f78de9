"""Question files (JSONL, one `{"question": ...}` per line; other keys such as `id` are kept).

Used by batch `ask`/`search`, by `bench`, and for the chat's example questions. A documents folder
may carry its own example questions in `questions.jsonl`: it is not indexed (only .txt, .md, .html
and .pdf are), and it keeps a folder's examples with that folder, so other documents never get the
seed documents' questions.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / QUESTIONS_FILE).write_text('{"question": "Why?"}\\n')
>>> folder_questions(d), folder_questions(d / "nothing-here")
(['Why?'], [])
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from .errors import RagError

QUESTIONS_FILE = "questions.jsonl"


def read_questions(path: Path) -> Iterator[dict]:
    """Lines of a JSONL file with at least {"question"}; a bad line is a clear error."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise RagError(f"cannot read {path}: {e}") from None
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise RagError(f"{path}:{n}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict) or "question" not in row:
            raise RagError(f"{path}:{n}: each line needs a \"question\"")
        yield row


def question_texts(path: Path) -> list[str]:
    """Just the questions of a question file, in order."""
    return [str(row["question"]) for row in read_questions(path)]


def folder_questions(docs_dir: Path) -> list[str]:
    """The questions in `docs_dir/questions.jsonl`; none if the folder has no such file."""
    path = docs_dir / QUESTIONS_FILE
    return question_texts(path) if path.is_file() else []

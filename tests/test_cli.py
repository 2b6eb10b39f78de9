import json
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, UK_DOC


def run(*args, cwd=ROOT, env_extra=None):
    import os

    env = dict(os.environ, RAG_EMBEDDER="hashing", RAG_ENGINE="echo")
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "rag", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


def test_help_on_each_command():
    for cmd in ("index", "search", "ask", "eval", "bench"):
        r = run(cmd, "--help")
        assert r.returncode == 0 and "--docs" in r.stdout and "--index" in r.stdout


def test_index_then_ask_json(docs: Path, tmp_path: Path):
    ix = tmp_path / "ix"
    r = run("index", "--docs", str(docs), "--index", str(ix))
    assert r.returncode == 0, r.stderr
    assert "2 added" in r.stdout
    r = run("index", "--docs", str(docs), "--index", str(ix))
    assert "up to date" in r.stdout and "0 chunks embedded" in r.stdout
    r = run("ask", "--json", "--docs", str(docs), "--index", str(ix), "What did the UK fund?")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) >= {"question", "answer", "abstained", "citations", "passages", "timings"}
    assert set(out["timings"]) >= {"retrieve_ms", "ttft_s", "total_s", "prompt_tokens", "completion_tokens"}
    c = out["citations"][0]
    assert set(c) >= {"marker", "source", "start", "end", "text"}
    assert (docs / c["source"]).read_text()[c["start"] : c["end"]] == c["text"]
    p = out["passages"][0]
    assert set(p) >= {"rank", "source", "start", "end", "text", "score"}
    assert (docs / p["source"]).read_text()[p["start"] : p["end"]] == p["text"]


def test_ask_builds_the_index_when_missing_and_batch_keeps_order(docs, tmp_path):
    qfile = tmp_path / "q.jsonl"
    qfile.write_text('{"id": "a", "question": "What did the UK fund?"}\n{"id": "b", "question": "Where was IMM6 held?"}\n'
                     '{"id": "c", "question": "   "}\n')
    r = run("ask", "--json", "--questions", str(qfile), "--docs", str(docs), "--index", str(tmp_path / "new-ix"))
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["id"] for row in rows] == ["a", "b", "c"]
    assert rows[0]["citations"][0]["source"] == UK_DOC
    assert "empty" in rows[2]["error"]
    r = run("search", "--json", "--questions", str(qfile), "--docs", str(docs), "--index", str(tmp_path / "new-ix"))
    assert [json.loads(line)["id"] for line in r.stdout.splitlines()] == ["a", "b", "c"]


def test_search_json(docs, tmp_path):
    r = run("search", "--json", "--k", "3", "--docs", str(docs), "--index", str(tmp_path / "ix"), "UK grant")
    out = json.loads(r.stdout)
    assert out["question"] == "UK grant" and len(out["passages"]) == 3


def test_errors_exit_2_with_one_line(docs, tmp_path):
    cases = [
        ("ask", "--docs", str(tmp_path / "nope"), "--index", str(tmp_path / "ix"), "hi"),
        ("ask", "--docs", str(docs), "--index", str(tmp_path / "ix"), "   "),
        ("ask", "--docs", str(docs), "--index", str(tmp_path / "ix"), "--questions", str(tmp_path / "missing.jsonl"), "--json"),
    ]
    for args in cases:
        r = run(*args)
        assert r.returncode == 2, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
        assert "Traceback" not in r.stderr
    r = run("ask", "--docs", str(docs), "--index", str(tmp_path / "ix"), "What did the UK fund?", env_extra={"RAG_GENERATOR": "packaged:nope", "RAG_ENGINE": "llama_cpp"})
    assert r.returncode == 2 and "unknown packaged model" in r.stderr.strip().splitlines()[-1]
    assert "Traceback" not in r.stderr


def test_batch_search_is_retrieval_only(docs, tmp_path, monkeypatch, capsys):
    """`search --json --questions` never loads the model: with a generator that cannot load, it still succeeds."""
    from rag.cli import main

    qfile = tmp_path / "q.jsonl"
    qfile.write_text('{"id": "a", "question": "What did the UK fund?"}\n{"id": 7, "question": "   "}\n'
                     '{"question": "Where was IMM6 held?"}\n')
    monkeypatch.setenv("RAG_EMBEDDER", "hashing")
    monkeypatch.setenv("RAG_ENGINE", "llama_cpp")
    monkeypatch.setenv("RAG_GENERATOR", "packaged:nope")  # loading this model raises ModelError
    ix = str(tmp_path / "ix")
    code = main(["search", "--json", "--k", "2", "--questions", str(qfile), "--docs", str(docs), "--index", ix])
    out, err = capsys.readouterr()
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [set(r) for r in rows] == [{"id", "question", "passages"}, {"id", "question", "error"}, {"id", "question", "passages"}]
    assert [r["id"] for r in rows] == ["a", "7", None]
    assert "empty" in rows[1]["error"]
    assert rows[0]["passages"][0]["source"] == UK_DOC and len(rows[0]["passages"]) == 2
    # Each line has the shape of a single `search --json`.
    assert main(["search", "--json", "--k", "2", "--docs", str(docs), "--index", ix, "What did the UK fund?"]) == 0
    single = json.loads(capsys.readouterr().out)
    assert single["passages"] == rows[0]["passages"]

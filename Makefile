# Two entry points (see README): `make book` builds the book, `make test` runs the tests.
# Both create the virtual environment .venv and install lrtools with pinned dependencies first.
PYTHON ?= python3
VENV ?= .venv
PROFILE ?= default
PY := $(VENV)/bin/python

.PHONY: book test browser-test lint clean-book

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

book: $(VENV)/.installed
	$(PY) -m lrtools.runner build --profile $(PROFILE)

# --dist loadgroup: the tests that share the smoke book (tests/test_book*.py, test_browser.py)
# run in one worker, so the book is built once. The browser test skips without Chromium.
test: $(VENV)/.installed
	$(PY) -m pytest -n 2 --dist loadgroup

# The browser check alone: smoke book, every page in headless Chromium with the network off,
# screenshots in the built book's _build/screenshots/ (Debian: apt-get install chromium).
browser-test: $(VENV)/.installed
	$(PY) -m pytest tests/test_browser.py -v

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check lrtools tests benchmarks

clean-book:
	rm -rf _build book/chapters

# Every target sets itself up: a fresh machine needs only python3 (>= 3.11).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MANIFEST := $(VENV)/.manifest
PACKAGES := eventstore projections runtime tools

.PHONY: demo test bench bench-quick lint typecheck clean FORCE

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# The folders install as chatledger.<folder> through a strict editable install: a tree of links
# under build/ that mypy and every import see. It must be redone when a package file is added
# or removed, so the manifest (the sorted file list) changes only then, and the install with it.
# The web view's templates and static files are package data and count as package files.
$(MANIFEST): FORCE | $(PY)
	@[ -d build ] || rm -f $(STAMP)
	@find $(PACKAGES) \( -name '*.py' -o -name py.typed -o -path '*/serve/templates/*' \
		-o -path '*/serve/static/*' \) | LC_ALL=C sort > $@.new
	@if cmp -s $@.new $@; then rm $@.new; else mv $@.new $@; fi

$(STAMP): pyproject.toml $(MANIFEST)
	$(PY) -m pip install --quiet -e '.[dev,bench]' --config-settings editable_mode=strict
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/chatledger demo

lint: $(STAMP)
	$(VENV)/bin/ruff check $(PACKAGES) tests

typecheck: $(STAMP)
	$(VENV)/bin/mypy

test: lint typecheck
	$(PY) -P -m pytest

bench: $(STAMP)
	$(PY) -m chatledger.tools.bench

bench-quick: $(STAMP)
	$(PY) -m chatledger.tools.bench --quick

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache chatledger.db*

# Every target sets itself up: a fresh machine needs only python3 (>= 3.11).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench bench-quick lint typecheck clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# An editable install records which packages exist: re-run it when one is added.
$(STAMP): pyproject.toml $(wildcard */__init__.py */*/__init__.py) | $(PY)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/chatledger demo

lint: $(STAMP)
	$(VENV)/bin/ruff check eventstore projections runtime tools tests

typecheck: $(STAMP)
	$(VENV)/bin/mypy

test: lint typecheck
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) -m tools.bench

bench-quick: $(STAMP)
	$(PY) -m tools.bench --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache chatledger.db*

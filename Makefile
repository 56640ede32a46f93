# Two commands matter: `make run` (the whole local stack) and `make test` (every test tier).
# Both install what they need (venv, npm packages, tools) and are idempotent.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP_PY := $(VENV)/.installed
STAMP_NODE := node_modules/.installed
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: run test lint typecheck unit install tools bench clean help

help:
	@echo "make run   - start Azurite, the Microsoft 365 simulator and the Functions host (http://127.0.0.1:7071)"
	@echo "make test  - lint, type-check and run every test tier"
	@echo "make bench - run the benchmarks (figures in docs/benchmarks.md); BENCH_ARGS=--quick for a smoke size"

$(STAMP_PY): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

$(STAMP_NODE): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

install: $(STAMP_PY) $(STAMP_NODE)

tools:
	@scripts/ensure_tools.sh
	@scripts/ensure_chromium.sh

lint: $(STAMP_PY)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache

typecheck: $(STAMP_PY)
	$(VENV)/bin/mypy

test: install tools lint typecheck
	$(VENV)/bin/pytest $(PYTEST_ARGS)

unit: $(STAMP_PY)
	$(VENV)/bin/pytest tests/unit $(PYTEST_ARGS)

run: install
	$(PY) -m local.run

bench: install
	@for b in bench/*.py; do case "$$b" in */__init__.py|*/_*.py) ;; *) echo "== $$b"; $(PY) $$b $(BENCH_ARGS) || exit 1;; esac; done

clean:
	rm -rf $(VENV) .venv-tools node_modules .azurite .local .pytest_cache .mypy_cache .ruff_cache dist

# Two commands are the whole set-up: `make run` and `make test`. Each does its own idempotent set-up.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STATIC := src/tandem/server/static
SDK_SOURCES := $(shell find sdk/src sdk/build.mjs -type f 2>/dev/null)
HOST ?= 127.0.0.1
PORT ?= 8000
DATA_DIR ?= data

.PHONY: help setup run test check lint test-py test-sdk fuzz chromium clean generate

help:
	@echo "make run   - set up, then serve the demo shop and agent console on http://$(HOST):$(PORT)"
	@echo "make test  - set up (incl. Debian chromium), then lint and run every test"
	@echo "make check - (developers) lint, SDK tests and every Python test but the browser ones"
	@echo "make generate - (developers) rewrite sdk/src/generated/ after changing a message or REST body"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall when the project's metadata changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

sdk/node_modules/.installed: sdk/package.json sdk/package-lock.json
	cd sdk && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The SDK and console bundles are built into the package's static files; never committed.
$(STATIC)/sdk/tandem.js: sdk/node_modules/.installed $(SDK_SOURCES)
	cd sdk && node build.mjs

setup: $(VENV)/.installed $(STATIC)/sdk/tandem.js

# The SDK's wire and REST types (sdk/src/generated/), from the msgspec definitions. Committed, so
# the SDK builds and type-checks alone; tests/protocol/test_typescript.py fails when they drift.
generate: $(VENV)/.installed
	$(BIN)/python -m tandem.protocol.typescript

chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  echo "Installing Debian chromium for the browser tests"; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi
	@/usr/bin/chromium --version

run: setup
	$(BIN)/tandem serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

lint: setup
	$(BIN)/ruff check src tests bench fuzzing
	$(BIN)/ruff format --check src tests bench fuzzing
	$(BIN)/mypy
	cd sdk && npx tsc --noEmit -p .

test-sdk: setup
	cd sdk && npm test

# pytest exits 5 when it collects no test: that fails here too, as it should.
test-py: setup chromium
	$(BIN)/python -m pytest

# A coverage-guided fuzz of every parser that takes bytes from the network, bounded by time so a
# busy machine takes no longer. Any crash fails it; so does a fuzz that got through fewer than
# FUZZ_MIN_RUNS inputs (it did not really run).
FUZZ_SECONDS ?= 20
FUZZ_MIN_RUNS ?= 10000
fuzz: setup
	@$(BIN)/python fuzzing/fuzz_codec.py -max_total_time=$(FUZZ_SECONDS) -max_len=10000 > .fuzz.log 2>&1 || { cat .fuzz.log; exit 1; }
	@grep -E "^Done [0-9]+ runs" .fuzz.log
	@runs=$$(sed -nE 's/^Done ([0-9]+) runs.*/\1/p' .fuzz.log); \
	  [ "$${runs:-0}" -ge $(FUZZ_MIN_RUNS) ] || { echo "fuzz: $${runs:-0} runs, fewer than $(FUZZ_MIN_RUNS)"; exit 1; }

test: lint test-sdk test-py fuzz

# For developers between commits, not part of the set-up: no browser tests, so no Chromium.
check: lint test-sdk
	$(BIN)/python -m pytest -m "not e2e"

clean:
	rm -rf $(VENV) sdk/node_modules $(STATIC)/sdk $(STATIC)/console/*.js

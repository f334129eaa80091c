# Two commands are the whole set-up: `make run` and `make test`. Each does its own idempotent set-up.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STATIC := src/tandem/server/static
SDK_SOURCES := $(shell find sdk/src sdk/patches sdk/build.mjs sdk/rrweb-patches.mjs -type f 2>/dev/null)
HOST ?= 127.0.0.1
PORT ?= 8000
DATA_DIR ?= data

.PHONY: help setup run test check lint test-py test-sdk fuzz chromium lock dist clean generate bench \
	lint-ruff lint-mypy lint-tsc pytest-fast pytest-e2e fuzz-run fuzz-corpus

# Python writes its bytecode, and pytest its rewritten test modules, even where the environment
# says not to (PYTHONDONTWRITEBYTECODE): a warm set-up then compiles nothing again, in each of the
# test processes (about 3 s of CPU each: the xdist workers, every `python -m tandem` a test runs).
unexport PYTHONDONTWRITEBYTECODE

help:
	@echo "make run   - set up, then serve the demo shop and agent console on http://$(HOST):$(PORT)"
	@echo "make test  - set up (incl. Debian chromium), then lint and run every test"
	@echo "make check - (developers) lint, SDK tests and every Python test but the browser ones"
	@echo "make lock  - (developers) re-resolve requirements/*.txt after a dependency change in pyproject.toml"
	@echo "make dist  - build the release into dist/: wheel and sdist (with the built SDK and console), runtime lock"
	@echo "make generate - (developers) rewrite sdk/src/generated/ after changing a message or REST body"
	@echo "make bench - (developers) Tandem's relay against bare relays in one run (bench/RESULTS.md)"
	@echo "make screenshots - (developers) remake docs/screenshots/ (the tour at three sizes, workspace, admin)"
	@echo "make fuzz  - (developers) the bounded fuzz alone (FUZZ_SECONDS=600 for a longer one)"
	@echo "make fuzz-corpus - (developers) remake fuzzing/corpus, the fuzz's seed inputs (FUZZ_CORPUS_SECONDS)"

# Pinned dependencies, with hashes, generated from pyproject.toml by `make lock`:
#   requirements/runtime.txt  what `tandem` needs to run (docs/deployment.md installs the wheel with it)
#   requirements/dev.txt      that plus the dev extra (tests, linters, uv, build): the .venv
#   requirements/fuzz.txt     the runtime plus the fuzz extra (atheris), for `make fuzz`
LOCK_DIR := requirements
LOCK := $(LOCK_DIR)/dev.txt

# The dependencies come only from the lock, every file checked against its hash. A new lock makes a
# new virtualenv, so nothing the lock dropped stays behind.
$(VENV)/.deps: $(LOCK)
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --only-binary :all: -r $(LOCK)
	touch $@

# The project itself, editable (tests import src/), without dependencies (they came from the lock)
# and built by the locked hatchling; reinstalled when its metadata (or version) changes.
$(VENV)/.installed: pyproject.toml src/tandem/__init__.py $(VENV)/.deps
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# Re-resolve the locks after a change to pyproject.toml's dependencies, keeping every pin that still
# fits; `make lock UPGRADE=1` moves everything to the newest allowed versions. The dev lock is
# resolved first and constrains the others, so a package has the same version in all three. It is
# universal (any OS, Python >= 3.11); the fuzz lock is for Linux x86_64 with CPython 3.11, where
# atheris has a wheel.
UV_COMPILE = $(BIN)/uv pip compile pyproject.toml --quiet --generate-hashes --custom-compile-command "make lock" $(if $(UPGRADE),--upgrade)
lock: $(VENV)/.installed
	$(UV_COMPILE) --universal --python-version 3.11 --extra dev -o $(LOCK_DIR)/dev.txt
	$(UV_COMPILE) --universal --python-version 3.11 -c $(LOCK_DIR)/dev.txt -o $(LOCK_DIR)/runtime.txt
	$(UV_COMPILE) --python-version 3.11 --python-platform x86_64-manylinux_2_17 --only-binary atheris \
	  --extra fuzz -c $(LOCK_DIR)/dev.txt -o $(LOCK_DIR)/fuzz.txt

sdk/node_modules/.installed: sdk/package.json sdk/package-lock.json
	cd sdk && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The SDK and console bundles are built into the package's static files; never committed.
$(STATIC)/sdk/tandem.js: sdk/node_modules/.installed $(SDK_SOURCES) src/tandem/__init__.py
	cd sdk && node build.mjs

# What the package ships, as a CycloneDX SBOM (Python and npm), from the two lock files; it goes
# into the wheel with the static files and is served to admins (docs/security-updates.md).
$(STATIC)/sbom/sbom.cdx.json: $(LOCK_DIR)/runtime.txt sdk/package-lock.json src/tandem/sbom.py src/tandem/__init__.py $(VENV)/.installed
	$(BIN)/python -m tandem.sbom $@

setup: $(VENV)/.installed $(STATIC)/sdk/tandem.js $(STATIC)/sbom/sbom.cdx.json

# The SDK's wire and REST types (sdk/src/generated/), from the msgspec definitions. Committed, so
# the SDK builds and type-checks alone; tests/protocol/test_typescript.py fails when they drift.
generate: $(VENV)/.installed
	$(BIN)/python -m tandem.protocol.typescript

# Debian's chromium-headless-shell runs the browser tests (tests/e2e/conftest.py): the same
# Chromium as Debian's chromium, built as the lightweight headless browser, at about half the CPU.
# chromium itself runs `make bench`. Both in one apt-get, so they stay at the same version.
HEADLESS_SHELL := /usr/lib/chromium/chromium-headless-shell
chromium:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x $(HEADLESS_SHELL) ]; then \
	  echo "Installing Debian chromium and chromium-headless-shell for the browser tests"; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    chromium chromium-headless-shell fonts-dejavu-core >/dev/null; \
	fi
	@/usr/bin/chromium --version
	@$(HEADLESS_SHELL) --version

run: setup
	$(BIN)/tandem serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

# The checks run side by side (`make -j`), each one's output printed whole when it ends. mypy
# keeps its cache in .mypy_cache and tsc in sdk/node_modules/.cache, so a warm run checks only
# what changed.
PARALLEL = $(MAKE) --no-print-directory -j --output-sync=target
lint: setup
	@$(PARALLEL) lint-ruff lint-mypy lint-tsc

lint-ruff:
	$(BIN)/ruff check src tests bench fuzzing
	$(BIN)/ruff format --check src tests bench fuzzing

lint-mypy:
	$(BIN)/mypy

# tsc's incremental build info still has it parse and bind all 775 files (about 4.5 s of CPU):
# its verdict is kept until one of its inputs changes (a file added or removed changes its
# directory's time, so both count). A failure writes no stamp.
TSC_INPUTS := sdk/tsconfig.json sdk/node_modules/.installed $(shell find sdk/src sdk/test sdk/build.mjs sdk/rrweb-patches.mjs 2>/dev/null)
TSC_STAMP := sdk/node_modules/.cache/tsc.passed
lint-tsc: $(TSC_STAMP)
$(TSC_STAMP): $(TSC_INPUTS)
	cd sdk && node_modules/.bin/tsc --noEmit -p . --incremental --tsBuildInfoFile node_modules/.cache/tsc.tsbuildinfo
	touch $@

# What `npm test` runs (sdk/package.json), without npm's own start-up (0.3 s of CPU).
test-sdk: setup
	cd sdk && node run-tests.mjs

# The Python tests run on several processes (pytest-xdist; each has its own servers, ports, data
# directories, PostgreSQL schemas and Redis channels). The server tests mostly wait on sockets, so
# more workers than cores pays. The tests that mostly wait (real processes, the product's own
# timeouts) are handed out first, to half the workers, while the others run the rest
# (`--slow-first`, tests/schedule.py): none of them starts last. The browser tests are a pass of
# their own (pytest-e2e) with one Chromium per worker; `make test` runs it beside the other pass.
# pytest exits 5 when it collects no test: that fails here too, as it should.
# The browser tests wait on round trips too: three workers (three headless shells) finish sooner
# than two on two cores (bench/RESULTS.md, "Browser pass"). Three workers for the other tests too:
# each worker pays its own start-up and collection (about 3 s of CPU), and four finished no sooner
# than three on two cores (bench/RESULTS.md, "Non-browser pass and make check").
# Scaled by the machine's cores (`nproc`: those this process may run on), so a bigger CI machine
# is used whole: one worker per core and one more, for each pass (3 and 3 on the 2-core machines
# these figures come from).
CORES := $(shell nproc 2>/dev/null || echo 2)
PYTEST_WORKERS ?= $(shell echo $$(( $(CORES) + 1 )))
E2E_WORKERS ?= $(shell echo $$(( $(CORES) + 1 )))
# Every browser test lives in tests/e2e (tests/conftest.py marks them by that path), so the pass
# collects only there: each worker collecting the whole suite to deselect 1,000 tests cost about
# 6 s of CPU more per worker (bench/RESULTS.md, "Browser pass CPU").
E2E_PATHS ?= tests/e2e
# Each pass has a temporary directory of its own, one per checkout, outside it (the release test
# installs the wheel "outside the repository"), emptied when the pass starts: under the shared
# /tmp/pytest-of-$USER, other pytest runs on the machine prune all but the newest three, and took
# a running pass's data directories away.
PYTEST_TMP ?= $(or $(TMPDIR),/tmp)/tandem-tests-$(shell id -u)-$(shell printf %s '$(CURDIR)' | md5sum | cut -c1-12)
pytest-fast:
	mkdir -p $(PYTEST_TMP)
	$(BIN)/python -m pytest -m "not e2e" -n $(PYTEST_WORKERS) --slow-first --basetemp=$(PYTEST_TMP)/fast $(PYTEST_ARGS)

pytest-e2e:
	mkdir -p $(PYTEST_TMP)
	$(BIN)/python -m pytest -m e2e -n $(E2E_WORKERS) --dist load --basetemp=$(PYTEST_TMP)/e2e $(PYTEST_ARGS) $(E2E_PATHS)

test-py: setup chromium
	@$(PARALLEL) pytest-fast pytest-e2e

# A coverage-guided fuzz of every parser that takes bytes from the network, bounded by time so a
# busy machine takes no longer, then topped up to FUZZ_MIN_RUNS inputs if a busy machine left it
# fewer. Any crash fails it; so does a fuzz that still counts fewer (it did not really run). It
# starts from fuzzing/corpus (inputs a longer run found to reach the parsers' deep paths,
# minimised; `make fuzz-corpus` remakes it), so a short run begins where that one ended; what it
# finds goes to a scratch directory, not the repository. The fuzzer runs as a program, with the
# virtualenv's Python first on PATH: libFuzzer's merge starts it again by its argv[0].
FUZZ_SECONDS ?= 20
FUZZ_MIN_RUNS ?= 10000
FUZZ_CORPUS := fuzzing/corpus
FUZZ = PATH="$(abspath $(BIN)):$$PATH" fuzzing/fuzz_codec.py -max_len=10000
$(VENV)/.fuzz: $(LOCK_DIR)/fuzz.txt $(VENV)/.installed
	$(BIN)/python -m pip install --quiet --require-hashes --only-binary :all: -r $(LOCK_DIR)/fuzz.txt
	touch $@

fuzz: setup $(VENV)/.fuzz
	@$(MAKE) --no-print-directory fuzz-run

fuzz-run:
	@work=$$(mktemp -d); trap 'rm -rf "$$work"' EXIT; \
	  runs() { sed -nE 's/^Done ([0-9]+) runs.*/\1/p' .fuzz.log | awk '{s+=$$1} END{print s+0}'; }; \
	  $(FUZZ) $$work $(FUZZ_CORPUS) -max_total_time=$(FUZZ_SECONDS) > .fuzz.log 2>&1 \
	  && { left=$$(( $(FUZZ_MIN_RUNS) - $$(runs) )); [ $$left -le 0 ] \
	       || $(FUZZ) $$work $(FUZZ_CORPUS) -runs=$$left >> .fuzz.log 2>&1; } \
	  || { cat .fuzz.log; exit 1; }; \
	  grep -E "^Done [0-9]+ runs" .fuzz.log; \
	  [ $$(runs) -ge $(FUZZ_MIN_RUNS) ] || { echo "fuzz: $$(runs) runs, fewer than $(FUZZ_MIN_RUNS)"; exit 1; }

# Remakes fuzzing/corpus: FUZZ_CORPUS_SECONDS of fuzzing from it, then libFuzzer's merge keeps the
# smallest set of inputs that covers as much (commit the result).
FUZZ_CORPUS_SECONDS ?= 600
fuzz-corpus: setup $(VENV)/.fuzz
	@work=$$(mktemp -d); merged=$$(mktemp -d); trap 'rm -rf "$$work" "$$merged"' EXIT; \
	  { $(FUZZ) $$work $(FUZZ_CORPUS) -max_total_time=$(FUZZ_CORPUS_SECONDS) > .fuzz.log 2>&1 \
	    && $(FUZZ) -merge=1 $$merged $(FUZZ_CORPUS) $$work >> .fuzz.log 2>&1 \
	    && [ -n "$$(ls $$merged)" ] && chmod 755 $$merged && rm -rf $(FUZZ_CORPUS) && mv $$merged $(FUZZ_CORPUS); } \
	  || { cat .fuzz.log; exit 1; }
	@grep -E "^MERGE-OUTER: [0-9]+ new files" .fuzz.log
	@ls $(FUZZ_CORPUS) | wc -l | xargs printf "fuzz-corpus: %s inputs in $(FUZZ_CORPUS)\n"

# Everything side by side on the machine's cores (the server tests mostly wait on sockets, the
# browser tests on Chromium, the fuzz for its time): the whole suite takes about as long as its
# longest part, the browser pass. The fuzz runs beside the rest from the start: on a busy machine
# it gets through fewer inputs in its time (about 50,000 beside the rest, 300,000 alone here),
# but it no longer adds its 20 s after the server tests (bench/RESULTS.md, "Test suite wall
# time"). `make -k test` runs every part even after one failed.
test: setup chromium $(VENV)/.fuzz
	@$(PARALLEL) lint-ruff lint-mypy lint-tsc test-sdk pytest-fast pytest-e2e fuzz-run

# For developers between commits, not part of the set-up: no browser tests, so no Chromium. With
# nothing beside it, the server pass runs on CHECK_WORKERS processes: its tests mostly wait (real
# processes, the product's timeouts), and five finished about 7 s sooner than three here on two
# cores (bench/RESULTS.md): two per core and one more. `make check PYTEST_WORKERS=N` still picks N.
CHECK_WORKERS ?= $(if $(filter command line,$(origin PYTEST_WORKERS)),$(PYTEST_WORKERS),$(shell echo $$(( 2 * $(CORES) + 1 ))))
check: setup
	@$(PARALLEL) PYTEST_WORKERS=$(CHECK_WORKERS) lint-ruff lint-mypy lint-tsc test-sdk pytest-fast

# The release artefacts: the sdist, the wheel, the runtime lock to install the wheel with
# (docs/deployment.md) and their SHA-256 sums. The sdist carries the built bundles too, and the
# wheel is built from the sdist, so a file missing from either shows here.
dist: setup
	rm -rf dist
	$(BIN)/python -m build --no-isolation --outdir dist .
	cp $(LOCK_DIR)/runtime.txt dist/requirements.txt
	cd dist && sha256sum tandem-* requirements.txt > SHA256SUMS
	@cat dist/SHA256SUMS

# Performance against same-run anchors (issue 17): not part of `make test`; a few minutes.
# BENCH_ARGS="--rounds 5 --scale-sessions 2000" changes the run (bench/relay.py --help).
BENCH_ARGS ?=
bench: setup chromium
	$(BIN)/python bench/relay.py $(BENCH_ARGS)
	$(BIN)/python bench/sdk_wire.py
	$(BIN)/python bench/keystroke_latency.py

# The screenshots in docs/screenshots/ (README.md's tour, docs/administration.md): the tour at
# 360x740, 390x844 and 1440x900 (customer, agent workspace, admin pages; axe-clean at each step),
# the workspace with the pointer and the office pages, from the real SDK and console in Chromium.
.PHONY: screenshots
SCREENSHOTS_DIR ?= docs/screenshots
screenshots: setup chromium
	TANDEM_SCREENSHOTS=$(abspath $(SCREENSHOTS_DIR)) $(BIN)/python -m pytest -q -p no:randomly -m e2e \
	  tests/e2e/test_tour.py tests/e2e/test_workspace.py::test_workspace_screenshots \
	  tests/e2e/test_office_pages.py::test_office_screenshots
	@echo "screenshots in $(SCREENSHOTS_DIR)/ (docs/screenshots/README.md says which is which)"

clean:
	rm -rf dist $(VENV) sdk/node_modules sdk/.test-build $(STATIC)/sdk $(STATIC)/sbom $(STATIC)/console/*.js

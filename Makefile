# One target each for run, test, lint, bench and soak. Every target builds .venv first.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
# The engine (durable-rules) builds on CPython 3.11 and 3.12 only.
PYTHON ?= $(shell for p in python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(0 if sys.version_info[:2] in ((3, 11), (3, 12)) else 1)' 2>/dev/null && { command -v $$p; break; }; \
	done)

.PHONY: run test lint format bench soak venv clean simulate-replenishment simulate-week screenshots

$(BIN)/dom: setup.cfg pyproject.toml
	@if [ -z "$(PYTHON)" ]; then \
		echo "error: DOM needs Python 3.11 or 3.12 (durable-rules does not build on 3.13)." >&2; \
		echo "Install one, or point PYTHON at it: make PYTHON=/path/to/python3.12 run" >&2; \
		exit 1; fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(BIN)/dom

venv: $(BIN)/dom

# The demo lets node webhooks point at a receiver on this machine; its log is read in a
# terminal (a deployment keeps the default: one JSON object per line).
run: export DOM_WEBHOOK_ALLOW ?= 127.0.0.1
run: export DOM_LOG_FORMAT ?= text
run: venv
	$(BIN)/dom db migrate
	$(BIN)/dom demo load --if-empty
	$(BIN)/dom serve

# The suite runs on SQLite and, at the same time, on PostgreSQL when DOM_TEST_POSTGRES
# (default the local server) answers; DOM_TEST_REQUIRE_POSTGRES=1 makes a missing server
# an error. The two runs mostly wait (on servers they start, on the database), so side by
# side they take little longer than the longer one; PostgreSQL's output follows SQLite's.
test: venv
	@if $(BIN)/python -m tests.databases; then \
		log=$$(mktemp); \
		echo "== the suite on SQLite, and on PostgreSQL beside it (its output follows)"; \
		DOM_TEST_BACKEND=postgresql $(BIN)/python -m pytest $(PYTEST_ARGS) > $$log 2>&1 & postgres=$$!; \
		$(BIN)/python -m pytest $(PYTEST_ARGS); sqlite=$$?; \
		wait $$postgres; postgresql=$$?; \
		echo "== the same suite on PostgreSQL"; cat $$log; rm -f $$log; \
		[ $$sqlite -eq 0 ] && [ $$postgresql -eq 0 ]; \
	elif [ -n "$$DOM_TEST_REQUIRE_POSTGRES" ]; then \
		echo "error: PostgreSQL does not answer at $${DOM_TEST_POSTGRES:-127.0.0.1:5432}" >&2; exit 1; \
	else \
		echo "PostgreSQL does not answer at $${DOM_TEST_POSTGRES:-127.0.0.1:5432}: its run is skipped"; \
		$(BIN)/python -m pytest $(PYTEST_ARGS); \
	fi

# The layers of app/ (.importlinter): each imports only those below it, and no cycles.
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-logo

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: venv
	$(BIN)/python -m bench

# 90 days of replenishment on the demo network, weekly bulk against small batches; writes
# the stock charts to docs/replenishment/.
simulate-replenishment: venv
	$(BIN)/python -m bench.replenishment_simulation

# A retailer's week on a controlled clock (orders for 7 days, 10 to settle) on the demo
# network; prints the product's figures beside its own count, fails when they differ or an
# order is stranded, and writes the chart to docs/week/.
simulate-week: venv
	$(BIN)/python -m bench.week_simulation

# The console's screens as the browser tests see them (Debian's Chromium), written to
# docs/screenshots/; the README shows some of them.
screenshots: venv
	rm -f docs/screenshots/*.png
	DOM_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_console.py $(PYTEST_ARGS)

# Long runs: thousands of stateful steps, and every API operation fuzzed 500 times. SEED=N replays one run; the seed is printed first.
SOAK_EXAMPLES ?= 1000
SOAK_STEPS ?= 100
FUZZ_EXAMPLES ?= 500
soak: venv
	@seed=$${SEED:-$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}; \
	echo "soak seed: $$seed (make soak SEED=$$seed replays it)"; \
	DOM_SOAK_EXAMPLES=$(SOAK_EXAMPLES) DOM_SOAK_STEPS=$(SOAK_STEPS) \
	DOM_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) \
	$(BIN)/python -m pytest tests/test_stateful.py tests/test_fuzz_api.py --hypothesis-seed=$$seed \
	--hypothesis-show-statistics -q $(PYTEST_ARGS) || { echo "soak failed with seed $$seed"; exit 1; }

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache

# License Desk — two commands: `make run` and `make test`. Everything they need is set up here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 3978
export PORT

.PHONY: run test setup e2e bench lint pot clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null || { echo "Node.js 20+ and npm are needed (card and manifest checks, Agents Playground)."; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(VENV)/.installed node_modules/.installed

## run: set up, migrate, load the demo data on first start and serve on PORT (default 3978);
## with Node.js, also the Microsoft 365 Agents Playground (PLAYGROUND_PORT, default 56150) — it prints the URL
run: $(VENV)/.installed
	@if command -v npm >/dev/null 2>&1; then $(MAKE) -s --no-print-directory node_modules/.installed \
	  || echo "warning: could not install the Node tools: no Agents Playground this time."; fi
	bash e2e/run-with-playground.sh $(BIN)/python app.py serve --demo

## e2e: every journey (upgrade, buy, request-approve; English and French) in the Agents Playground with
## Chromium, against the real bot (e2e/all.mjs: 2 at a time; E2E_JOURNEYS=buy,request for some, E2E_JOBS=1 in turn)
e2e: setup
	@chromium="$${CHROMIUM_PATH:-/usr/bin/chromium}"; [ -x "$$chromium" ] || { \
	  echo "make e2e needs Chromium at $$chromium (Debian: apt-get install -y chromium; or set CHROMIUM_PATH)."; exit 1; }
	E2E_PYTHON=$(BIN)/python node e2e/all.mjs

## test: set up, lint (ruff, the layer contracts, mypy) and run the whole suite; pytest's "no tests collected" is a failure
test: setup lint
	$(BIN)/python -m pytest -q -p no:cacheprovider; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

## bench: speed, measured on loopback, printed as one table (bench/run.py; about 3 minutes; PostgreSQL at
## BENCH_PG_URL, default postgresql+psycopg://root@127.0.0.1:5432/test, for its rows)
bench: $(VENV)/.installed
	$(BIN)/python -m bench.run $(BENCH_ARGS)

## pot: re-extract every visible string of the code into cards/locale/messages.pot (babel.cfg) and merge it into
## each cards/locale/<lang>/LC_MESSAGES/messages.po (make test fails until the new msgids are translated).
## A new language: $(BIN)/pybabel init -i cards/locale/messages.pot -d cards/locale -l <lang>
pot: $(VENV)/.installed
	$(BIN)/python -m cards.extract
	$(BIN)/pybabel update -i cards/locale/messages.pot -d cards/locale --no-fuzzy-matching -w 100

## lint: ruff, the layer contracts (lint-imports: [tool.importlinter] in pyproject.toml) and mypy ([tool.mypy])
lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy

clean:
	rm -rf $(VENV) node_modules var dist test-results

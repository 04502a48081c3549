# The two commands of the README:
#   make demo   sets everything up and runs the demo (readings flowing, live counts)
#   make test   sets everything up and runs the whole test suite (CI: .ci/run)
# Slow builds (InfluxDB, the Kafka jars) are cached in ~/.cache/ecowatch, outside the work tree.

SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup browser demo test test-storm lint unit component integration stack-down

$(STAMP): pyproject.toml
	@command -v python3 >/dev/null || { echo "python3 (3.11+) is required"; exit 1; }
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

# Python packages, then Mosquitto, Kafka and InfluxDB (first time: ~10-15 min, then seconds).
setup: $(STAMP)
	$(BIN)/ecowatch stack install

# The console's browser tests drive Debian's chromium (Playwright never downloads a browser
# here); a Chinese font so that the screens and their screenshots are not boxes.
browser:
	@command -v chromium >/dev/null && fc-list :lang=zh | grep -q . || { \
	  apt-get update -qq && apt-get install -y -qq chromium fonts-wqy-microhei; }

demo: setup
	$(BIN)/ecowatch demo

# ruff, and the layers (import-linter's contracts in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python devtools/lint_imports.py

unit: $(STAMP)
	$(BIN)/pytest tests/unit

component: $(STAMP) browser
	$(BIN)/pytest tests/component

integration: setup browser
	$(BIN)/pytest tests/integration

# The soak drives every catalogue device, and the short storm kills Kafka and InfluxDB under
# load: each needs a session (and a stack) of its own, after the rest.
test: setup browser lint
	$(BIN)/pytest -m "not soak and not storm"
	$(BIN)/pytest -m soak
	$(BIN)/pytest -m storm

# The short storm alone.
test-storm: setup
	$(BIN)/pytest -m storm

stack-down:
	$(BIN)/ecowatch stack down

# Flywheel: two commands on a fresh machine.
#   make demo   set up, then run the whole loop on the embedded stack (Airflow + MLflow + local lake)
#   make test   set up, then lint and run the whole test suite (what CI runs)
#   make test-fast  the day-to-day lane: lint + unit and integration tests, without the e2e loops, kill tests and slow sweeps
# Each creates .venv and installs the pinned requirements when they are missing or changed.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.flywheel-installed
# On machines that keep a local wheel of torch (CPU build), use it instead of the large CUDA build.
TORCH_LINKS := $(if $(wildcard /opt/wheels/torch-2.13.0*),--find-links /opt/wheels,)

export MLFLOW_DISABLE_TELEMETRY := true
export GX_ANALYTICS_ENABLED := false
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export DO_NOT_TRACK := 1
export SCARF_ANALYTICS := false
export AIRFLOW__USAGE_DATA_COLLECTION__ENABLED := False

.PHONY: demo test test-fast lint browser up down venv clean

demo: $(STAMP)
	$(BIN)/python -m mlflywheel.demo run $(DEMO_ARGS)

test: lint browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: lint
	$(BIN)/python -m pytest -m "not e2e and not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

# The browser tests (tests/browser, marked e2e) drive Debian's chromium through Playwright, which
# cannot download browsers of its own here: install it once when it is missing (needs root).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; \
	  else \
	    echo "the browser tests need /usr/bin/chromium: sudo apt-get install --no-install-recommends chromium"; \
	  fi; \
	fi

up: $(STAMP)
	$(BIN)/python -m mlflywheel.demo up

down:
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m mlflywheel.demo down; fi

venv: $(STAMP)

# torch first: inside one big resolve pip may pick the CUDA wheel and several GB of nvidia-* wheels.
$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24"
	$(BIN)/python -m pip install -q $(TORCH_LINKS) torch==2.13.0
	$(BIN)/python -m pip install -q $(TORCH_LINKS) -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	@touch $@

clean: down
	rm -rf data .pytest_cache

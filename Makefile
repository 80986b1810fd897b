# The two commands for a newcomer are `make demo` and `make test`; each sets up
# .venv first and reuses it while setup.py and requirements-post.txt are unchanged.

SHELL := /bin/bash
.DEFAULT_GOAL := help

# Python 3.10: TFX 1.16 needs it. Found on PATH, or among pyenv's versions.
PYTHON310 ?= $(shell for candidate in python3.10 $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.10*/bin/python3.10 2>/dev/null | sort -V | tail -n 1); do \
	"$$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null && { echo "$$candidate"; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
REQUIREMENTS_HASH := $(shell cat setup.py requirements-post.txt requirements-nodeps.txt | sha256sum | cut -c1-16)
INSTALLED := $(VENV)/.installed-$(REQUIREMENTS_HASH)
# Checkers of kubernetes/ and the Dockerfile (checkov, kubernetes-validate, hadolint): their own
# venv, on the machine's python3, since checkov's dependencies conflict with the TFX stack.
PYTHON_TOOLS ?= python3
TOOLS_VENV := .venv-tools
TOOLS_BIN := $(TOOLS_VENV)/bin
TOOLS_HASH := $(shell cat requirements-tools.txt | sha256sum | cut -c1-16)
TOOLS_INSTALLED := $(TOOLS_VENV)/.installed-$(TOOLS_HASH)
DEMO_DIR ?= demo
PYTEST_ARGS ?=

export TF_CPP_MIN_LOG_LEVEL ?= 2
export CUDA_VISIBLE_DEVICES ?=
# Where the tests find the checkers; not put on PATH, where its python would shadow .venv's.
export ACCENT_TOOLS_BIN ?= $(CURDIR)/$(TOOLS_BIN)

.PHONY: help venv tools browser demo test test-fast lint format bench bench-scale clean

help:
	@echo "make demo   - set up .venv, write the demo corpus and run the whole pipeline on it"
	@echo "make test   - set up .venv, lint, and run every test (end-to-end included)"
	@echo "make lint   - ruff format --check and ruff check"
	@echo "make format - ruff format and ruff check --fix"
	@echo "make bench  - embedding throughput and serving latency benchmarks"
	@echo "make bench-scale - the whole pipeline on a 1-hour and a 3-hour corpus, extrapolated to 31 hours (not in CI)"
	@echo "make tools  - set up .venv-tools with the manifest checkers (checkov, kubernetes-validate, hadolint)"

venv: $(INSTALLED)

$(INSTALLED):
	@if [ -z "$(PYTHON310)" ]; then echo "Python 3.10 is required (TFX 1.16); install python3.10 or set PYTHON310=/path/to/python3.10" >&2; exit 1; fi
	@echo "Setting up $(VENV) with $(PYTHON310) (about 5 minutes on a new machine)"
	rm -rf $(VENV)
	$(PYTHON310) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip wheel "setuptools<80"
	$(BIN)/pip install --quiet -e ".[test,demo,web]"
	$(BIN)/pip install --quiet -r requirements-post.txt
	$(BIN)/pip install --quiet --no-deps -r requirements-nodeps.txt
	touch $@

tools: $(TOOLS_INSTALLED)

$(TOOLS_INSTALLED):
	@echo "Setting up $(TOOLS_VENV) with $(PYTHON_TOOLS) (1 to 3 minutes)"
	rm -rf $(TOOLS_VENV)
	$(PYTHON_TOOLS) -m venv $(TOOLS_VENV)
	$(TOOLS_BIN)/pip install --quiet --upgrade pip
	$(TOOLS_BIN)/pip install --quiet -r requirements-tools.txt
	touch $@

# The demo runs with offline YAMNet weights (no network): untrained, so its embeddings are
# calibrated random features and the macro AUC they allow is far below real YAMNet's. Its
# gate is therefore 0.6; 0.85, the default, is the level for OpenSLR-83 with real YAMNet.
DEMO_MIN_AUC ?= 0.6

demo: $(DEMO_DIR)/corpus/line_index_all.csv | $(INSTALLED)
	$(BIN)/accent-pipeline run --corpus $(DEMO_DIR)/corpus --output $(DEMO_DIR)/output --yamnet offline \
		--min-auc $(DEMO_MIN_AUC)

# Written once, so that a second `make demo` finds the corpus unchanged and reuses TFX's cache.
$(DEMO_DIR)/corpus/line_index_all.csv: | $(INSTALLED)
	$(BIN)/accent-pipeline demo-corpus $(DEMO_DIR)/corpus

lint: $(INSTALLED)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: $(INSTALLED)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint $(TOOLS_INSTALLED) browser
	$(BIN)/pytest $(PYTEST_ARGS)

# The model card's browser test opens the card in Debian's headless Chromium (Playwright's own
# browser download is not reachable from every machine); the web page's test drives it through
# Debian's chromedriver (Selenium). Installed once, as root, when missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" != 0 ]; then echo "chromium is missing: run 'sudo apt-get install chromium' (Debian)" >&2; exit 1; fi; \
		echo "Installing Debian's chromium for the model card's browser test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@command -v chromedriver >/dev/null 2>&1 || { \
		if [ "$$(id -u)" != 0 ]; then echo "chromedriver is missing: run 'sudo apt-get install chromium-driver' (Debian)" >&2; exit 1; fi; \
		echo "Installing Debian's chromium-driver for the web page's browser test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium-driver >/dev/null; }

test-fast: $(INSTALLED)
	$(BIN)/pytest -m "not e2e and not slow and not infra" $(PYTEST_ARGS)

bench: $(INSTALLED)
	$(BIN)/python -m benchmarks.run_all

# Not in CI: 7 to 7.5 minutes on 2 cores with the defaults (README, Benchmarks). BENCH_SCALE_ARGS="--hours 0.1" for a quick check.
BENCH_SCALE_ARGS ?=
bench-scale: $(INSTALLED)
	$(BIN)/python -m benchmarks.scale $(BENCH_SCALE_ARGS)

clean:
	rm -rf $(VENV) $(TOOLS_VENV) $(DEMO_DIR) .pytest_cache .ruff_cache

# fedembed: two commands on a fresh machine.
#   make demo       - the main job (creates .venv, installs, runs `fedembed demo`): about
#                     15 minutes on 2 cores from empty caches (after the install)
#   make demo-full  - the same with every epsilon column and the full-size audit
#   make test       - the test suite (creates .venv, installs, runs pytest)
# The datasets are read from FEDEMBED_DATA_DIR (default ../shared/data); missing ones are
# downloaded when the network allows, else the demo stops at once saying what to put where.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU build; on a GPU machine: make TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"
TORCH_SPEC ?= torch==2.13.0
FEDEMBED_DATA_DIR ?= $(abspath ../shared/data)
export FEDEMBED_DATA_DIR
export HF_HUB_OFFLINE ?= 1
PYTEST_ARGS ?= -m "not slow"

.PHONY: demo demo-full test test-all lint typecheck bench bench-main-job venv clean browser

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml secure_index/index/_hit_rows.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps 'wefe==1.0.1'
	touch $@

demo: venv
	$(BIN)/fedembed demo --data-dir "$(FEDEMBED_DATA_DIR)"

demo-full: venv
	$(BIN)/fedembed demo --data-dir "$(FEDEMBED_DATA_DIR)" --full-sweep --full-audit --ckks-claims 0

# The compliance report is checked in a real headless browser (Debian chromium).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	      apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null && apt-get install -y -q chromium chromium-driver >/dev/null; }; \
	    else echo "install chromium and chromium-driver (Debian) for the report browser test"; fi; }

test: venv browser
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-all: venv
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/lint-imports

typecheck: venv
	$(BIN)/mypy

bench: venv
	$(BIN)/python benchmarks/bench_encode.py --data-dir "$(FEDEMBED_DATA_DIR)"

# The main job's wall time from empty caches (fresh cache folders under /tmp).
bench-main-job: venv
	$(BIN)/python benchmarks/bench_main_job.py --data-dir "$(FEDEMBED_DATA_DIR)"

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache out

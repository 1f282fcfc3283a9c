# Two commands a new user needs (see README): `make lab` and `make test`. `make help` lists every target.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# TORCH=cpu installs PyTorch's CPU-only build from its CPU wheel index before the rest (no nvidia-* wheels:
# the right choice for a laptop without an NVIDIA GPU). Empty: pip's default (on Linux, the CUDA build).
TORCH ?=
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
# CI points this at ../shared/data; students keep the default (~/.cache/course_utils/data) or set their own.
export COURSE_DATA_DIR ?= $(HOME)/.cache/course_utils/data
PYTEST_ARGS ?=
# `make test` runs the suite in this many pytest-xdist workers, one test file (or notebook) per worker at a time
# (--dist loadfile: a notebook's cells stay in order on one worker); tests/conftest.py shares the cores
# between them. TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 2
NBVAL := --nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg

.DEFAULT_GOAL := help
.PHONY: help setup lab test test-unit lint generated exercises screenshots bench clean

## List the targets.
help:
	@awk '/^## /{doc=substr($$0, 4); next} /^[a-z][a-z-]*:/{if (doc) {split($$0, t, ":"); \
		printf "  make %-12s %s\n", t[1], doc}; doc=""} /^$$/{doc=""}' $(MAKEFILE_LIST)
	@echo "  options: TORCH=cpu (CPU-only PyTorch), VENV=path, PYTEST_ARGS=..., TEST_WORKERS=2, COURSE_DATA_DIR=path"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip >/dev/null
ifeq ($(TORCH),cpu)
	$(PY) -m pip install torch torchvision --index-url $(TORCH_CPU_INDEX)
endif
	$(PY) -m pip install -e ".[dev]"
	$(VENV)/bin/jupyter labextension disable "@jupyterlab/apputils-extension:announcements" >/dev/null 2>&1 || true
	$(VENV)/bin/jupyter labextension disable "@jupyter/nbgrader" >/dev/null 2>&1 || true
	for ext in formgrader validate_assignment assignment_list course_list; do $(VENV)/bin/jupyter server extension \
		disable "nbgrader.server_extensions.$$ext" --sys-prefix >/dev/null 2>&1 || true; done
	touch $(STAMP)

## Create .venv if missing and install the course with its dev tools (TORCH=cpu: CPU-only PyTorch).
setup: $(STAMP)

## Set everything up and open the course in JupyterLab.
# The venv's own kernel (python3 = .venv/bin/python, which has course_utils) before any user-level kernelspec;
# tools/jupyterlab/overrides.json turns off the news/update toast; tools/jupyterlab/jupyter_server_config.json
# lets the server read the notebooks' text twins in their hidden .twins/ folders (jupytext, installed by the dev
# extra, opens a paired notebook through its twin: without it every lesson was a 404). Notes: docs/jupyterlab.md.
lab: setup
	JUPYTER_PREFER_ENV_PATH=1 JUPYTER_CONFIG_PATH="$(CURDIR)/tools/jupyterlab" $(VENV)/bin/jupyter lab \
		--LabApp.app_settings_dir="$(CURDIR)/tools/jupyterlab" notebooks/00_start_here.ipynb

## Set everything up and run the whole test suite: lint, unit tests, lessons and solutions under nbval, browser.
test: setup lint
	COURSE_QUICK=1 $(PY) -m pytest tests notebooks solutions $(NBVAL) -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder \
		--durations=15 $(PYTEST_ARGS)

## The fast tests only (no notebooks, no grading runs, no browser, nothing over 10 s): a maintainer's loop.
test-unit: setup
	$(PY) -m pytest tests -m "not slow" -q -n $(TEST_WORKERS) $(PYTEST_ARGS)

# vermin: CI runs Python 3.11 only, README promises 3.10+; `--exclude long` is torch's Tensor.long(), which vermin
# takes for Python 2's long.
## Lint the package, tests, benches, tools and the lessons' and worksheets' code (their jupytext twins); check that none of it needs a Python newer than requires-python.
lint: setup
	$(VENV)/bin/ruff check course_utils tests bench tools notebooks/.twins solutions/.twins
	$(VENV)/bin/vermin -q --target=3.10- --violations --no-tips --eval-annotations --exclude long \
		course_utils tests bench tools notebooks/.twins solutions/.twins

## Rebuild everything derived from a source: set-up cells, badges, exercises/, docs tables, jupytext twins.
generated: setup
	$(PY) tools/generate.py

## Regenerate exercises/ from solutions/ (one step of `make generated`).
exercises: setup
	$(PY) tools/generate.py exercises

## Regenerate the README's screenshots (docs/screenshots/*.png) in headless Chromium (needs /usr/bin/chromium).
screenshots: setup
	$(PY) tools/screenshots.py docs/screenshots

## Run the training and sampling benchmarks (bench/); they print ratios measured side by side.
bench: setup
	$(PY) bench/bench_train.py
	$(PY) bench/bench_sampling.py

## Remove the virtual environment and caches.
clean:
	rm -rf $(VENV) .pytest_cache

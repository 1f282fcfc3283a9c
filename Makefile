# Two commands a new user needs (see README): `make lab` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# CI points this at ../shared/data; students keep the default (~/.cache/course_utils/data) or set their own.
export COURSE_DATA_DIR ?= $(HOME)/.cache/course_utils/data
PYTEST_ARGS ?=

.PHONY: setup lab test test-unit test-notebooks exercises screenshots bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip >/dev/null
	$(PY) -m pip install -e ".[dev]"
	$(VENV)/bin/jupyter labextension disable "@jupyterlab/apputils-extension:announcements" >/dev/null 2>&1 || true
	touch $(STAMP)

setup: $(STAMP)

## Set everything up and open the course in JupyterLab.
# The venv's own kernel (python3 = .venv/bin/python, which has course_utils) before any user-level kernelspec;
# tools/jupyterlab/overrides.json turns off the news/update toast. Notes: docs/jupyterlab.md.
lab: setup
	JUPYTER_PREFER_ENV_PATH=1 $(VENV)/bin/jupyter lab --LabApp.app_settings_dir="$(CURDIR)/tools/jupyterlab" \
		notebooks/00_start_here.ipynb

## Set everything up and run the whole test suite (unit tests, lessons and solutions under nbval, browser test).
test: setup
	COURSE_QUICK=1 $(PY) -m pytest tests notebooks solutions --nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg --durations=15 $(PYTEST_ARGS)

## Regenerate the README's screenshots (docs/screenshots/*.png) in headless Chromium (needs /usr/bin/chromium).
screenshots: setup
	$(PY) tools/screenshots.py docs/screenshots

## Regenerate exercises/ from solutions/.
exercises: setup
	$(PY) -m course_utils.exercises solutions exercises

bench: setup
	$(PY) bench/bench_train.py
	$(PY) bench/bench_sampling.py

clean:
	rm -rf $(VENV) .pytest_cache

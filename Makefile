# The README's commands. Each target creates .venv on first use and reinstalls when pyproject.toml changes.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: demo test lint

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.demo-deps: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[edge,data]'
	touch $@

$(VENV)/.test-deps: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[edge,data,train,dev]'
	touch $@

# The main job on a bundled sample. For now: render a sample store video and show its labels.
demo: $(VENV)/.demo-deps
	$(VENV)/bin/shelfwatch synth demo_out --videos 1 --frames 600 --seed 0 --preset standard
	$(VENV)/bin/shelfwatch labels show demo_out/synth_standard_s0_0000.labels.json

test: $(VENV)/.test-deps
	$(PY) -m ruff check .
	$(PY) -m pytest -q

lint: $(VENV)/.test-deps
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

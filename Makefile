# The README's commands. Each target creates .venv on first use and reinstalls when pyproject.toml changes.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: demo test lint models web

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.demo-deps: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[edge,data]'
	touch $@

$(VENV)/.test-deps: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[edge,data,train,provision,central,web,dev]'
	touch $@

# The main job on a bundled sample: the edge agent with the committed demo bundle, no broker needed.
# The sample is rendered by the bundled generator (deterministic: the same bytes every time, ~10 s).
demo: $(VENV)/.demo-deps
	test -f demo_out/synth_standard_s1000_0006.mp4 || \
		$(VENV)/bin/shelfwatch synth demo_out --videos 1 --frames 900 --seed 1000 --first 6 --preset standard
	rm -f demo_out/events.jsonl demo_out/outbox.sqlite*
	$(VENV)/bin/shelfwatch edge run --bundle models/demo --source demo_out/synth_standard_s1000_0006.mp4 \
		--events-jsonl demo_out/events.jsonl --annotate demo_out/annotated.mp4 --outbox demo_out/outbox.sqlite

# The analysis page on this machine (http://127.0.0.1:8000/): upload a clip, see the annotated video and its timeline.
$(VENV)/.web-deps: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[edge,data,web]'
	touch $@

web: $(VENV)/.web-deps
	$(VENV)/bin/shelfwatch web

# The box runs Python 3.10 (JetPack 6): what it imports (edge/, shelfwatch/) may need nothing newer.
BOX_PACKAGES := edge shelfwatch

test: $(VENV)/.test-deps
	$(PY) -m ruff check .
	$(VENV)/bin/vermin --target=3.10- --violations --eval-annotations --no-tips --no-parse-comments $(BOX_PACKAGES)
	$(PY) -m pytest -q

lint: $(VENV)/.test-deps
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# Rebuild the committed demo bundle models/demo/ from nothing: render data, train both models, export INT8.
# About 45 minutes on 2 CPU cores; each step's numbers are in the README.
SW := $(VENV)/bin/shelfwatch
models: $(VENV)/.test-deps
	$(SW) synth data/train --videos 100 --seed 1 --jobs 2
	$(SW) synth data/test --videos 10 --seed 1000 --jobs 2 --yolo --yolo-every 20
	$(SW) synth data/det --videos 30 --seed 1 --jobs 2 --yolo --yolo-every 20
	$(SW) train action data/train --out runs/action --delay 6 --encoder-steps 4000 --eval-every 500
	$(SW) train products data/det/yolo --out runs/products --scale p --imgsz 320 --epochs 20
	$(SW) export models/demo --action runs/action --products runs/products --precision int8 \
		--calibration data/train --held-out data/test

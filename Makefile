# The README's commands. Each target creates .venv on first use and reinstalls when pyproject.toml changes.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: demo test test-long bench-smoke lint models demo-bundle web

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

# `make web PORT=8001` for another port.
PORT ?= 8000
web: $(VENV)/.web-deps
	$(VENV)/bin/shelfwatch web --port $(PORT)

# The box runs Python 3.10 (JetPack 6): what it imports (edge/, shelfwatch/) may need nothing newer.
BOX_PACKAGES := edge shelfwatch
# Two workers, each test file on one worker (its module fixtures built once): most tests wait on subprocesses,
# brokers and browsers rather than compute, so two workers on 2 cores take about a third of one worker's time.
PYTEST := $(PY) -m pytest -q -n 2 --dist loadfile

test: $(VENV)/.test-deps
	$(PY) -m ruff check .
	$(VENV)/bin/vermin --target=3.10- --violations --eval-annotations --no-tips --no-parse-comments $(BOX_PACKAGES)
	$(PYTEST) -m "not long"

# The long end-to-end checks (many videos, several agents, real restarts), the bench smoke among them (tests/bench);
# CI runs them after `make test`.
test-long: $(VENV)/.test-deps
	$(PYTEST) -m long

# Every script in bench/ at its smallest size on inputs it makes itself, each printed figure checked against what
# it can be (about two minutes of CPU, 2.5 minutes on 2 cores not otherwise busy; part of test-long).
bench-smoke: $(VENV)/.test-deps
	$(PYTEST) -m long tests/bench

lint: $(VENV)/.test-deps
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# Rebuild a bundle as the committed models/demo/ was made, from nothing: render data, train both models, export INT8,
# fit the familiarity guard: the commands models/demo's manifest records (provenance.commands), in their order. Stage 1
# of the action model (the per-frame encoder) is a run of its own whose encoder stage 2 adopts (--encoder-from), as
# models/demo was made: one run doing both stages starts the LSTM from other random weights. The manifest records from
# stage 2 on (export kept the exported run's command only; it now records the adopted encoder's run too), so the stage-1
# line is the README's recipe. --no-familiarity and the reference clip: the export of the time had neither; `bundle
# familiarity` fits the guard as models/demo's was fitted, and export now records the reference clip itself. The export
# leaves the action checkpoint in the bundle (checkpoint.pt, its sha256 in the manifest) for `train adapt --from`.
# About 1 h 45 min on 2 CPU cores (measured 6 December 2026); each step's numbers are in the README.
# It does not give back the committed models/demo (the renderer changed since), and that rebuild made shelf actions on
# the real walkers clip: see the README, "Where models/demo's checkpoint comes from", before committing its output.
# It writes $(MODELS_OUT), never over the committed models/demo (`make models MODELS_OUT=DIR` puts it elsewhere).
SW := $(VENV)/bin/shelfwatch
MODELS_OUT ?= models/rebuilt
models: $(VENV)/.test-deps
	$(SW) synth data/train --videos 100 --seed 1 --jobs 2
	$(SW) synth data/test --videos 10 --seed 1000 --jobs 2 --yolo --yolo-every 20
	$(SW) synth data/det --videos 30 --seed 1 --jobs 2 --yolo --yolo-every 20
	$(SW) synth data/fit --videos 24 --seed 1 --jobs 2
	$(SW) synth data/calib --videos 12 --seed 1 --first 100 --jobs 2
	$(SW) train action data/train --out runs/action_stage1 --delay 6 --encoder-steps 4000 --eval-every 500
	$(SW) train action data/train --out runs/action --delay 6 --eval-every 500 --encoder-from runs/action_stage1/frame.pt
	$(SW) train products data/det/yolo --out runs/products --scale p --imgsz 320 --epochs 20
	$(SW) export $(MODELS_OUT) --action runs/action --products runs/products --precision int8 \
		--calibration data/train --held-out data/test --no-familiarity
	$(SW) bundle familiarity $(MODELS_OUT) --fit data/fit --calibrate data/calib

# models/demo as committed: the bundle exported at 3024e46 (d25da62392d694b3, kept in git at 7b9042b) had no checkpoint
# and its FP32 weights were not kept, so its action graphs are recovered as one (`bundle recover`: the FP32 step
# exactly, the INT8 encoder dequantized), exported again with that checkpoint beside the manifest and the same detector,
# and its familiarity guard fitted again. These are the last commands its manifest records. About 8 minutes with the
# data of `make models` (data/train, data/test, data/fit, data/calib) already rendered.
demo-bundle: $(VENV)/.test-deps
	rm -rf runs/demo_d25da623 && mkdir -p runs/demo_d25da623
	git archive 7b9042b models/demo | tar -x -C runs/demo_d25da623 --strip-components 2
	$(SW) bundle recover runs/demo_d25da623 --out runs/demo_recovered
	$(SW) export models/demo --action runs/demo_recovered --detector-from runs/demo_d25da623 --precision int8 \
		--calibration data/train --held-out data/test --no-familiarity
	$(SW) bundle familiarity models/demo --fit data/fit --calibrate data/calib

# Two commands on a fresh clone:  `make demo` (the main job)  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: venv demo test bench train-light train-heavy clean

venv: $(STAMP)

$(STAMP): requirements.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

## Stream the bundled demo camera through the live node over DDS; writes out/demo/.
demo: $(STAMP)
	$(PY) -m pcnet_ros.demo --out out/demo

## The whole test suite (real DDS between processes, real bag files).
test: $(STAMP)
	scripts/isolated-net $(PY) -m pytest -q test

bench: $(STAMP)
	$(PY) -m pcnet_ros.bench

# Resumes from runs/*/last.pth; on a machine without it, continues from the shipped weights.
# The cosine schedules end at --steps; raise it to train on (the learning rate then climbs back
# onto the longer curve).  The heavy weights are a fine-tune of the light ones; redo it with
#   make train-heavy HEAVY_FROM="--init weights/pcnet_light.pth"     (with runs/heavy moved away)
HEAVY_FROM ?= --init weights/pcnet_heavy.pth --continue-schedule
train-light: $(STAMP)
	$(PY) -m pcnet_ros.train --data ../shared/data/rain100l-train --out runs/light --steps 9000 \
	  --batch 8 --patch 96 --lr 5e-4 --threads 2 --export weights/pcnet_light.pth \
	  --init weights/pcnet_light.pth --continue-schedule

train-heavy: $(STAMP)
	$(PY) -m pcnet_ros.train --data ../shared/data/pcnet-train --data ../shared/data/rain100l-train \
	  --out runs/heavy --steps 800 --batch 8 --patch 96 --lr 2e-4 --eval-every 200 --threads 2 --synth-prob 0.3 \
	  --synth-level heavy --val-synth heavy --export weights/pcnet_heavy.pth $(HEAVY_FROM)

clean:
	rm -rf $(VENV) out build install log *.egg-info

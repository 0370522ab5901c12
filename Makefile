# Two commands on a fresh clone:  `make demo` (the main job)  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# A real `ros2 launch` / `ros2` CLI and colcon (PyPI has only rclpy and messages); idempotent.
ROS2_LAUNCH ?= ../shared/ros2-launch/install.sh

.PHONY: venv demo test bench train-light train-heavy clean

venv: $(STAMP)

$(STAMP): requirements.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	$(ROS2_LAUNCH) $(VENV)
	touch $(STAMP)

## Stream the bundled demo camera through the live node over DDS; writes out/demo/.
demo: $(STAMP)
	scripts/isolated-net $(PY) -m pcnet_ros.tools.demo --out out/demo

## The whole test suite (real DDS between processes, real bag files).
test: $(STAMP)
	scripts/isolated-net $(PY) -m pytest -q test

bench: $(STAMP)
	$(PY) -m pcnet_ros.tools.bench

# Training runs under nice so that tests and benchmarks run meanwhile are not starved.  A run resumes
# from runs/*/last.pth, or on a new machine from the committed checkpoints/*_last.pth (weights, Adam
# state, RNG, step): the same schedule continues.
#  light: restarts from the 9,000-step weights (33.07 dB) with a warm-up and a 4,500-step cosine,
#         flips only (a 40k schedule with quarter turns sat 0.2-3 dB below its start for 6,000 steps).
#  heavy: fine-tunes the heavy weights on heavy rain composited from the Garg streak layers onto the
#         clean images of both training sets (half the patches; the other half keep their real rain),
#         selecting on the mean of the RainTrainH sample (never trained on) and the held-out split.
NICE ?= nice -n 10
DATA ?= ../shared/data
train-light: $(STAMP)
	$(NICE) $(PY) -m pcnet_ros.training.train --data $(DATA)/rain100l-train --out runs/light --steps 4500 \
	  --batch 8 --patch 96 --lr 4e-4 --warmup 300 --aug flips --compile --threads 2 \
	  --init weights/pcnet_light.pth --bank checkpoints/light_last.pth --export weights/pcnet_light.pth

train-heavy: $(STAMP)
	$(NICE) $(PY) -m pcnet_ros.training.train --data $(DATA)/rain100l-train --data $(DATA)/pcnet-train \
	  --val-data $(DATA)/rain100h-train-sample --out runs/heavy --steps 8000 --batch 8 --patch 96 --lr 2e-4 \
	  --warmup 200 --aug flips --eval-every 250 --compile --threads 2 --synth-prob 0.5 --synth-level heavy \
	  --streaks $(DATA)/rain-streaks-garg06 --init weights/pcnet_heavy.pth --bank checkpoints/heavy_last.pth \
	  --export weights/pcnet_heavy.pth

clean:
	rm -rf $(VENV) out build install log *.egg-info

# Two commands on a fresh clone:  `make demo` (the main job)  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# A real `ros2 launch` / `ros2` CLI and colcon (PyPI has only rclpy and messages); idempotent.
ROS2_LAUNCH ?= ../shared/ros2-launch/install.sh

.PHONY: venv demo test bench train-light train-heavy finetune-heavy clean

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
#  light: restarts from the shipped weights with the authors' batch, 32 of 128x128 (batch 8 and 16 restarts
#         plateaued lower), a 2,800-step cosine from 2e-4, half the patches carrying another pair's real
#         rain; flips only (a 40k schedule with quarter turns sat 0.2-3 dB below its start for 6,000 steps).
#         bf16 autocast where the CPU has native bf16 (1.8-2.1 s a step on 2 cores; emulated, 9x slower,
#         on AVX2), else fp32. 128x128 from 2e-4 over 2,800 steps made 34.16 -> 34.37 dB (runs/light_b32r2, 1.6 h);
#         its 160x160 successor (1.5e-4, 3,000 steps, runs/light_p160, 2.4 h) made 34.37 -> 34.55 at step 2,800;
#         A 192x192 restart from it sat at 34.41-34.52 for 800 steps (4.4 s a step) and gave way to a lent
#         H100 (scripts/gpu/run.sh: batch 32 of 128x128 from 3e-4, then 1e-4; 34.55 -> 34.66 in 9 minutes).
#         160x160 from that file (1.5e-4, 2,000 steps, runs/light_p160b, 1.9 h) made 34.66 -> 34.84; the
#         same from 34.84 with a moving average of the weights from step 503 (--ema 0.995, about 200 steps:
#         +0.06-0.08 dB at the peak rate, level at the end) made 34.97 (runs/light_p160c, 1.7 h); the recipe
#         restarted the same from 34.97 with the average from step 0 (runs/light_p160d, 1.7 h): 35.05. Doubling
#         the batch to 64 of 128x128 (1.3x the pixels a step) at 2e-4 over 2,000 steps made 35.05 -> 35.18 at
#         step 1,400 (runs/light_b64, 1.55 h), level after it. Doubling it again, 128 of 128x128 at 2e-4
#         over 1,000 steps (runs/light_b128, 1.2 h), made 35.18 -> 35.26 at step 400 (35.25 again at 800). The
#         next, 256 of 128x128 from 35.26 over 1,000 steps (runs/light_b256, 2.35 h), as two chunks of 128
#         with gradients accumulated (--accum 2; whole, its activations would take 28 GB), made 35.32, rising
#         at every validation. The recipe keeps batch 256 and enlarges the patches to 160x160 (1.56x the pixels
#         a step; four chunks of 64, about 11 GB) from 35.32 over 1,000 steps (runs/light_b256p160, 4.0 h):
#         35.43 at step 600 (+0.11, more than either batch doubling), 35.40 at 800, 35.41 at 1,000. The
#         recipe keeps batch 256 and enlarges the patches again, to 192x192 (1.44x the pixels; eight chunks
#         of 32), from 35.43 over 1,000 steps (runs/light_b256p192): 35.45 at step 400; in progress.
#  heavy: fine-tunes the heavy weights on heavy rain composited from the Garg streak layers onto the
#         clean images of both training sets (half the patches; the other half keep their real rain),
#         selecting on the mean of the RainTrainH sample (never trained on) and the held-out split;
#         its best goes to checkpoints/heavy_base.pth.
#  finetune-heavy: the last, short fine-tune that ships weights/pcnet_heavy.pth: from heavy_base.pth on 8
#         of the 12 RainTrainH pairs (a fixed share of the patches, and their real rain added onto clean
#         patches of all three folders), selected on the other 4 and the split; then a second, gentler
#         cycle of the same (1e-4, 1,000 steps) from the first one's best; then a third at the light recipe's
#         batch, 32 of 96x96, bf16 where native, with a moving average validated beside the weights.
NICE ?= nice -n 10
TRAIN_PRECISION ?= $(shell grep -qw avx512_bf16 /proc/cpuinfo 2>/dev/null && echo bf16 || echo fp32)
DATA ?= ../shared/data
train-light: $(STAMP)
	$(NICE) $(PY) -m pcnet_ros.training.train --data $(DATA)/rain100l-train --out runs/light_b256p192 \
	  --steps 1000 --batch 256 --accum 8 --patch 192 --lr 2e-4 --warmup 80 --aug flips --eval-every 200 \
	  --compile --threads 2 --ema 0.995 --precision $(TRAIN_PRECISION) --transplant-from $(DATA)/rain100l-train \
	  --transplant-prob 0.5 --init weights/pcnet_light.pth --bank checkpoints/light_b256p192_last.pth \
	  --export weights/pcnet_light.pth

train-heavy: $(STAMP)
	$(NICE) $(PY) -m pcnet_ros.training.train --data $(DATA)/rain100l-train --data $(DATA)/pcnet-train \
	  --val-data $(DATA)/rain100h-train-sample --out runs/heavy --steps 8000 --batch 8 --patch 96 --lr 2e-4 \
	  --warmup 200 --aug flips --eval-every 250 --compile --threads 2 --synth-prob 0.5 --synth-level heavy \
	  --streaks $(DATA)/rain-streaks-garg06 --init checkpoints/heavy_base.pth --bank checkpoints/heavy_last.pth \
	  --export checkpoints/heavy_base.pth

# Both cycles of the last heavy fine-tune: the same data, shares, rain mix and selection.
HEAVY_FT = $(NICE) $(PY) -m pcnet_ros.training.train --data runs/h100fold/train --data $(DATA)/rain100l-train \
	  --data $(DATA)/pcnet-train --data-share 0.3 0.45 0.25 --val-data runs/h100fold/val --patch 96 \
	  --warmup 50 --aug flips --eval-every 200 --threads 2 --compile --synth-prob 0.2 --synth-level heavy \
	  --streaks $(DATA)/rain-streaks-garg06 --transplant-from runs/h100fold/train --transplant-prob 0.6 \
	  --export weights/pcnet_heavy.pth
finetune-heavy: $(STAMP)
	$(PY) scripts/raintrainh_fold.py --src $(DATA)/rain100h-train-sample
	$(HEAVY_FT) --out runs/heavy_ft --steps 1600 --lr 2e-4 --batch 8 --init checkpoints/heavy_base.pth \
	  --bank checkpoints/heavy_ft_last.pth
	$(HEAVY_FT) --out runs/heavy_ft2 --steps 1000 --lr 1e-4 --batch 8 --init weights/pcnet_heavy.pth \
	  --bank checkpoints/heavy_ft2_last.pth
	$(HEAVY_FT) --out runs/heavy_ft3 --steps 1000 --lr 1e-4 --batch 32 --precision $(TRAIN_PRECISION) --ema 0.995 \
	  --init weights/pcnet_heavy.pth --bank checkpoints/heavy_ft3_last.pth

clean:
	rm -rf $(VENV) out build install log *.egg-info

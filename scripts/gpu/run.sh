#!/usr/bin/env bash
# One prepared run on a lent GPU machine (device tool): CUDA tests, pcnet-bench on CUDA, and a time-boxed
# light fine-tune at the authors' batch 32 of 128x128 patches.  Everything lands in $OUT.
#   run: bash scripts/gpu/run.sh      (carry: .gpu, made by scripts/gpu/pack_data.py)
# BUDGET_S: seconds this script may take in all (the call's timeout minus a margin).
set -u
BUDGET_S=${BUDGET_S:-540}
TRAIN_S=${TRAIN_S:-300}
DEVICE=${DEVICE:-cuda}; TESTS=${TESTS:-"test/test_cuda.py test/test_engine.py test/test_model.py test/test_weights.py test/test_training.py test/test_export.py"}
BATCH=${BATCH:-32}; PATCH=${PATCH:-128}; PREC=${PREC:-bf16}; LR=${LR:-4e-4}
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
T0=$(date +%s); left() { echo $(( BUDGET_S - ($(date +%s) - T0) )); }
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
PY=${PY:-python3}
exec > >(tee "$OUT/run.log") 2>&1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
$PY -c "import torch, cv2, numpy; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'cv2', cv2.__version__, 'numpy', numpy.__version__)"

DATA=/tmp/pcnet_data/rain100l-train
$PY scripts/gpu/pack_data.py unpack .gpu/rain100l-train $DATA || exit 1

# 1. step time at the chosen batch, then a schedule that fits TRAIN_S (validation every 250 steps included)
STEP_S=$(timeout 90 $PY scripts/gpu/probe_step.py $DATA $BATCH $PATCH $PREC | tail -1)
STEP_S=${STEP_S:-0.08}
STEPS=$($PY -c "print(max(200, int($TRAIN_S / ($STEP_S * 1.08 + 1.5 / 250))))")
echo "probe: $STEP_S s/step at ${BATCH}x${PATCH}x${PATCH} $PREC -> $STEPS steps in ${TRAIN_S} s (left $(left) s)"

# 2. training in the background; the tests beside it (mostly CPU)
timeout -s TERM $(( TRAIN_S + 60 )) $PY -m pcnet_ros.training.train --data $DATA --out /tmp/run_light \
  --steps $STEPS --batch $BATCH --patch $PATCH --lr $LR --warmup 200 --aug flips --precision $PREC \
  --eval-every 250 --device $DEVICE --init weights/pcnet_light.pth --export "$OUT/pcnet_light.pth" --quiet \
  > "$OUT/train.log" 2>&1 &
TRAIN_PID=$!
timeout 150 $PY -m pytest -q -p no:cacheprovider $TESTS > "$OUT/tests.log" 2>&1
echo "tests: rc=$? $(tail -1 "$OUT/tests.log")"
wait $TRAIN_PID; echo "training rc=$? (left $(left) s)"
cp /tmp/run_light/log.jsonl "$OUT/light_log.jsonl" 2>/dev/null
cp /tmp/run_light/last.pth "$OUT/light_last.pth" 2>/dev/null
grep -E "starting weights|^step|stopped" "$OUT/train.log"

# 3. the benchmark alone on the GPU: eager at three sizes (quick), then the compiled backend at one size
timeout 120 $PY -m pcnet_ros.tools.bench --device $DEVICE --skip-node --backends eager --repeats 10 \
  --json "$OUT/bench_eager.json"
echo "bench eager rc=$? (left $(left) s)"
B=$(( $(left) - 8 ))
if [ $B -gt 40 ]; then
  timeout $B $PY -m pcnet_ros.tools.bench --device $DEVICE --skip-node --backends compile --sizes 640x480 \
    --repeats 10 --json "$OUT/bench_compile.json"
  echo "bench compile rc=$?"
fi
echo "done in $(( $(date +%s) - T0 )) s"

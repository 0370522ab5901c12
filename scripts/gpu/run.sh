#!/usr/bin/env bash
# One prepared run on a lent GPU machine (device tool): CUDA tests, pcnet-bench on CUDA, and a time-boxed
# light fine-tunes side by side (one per VARIANTS entry LR/LOSS, default: each of LRS with the paper's loss) at
# BATCH of PATCHxPATCH patches (the authors': 32 of 128x128).  Everything lands in $OUT.
#   run: bash scripts/gpu/run.sh      (carry: .gpu, made by scripts/gpu/pack_data.py)
#   TAIL_LR=1e-4 TAIL_S=120: then a short low-rate tail from the best of those fine-tunes (see 2b)
#   HEAVY=1: the heavy fine-tune instead (the Makefile's HEAVY_FT: data, shares, rain mix and selection) from
#   weights/pcnet_heavy.pth; .gpu must then also hold rain100h-train-sample, pcnet-train and streaks, made by
#   scripts/gpu/prepare_heavy.sh (a subset of the streak layers: the whole set does not fit the 64 MiB tree)
# BUDGET_S: seconds this script may take in all (the call's timeout minus a margin).
set -u
BUDGET_S=${BUDGET_S:-540}
TRAIN_S=${TRAIN_S:-300}
DEVICE=${DEVICE:-cuda}; TESTS=${TESTS:-"test/test_cuda.py test/test_engine.py test/test_model.py test/test_weights.py test/test_training.py test/test_export.py"}
BATCH=${BATCH:-32}; PATCH=${PATCH:-128}; PREC=${PREC:-bf16}; LRS=${LRS:-"2e-4 4e-4"}; WARMUP=${WARMUP:-200}
VARIANTS=${VARIANTS:-$(for lr in $LRS; do printf '%s/paper ' $lr; done)}
EVAL_EVERY=${EVAL_EVERY:-250}
# TRANSPLANT: share of the patches that carry another training pair's real rain (0: off)
TRANSPLANT=${TRANSPLANT:-0}
# EMA: decay of the moving average of the weights validated beside them (0: off); 0.995 made the CPU's 34.92
EMA=${EMA:-0.995}
OUT=${OUT:-/tmp/gpu_out}; L=/tmp/gpu_logs; mkdir -p "$OUT" $L
# $OUT returns at most 8 files: weights there, every text file in $L, packed into $OUT/logs.tgz by pack
pack() { tar czf "$OUT/logs.tgz" -C $L . ; }
T0=$(date +%s); left() { echo $(( BUDGET_S - ($(date +%s) - T0) )); }
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
PY=${PY:-python3}
exec > >(tee $L/run.log) 2>&1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
$PY -c "import torch, cv2, numpy; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'cv2', cv2.__version__, 'numpy', numpy.__version__)"

DATA=/tmp/pcnet_data/rain100l-train
$PY scripts/gpu/pack_data.py unpack .gpu/rain100l-train $DATA || exit 1
MIX=""; [ "$TRANSPLANT" != 0 ] && MIX="--transplant-from $DATA --transplant-prob $TRANSPLANT"
RECIPE="--data $DATA $MIX"; START=weights/pcnet_light.pth; PICK=val_psnr_y
if [ "${HEAVY:-0}" = 1 ]; then
  H=/tmp/pcnet_data/rain100h-train-sample; F=/tmp/pcnet_data/h100fold
  $PY scripts/gpu/pack_data.py unpack .gpu/rain100h-train-sample $H || exit 1
  $PY scripts/raintrainh_fold.py --src $H --out $F || exit 1
  RECIPE="--data $F/train --data $DATA --data .gpu/pcnet-train --data-share 0.3 0.45 0.25 --val-data $F/val
    --synth-prob ${SYNTH:-0.2} --synth-level heavy --streaks .gpu/streaks --transplant-from $F/train
    --transplant-prob 0.6 --min-gain 0.05"
  START=weights/pcnet_heavy.pth; PICK=selection_score
fi

# 1. step time with one probe per run going at once (they share the GPU), then a schedule that fits TRAIN_S
#    (validation every EVAL_EVERY steps included).  VARIANTS: one light fine-tune each, side by side.
set -- $VARIANTS; NRUNS=$#
# STEP_S given (a probe of an earlier call): no probe
[ -n "${STEP_S:-}" ] || PROBES=$(for v in $VARIANTS; do timeout 90 $PY scripts/gpu/probe_step.py $DATA $BATCH $PATCH $PREC | tail -1 & done; wait)
[ -n "${STEP_S:-}" ] || STEP_S=$(echo "${PROBES:-}" | sort -g | tail -1); STEP_S=${STEP_S:-0.3}
STEPS=$($PY -c "print(max(100, int($TRAIN_S / ($STEP_S * 1.08 + 1.5 / $EVAL_EVERY))))")
echo "probe ($NRUNS at once): $(echo ${PROBES:-given}) s/step at ${BATCH}x${PATCH}x${PATCH} $PREC -> $STEPS steps in ${TRAIN_S} s (left $(left) s)"

# fine_tune NAME SECONDS STEPS LR WARMUP INIT [LOSS]: one light fine-tune in /tmp/run_NAME, time-boxed to SECONDS; its
# best goes to $OUT/NAME/best.pth, its log to $L/NAME.  collect NAME: its last.pth and history back, curve printed.
fine_tune() {
  rm -rf /tmp/run_$1; mkdir -p "$OUT/$1" $L/$1   # a warm machine keeps /tmp: never resume an old run
  timeout -s TERM $2 $PY -m pcnet_ros.training.train $RECIPE --out /tmp/run_$1 \
    --steps $3 --batch $BATCH --patch $PATCH --lr $4 --warmup $5 --aug flips --precision $PREC \
    --eval-every $EVAL_EVERY --device $DEVICE --init "$6" --loss ${7:-paper} --export "$OUT/$1/best.pth" --quiet \
    --ema $EMA > $L/$1/train.log 2>&1
}
collect() {
  cp /tmp/run_$1/log.jsonl $L/$1/log.jsonl 2>/dev/null
  cp /tmp/run_$1/last.pth "$OUT/$1/last.pth" 2>/dev/null
  echo "== $1"; grep -E "starting weights|^step|stopped" $L/$1/train.log
}

# 2. training in the background; the tests beside it (mostly CPU)
PIDS=""
NAMES=""
for v in $VARIANTS; do
  lr=${v%/*}; loss=${v#*/}; NAMES="$NAMES lr${lr}_$loss"
  fine_tune lr${lr}_$loss $(( TRAIN_S + 60 )) $STEPS $lr $WARMUP ${INIT:-$START} $loss &
  PIDS="$PIDS $!"
done
if [ "$TESTS" != none ]; then     # TESTS=none: a call after one that ran them
  timeout 300 $PY -m pytest -q -p no:cacheprovider $TESTS > $L/tests.log 2>&1
  echo "tests: rc=$? $(tail -1 $L/tests.log)"
fi
for p in $PIDS; do wait $p; echo "training $p rc=$? (left $(left) s)"; done
for n in $NAMES; do collect $n; done
pack

# 2b. TAIL_LR: a short cosine at a low rate from the best file the runs above exported (else the shipped
#     one), for TAIL_S seconds; on 2026-11-27 a 1e-4 tail after the 3e-4 run added 0.04 dB in 500 steps.
if [ -n "${TAIL_LR:-}" ]; then
  shopt -s nullglob; BESTS=("$OUT"/lr*/best.pth); shopt -u nullglob   # a run that never beat its start exports none
  INIT=$($PY - $PICK $START "${BESTS[@]}" <<'PYEOF'
import sys, torch
key, start, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
found = [(torch.load(p, map_location="cpu", weights_only=False)["meta"][key], p) for p in paths]
print(max(found)[1] if found else start)
PYEOF
)
  TAIL_STEPS=$($PY -c "print(max(100, int(${TAIL_S:-120} / ($STEP_S * 0.6 + 1.5 / 250))))")   # alone: about 0.6x
  echo "tail: $TAIL_STEPS steps at $TAIL_LR from $INIT (left $(left) s)"
  fine_tune tail $(( ${TAIL_S:-120} + 45 )) $TAIL_STEPS $TAIL_LR 20 "$INIT"
  echo "tail rc=$? (left $(left) s)"; collect tail
  pack
fi

# 3. the benchmark alone on the GPU: eager at three sizes (quick), then the compiled backend at one size
if [ "${BENCH:-1}" = 1 ]; then
  timeout 120 $PY -m pcnet_ros.tools.bench --device $DEVICE --skip-node --backends eager --repeats 10 \
    --json $L/bench_eager.json
  echo "bench eager rc=$? (left $(left) s)"
fi
B=$(( $(left) - 8 ))
if [ "${BENCH:-1}" = 1 ] && [ "${BENCH_COMPILE:-1}" = 1 ] && [ $B -gt 40 ]; then      # BENCH_COMPILE=0: measured on two H100 sessions
  timeout $B $PY -m pcnet_ros.tools.bench --device $DEVICE --skip-node --backends compile --sizes 640x480 \
    --repeats 10 --json $L/bench_compile.json
  echo "bench compile rc=$?"
fi
echo "done in $(( $(date +%s) - T0 )) s"
pack

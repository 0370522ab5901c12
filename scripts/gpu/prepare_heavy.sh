#!/usr/bin/env bash
# Fills .gpu with what `HEAVY=1 bash scripts/gpu/run.sh` reads besides the packed rain100l-train: the RainTrainH
# sample (packed), pcnet-train (its JPEGs as they are: smaller than any lossless repacking) and every 10th of the
# 825 Garg streak layers, stored grey (their three channels are equal, and the streak bank reads them grey).  All
# of .gpu and the tracked tree must travel in 64 MiB; the whole streak set is 63 MB as it comes.
#   bash scripts/gpu/prepare_heavy.sh          (DATA=../shared/data, PY=.venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-../shared/data}; PY=${PY:-.venv/bin/python}
[ -d .gpu/rain100l-train ] || $PY scripts/gpu/pack_data.py pack "$DATA/rain100l-train" .gpu/rain100l-train
rm -rf .gpu/rain100h-train-sample .gpu/pcnet-train .gpu/streaks
$PY scripts/gpu/pack_data.py pack "$DATA/rain100h-train-sample" .gpu/rain100h-train-sample
cp -r "$DATA/pcnet-train" .gpu/pcnet-train
mkdir .gpu/streaks
find "$DATA/rain-streaks-garg06" -maxdepth 1 -name '*.png' | sort -V | awk 'NR % 10 == 1' | $PY -c "
import sys, cv2
for line in sys.stdin:
    src = line.strip()
    cv2.imwrite('.gpu/streaks/' + src.rsplit('/', 1)[1], cv2.imread(src, cv2.IMREAD_GRAYSCALE), [cv2.IMWRITE_PNG_COMPRESSION, 9])
"
tracked=$(git ls-files | grep -v '^checkpoints/' | xargs du -bc | tail -1 | cut -f1)
echo "$(ls .gpu/streaks | wc -l) streak layers; .gpu and the tracked files outside checkpoints/ (take those out of the" \
  "index for the call): $(( ($(du -sb .gpu | cut -f1) + tracked) / 2**20 )) MiB of the 64 a call carries"

#!/usr/bin/env bash
# Every accuracy figure in the README, from scratch, one thread:
#   benchmarks/run_eval.sh            (about 12 minutes on one core: sface and dlib embed 6,124 photos)
# Writes benchmarks/results/eval_{pairs,identify}_<model>.json and calibration_check.json
# (a re-run of the calibration, to compare with src/facegate/vision/data/calibration.json).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMEXPR_NUM_THREADS=1
FACES=${FACES:-../shared/data/faces}
RESULTS=${RESULTS:-benchmarks/results}
FACEGATE=${FACEGATE:-python -m facegate}
mkdir -p "$RESULTS"
$FACEGATE eval calibrate --root "$FACES" --out "$RESULTS/calibration_check.json" --json > /dev/null
for model in sface dlib fused; do
    $FACEGATE eval pairs --pairs "$FACES/pairs.csv" --root "$FACES" --model "$model" --json \
        > "$RESULTS/eval_pairs_$model.json"
done
for model in sface fused; do
    $FACEGATE eval identify --root "$FACES" --model "$model" --json > "$RESULTS/eval_identify_$model.json"
done

#!/usr/bin/env bash
# Pipeline speed, one thread, facegate against face_recognition on the same LFW photos.
#
#   benchmarks/run_pipeline.sh [MODEL ...]        (default models: sface fused)
#
# Writes benchmarks/results/pipeline_<model>.json. "fused" is skipped, with a message,
# while the calibration data it needs (src/facegate/vision/data/calibration.json) is absent.
# Environment: DATA (default ../shared/data/faces), LIMIT (default 300), RESULTS (default
# benchmarks/results), FACEGATE (the command to run; default `facegate` when on PATH, else
# "$PYTHON -m facegate" with PYTHON defaulting to python3).
set -euo pipefail
cd "$(dirname "$0")/.."

# One thread everywhere: OpenCV is pinned by the bench itself; these cover any BLAS or
# OpenMP pool (numpy's OpenBLAS) before the process starts. dlib-bin has no BLAS.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMEXPR_NUM_THREADS=1

DATA=${DATA:-../shared/data/faces}
LIMIT=${LIMIT:-300}
RESULTS=${RESULTS:-benchmarks/results}
CALIBRATION=src/facegate/vision/data/calibration.json

run_facegate() {
    if [ -n "${FACEGATE:-}" ]; then
        # shellcheck disable=SC2086  # split on purpose: FACEGATE="python path/to/cli.py"
        $FACEGATE "$@"
    elif command -v facegate >/dev/null 2>&1; then
        facegate "$@"
    else
        "${PYTHON:-python3}" -m facegate "$@"
    fi
}

models=("$@")
if [ ${#models[@]} -eq 0 ]; then
    models=(sface fused)
fi
mkdir -p "$RESULTS"
status=0
for model in "${models[@]}"; do
    if [ "$model" = fused ] && [ ! -f "$CALIBRATION" ]; then
        echo "skipping fused: no calibration data at $CALIBRATION" \
             "(make it with: facegate eval calibrate --root $DATA)" >&2
        continue
    fi
    out="$RESULTS/pipeline_${model}.json"
    echo "== $model: bench pipeline --images $DATA --limit $LIMIT --peer face_recognition" >&2
    if run_facegate bench pipeline --images "$DATA" --limit "$LIMIT" --model "$model" \
            --peer face_recognition --json > "$out.tmp"; then
        mv "$out.tmp" "$out"
        grep -E '^  "(model|images|images_per_s|peer_images_per_s|speedup)"' "$out" >&2
    else
        echo "failed for $model:" >&2
        cat "$out.tmp" >&2
        rm -f "$out.tmp"
        status=1
    fi
done
exit $status

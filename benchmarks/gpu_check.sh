#!/usr/bin/env bash
# Issue 10's figures on a lent GPU (an H200), in one run of under 8 minutes, from the repository root:
#   1. benchmarks/gpu_selfcheck.py: the step really captured, the partial last batch equal to eager,
#      dropout under replay, eager vs graph metrics with one seed, device metrics vs scikit-learn;
#   2. benchmarks/training_throughput.py at 2M and 10M rows, batch 8192 and 65536: the graph bound, the
#      eager loop, the project's step with and without validation as ratios of the bound; then the
#      entrypoint on 14 days x 200,000 rows (8 epochs, batch 8192) broken into phases.
# The GPU machine has no MLflow: run benchmarks/gpu_wheels.sh on the development machine first and
# carry `.whl`; without it the entrypoint prints n/a and the rest still runs.
# Output goes to the terminal and to $1 (default: $OUT when set, else /tmp/flywheel-gpu-check).
# Exit status: 1 when the self-check failed.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-/tmp/flywheel-gpu-check}}"
mkdir -p "$out"
python="${PYTHON:-python3}"
export PYTHONPATH="$PWD/include${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MLFLOW_DISABLE_TELEMETRY=true
if compgen -G ".whl/*.whl" >/dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/flywheel-site .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/flywheel-site"
fi
started=$SECONDS
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; date -u; } | tee "$out/machine.txt"
status=0
timeout 150 "$python" benchmarks/gpu_selfcheck.py 2>&1 | tee "$out/selfcheck.txt" || status=1
timeout 300 "$python" benchmarks/training_throughput.py --device cuda --rows 2000000,10000000 \
  --batch-size 8192,65536 --epochs 2 --entrypoint-days 14 --entrypoint-rows-per-day 200000 \
  --entrypoint-epochs 8 --entrypoint-batch-size 8192 2>&1 | tee "$out/throughput.txt"
echo "gpu_check: $((SECONDS - started)) s; self-check $([ $status = 0 ] && echo passed || echo FAILED)"
exit $status

#!/usr/bin/env bash
# The GPU check of issue 19, for an offline GPU machine, in at most 8.5 minutes (GPU_CHECK_BUDGET seconds):
#   bash benchmarks/gpu.sh OUT [WHEELS] [--budget S] [--stage NAME=S ...]
# seg runs from this working tree (PYTHONPATH); what does not import is installed from the wheel folder WHEELS
# with `pip install --no-index` (how to fill it on a connected machine: docs/batches-and-measurement.md).
# Stages, budgets, OUT/summary.json and OUT/logs/: benchmarks/gpu_check.py. Exit status 1 when a stage failed.
# DATA (default /tmp/seg-gpu-bench/brats, reused) and WORKERS (default min(8, CPUs)) as before.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
exec "${PYTHON:-python3}" "$ROOT/benchmarks/gpu_check.py" "$@"

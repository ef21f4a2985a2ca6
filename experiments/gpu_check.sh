#!/usr/bin/env bash
# Runs experiments/gpu_check.py from the repository root on a GPU machine (about 7 min on
# one H100). Usage: bash experiments/gpu_check.sh [OUT_DIR] [GIT_REVISION]
# OUT_DIR defaults to results/lowering/gpu; pass GIT_REVISION when the tree has no .git.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-results/lowering/gpu}"
rev="${2:-$(git rev-parse HEAD 2>/dev/null || true)}"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
exec python3 experiments/gpu_check.py --out "$out" ${rev:+--git-revision "$rev"}

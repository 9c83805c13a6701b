#!/usr/bin/env bash
# The tables of results/tsc_assign_every/ from a finished sweep folder (default: the committed runs/): accuracy by
# shot group (the BNS paper's CIFAR-10-LT thresholds), calibration, and training time of each run.
#   bash results/tsc_assign_every/tables.sh [SWEEP_DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=results/tsc_assign_every
SWEEP=${1:-$OUT/runs}
source results/keep_records.sh
keep_records "$SWEEP" "$OUT" config.json result.json log.jsonl predictions.npz done
ltbench table "$OUT/runs" --format markdown --shots 500,200 --metrics ece --out "$OUT/table.md"
ltbench table "$OUT/runs" --format csv --shots 500,200 --metrics ece --out "$OUT/summary.csv"

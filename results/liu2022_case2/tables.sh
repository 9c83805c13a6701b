#!/usr/bin/env bash
# Records, table and figure of results/liu2022_case2/ from a finished sweep folder (default: the committed runs/):
# the accuracy of truck (class 9, n images) and the mean over classes 0-8 (5,000 images each) against n.
#   bash results/liu2022_case2/tables.sh [SWEEP_DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=results/liu2022_case2
SWEEP=${1:-$OUT/runs}
source results/keep_records.sh
keep_records "$SWEEP" "$OUT" config.json result.json log.jsonl predictions.npz done
ltbench table "$OUT/runs" --format markdown --metrics class:9,class:0-8 --out "$OUT/table.md"
ltbench table "$OUT/runs" --format csv --metrics class:9,class:0-8,macro_f1,ece --out "$OUT/summary.csv"
ltbench plot "$OUT/runs" --kind sweep --x "class_counts[9]" --classes 9,0-8,overall --out "$OUT/figures"

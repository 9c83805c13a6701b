#!/usr/bin/env bash
# Records and tables of results/liu2022_table/ from a finished (or partly finished) sweep folder (default: the
# committed runs/): Liu & Liu's Table 1 layout, the imbalance ratios as column groups, the paper's 200-epoch IR-100
# numbers beside ours (--published, Table 1 rows), and the classifier weight-norm variance (their Table 2).
#   bash results/liu2022_table/tables.sh [SWEEP_DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=results/liu2022_table
SWEEP=${1:-$OUT/runs}
source results/keep_records.sh
keep_records "$SWEEP" "$OUT" config.json result.json log.jsonl predictions.npz done
ltbench table "$OUT/runs" --format markdown --columns imbalance_ratio --shots 500,200 --published \
    --source "Table 1" --out "$OUT/table.md"
ltbench table "$OUT/runs" --format latex --columns imbalance_ratio --shots 500,200 --out "$OUT/table.tex"
ltbench table "$OUT/runs" --format csv --shots 500,200 --metrics macro_f1,ece,wn_var --out "$OUT/summary.csv"
ltbench plot "$OUT/runs" --kind weight-norms --out "$OUT/figures"

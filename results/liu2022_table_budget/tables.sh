#!/usr/bin/env bash
# Records and table of results/liu2022_table_budget/ from a finished sweep folder (default: the committed runs/):
# CE at the quick preset (20 epochs), CE+SSP (20 rotation + 20 CE epochs), both from results/liu2022_table/runs, and
# CE for 40 epochs (this folder), IR 100 and IR 10 as column groups, with the classifier weight-norm variance and the
# paper's 200-epoch IR-100 numbers (Table 1) beside each row.
#   bash results/liu2022_table_budget/tables.sh [SWEEP_DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=results/liu2022_table_budget
SWEEP=${1:-$OUT/runs}
source results/keep_records.sh
keep_records "$SWEEP" "$OUT" config.json result.json log.jsonl predictions.npz done
ltbench table results/liu2022_table/runs "$OUT/runs" --methods ce --format markdown \
    --columns imbalance_ratio --shots 500,200 --metrics wn_var --published --source "Table 1" --out "$OUT/table.md"
ltbench table results/liu2022_table/runs "$OUT/runs" --methods ce --format csv --shots 500,200 \
    --metrics macro_f1,ece,wn_var --out "$OUT/summary.csv"

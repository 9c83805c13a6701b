#!/usr/bin/env bash
# The tables of results/cifar10_lt_quick20_bns_table/ from a finished sweep folder (default: the committed runs/).
#   bash results/cifar10_lt_quick20_bns_table/tables.sh [SWEEP_DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=results/cifar10_lt_quick20_bns_table
SWEEP=${1:-$OUT/runs}
source results/keep_records.sh
keep_records "$SWEEP" "$OUT" config.json result.json log.jsonl predictions.npz features.npz done
# the BNS paper's layout: its poster's numbers beside ours (500/200 groups)
ltbench table "$OUT/runs" --format markdown --shots 500,200 --published --source poster --out "$OUT/table_500_200.md"
ltbench table "$OUT/runs" --format latex --shots 500,200 --published --source poster --out "$OUT/table_500_200.tex"
ltbench table "$OUT/runs" --format markdown --metrics macro_f1,g_mean,ece --out "$OUT/table.md"
ltbench table "$OUT/runs" --format csv --metrics macro_f1,g_mean,ece,wn_var --out "$OUT/summary.csv"
for kind in groups per-class curves similarity tsne; do
    ltbench plot "$OUT/runs" --kind "$kind" --shots 500,200 --out "$OUT/figures"
done

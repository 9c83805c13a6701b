#!/usr/bin/env bash
# The tables of results/cifar10_lt_variants/ from a finished sweep folder (default: the committed runs/).
#   bash results/cifar10_lt_variants/tables.sh [SWEEP_DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=results/cifar10_lt_variants
SWEEP=${1:-$OUT/runs}
source results/keep_records.sh
keep_records "$SWEEP" "$OUT" config.json result.json log.jsonl predictions.npz done
# the BNS paper's shot groups (many > 500, few < 200) and its published rows beside ours
ltbench table "$OUT/runs" --format markdown --shots 500,200 --published --source poster --out "$OUT/table_500_200.md"
ltbench table "$OUT/runs" --format latex --shots 500,200 --published --source poster --out "$OUT/table_500_200.tex"
ltbench table "$OUT/runs" --format markdown --metrics macro_f1,g_mean,ece,auc --out "$OUT/table.md"
ltbench table "$OUT/runs" --format csv --metrics macro_f1,g_mean,ece,auc --out "$OUT/summary.csv"

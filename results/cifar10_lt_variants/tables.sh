#!/usr/bin/env bash
# The tables of results/cifar10_lt_variants/ from a finished sweep folder (default: the committed runs/).
#   bash results/cifar10_lt_variants/tables.sh [SWEEP_DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=results/cifar10_lt_variants
SWEEP=${1:-$OUT/runs}
if [ "$SWEEP" != "$OUT/runs" ]; then  # keep the finished runs' records (not the checkpoints)
    for run in "$SWEEP"/*/; do
        [ -f "$run/done" ] || continue
        mkdir -p "$OUT/runs/$(basename "$run")"
        cp "$run"/{config.json,result.json,log.jsonl,predictions.npz,done} "$OUT/runs/$(basename "$run")/"
    done
fi
# the BNS paper's shot groups (many > 500, few < 200) and its published rows beside ours
ltbench table "$OUT/runs" --format markdown --shots 500,200 --published --source poster --out "$OUT/table_500_200.md"
ltbench table "$OUT/runs" --format latex --shots 500,200 --published --source poster --out "$OUT/table_500_200.tex"
ltbench table "$OUT/runs" --format markdown --metrics macro_f1,g_mean,ece,auc --out "$OUT/table.md"
ltbench table "$OUT/runs" --format csv --metrics macro_f1,g_mean,ece,auc --out "$OUT/summary.csv"

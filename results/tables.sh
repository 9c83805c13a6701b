#!/usr/bin/env bash
# Tables, records and figures of one finished sweep, as committed under results/ (used by every regenerate.sh).
#   bash results/tables.sh SWEEP_DIR OUT_DIR [extra plot kinds...]
set -euo pipefail
SWEEP=$1
OUT=$2
shift 2
mkdir -p "$OUT"
ltbench table "$SWEEP" --format markdown --metrics macro_f1,g_mean,ece,auc --out "$OUT/table.md"
ltbench table "$SWEEP" --format markdown --shots 500,200 --out "$OUT/table_500_200.md"
ltbench table "$SWEEP" --format latex --metrics macro_f1,g_mean,ece,auc --out "$OUT/table.tex"
ltbench table "$SWEEP" --format csv --metrics macro_f1,g_mean,ece,auc,wn_var --out "$OUT/summary.csv"
python -c "import sys; from ltbench.report import load_records; load_records(sys.argv[1]).to_csv(sys.argv[2], index=False)" \
    "$SWEEP" "$OUT/records.csv"
for kind in groups per-class "$@"; do
    ltbench plot "$SWEEP" --kind "$kind" --out "$OUT/figures"
done

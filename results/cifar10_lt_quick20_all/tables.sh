#!/usr/bin/env bash
# The tables and figures of results/cifar10_lt_quick20_all/ from a sweep folder (default: the committed runs/).
# Finished runs' records (not the checkpoints) are copied into runs/ first.
#   bash results/cifar10_lt_quick20_all/tables.sh [SWEEP_DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=results/cifar10_lt_quick20_all
SWEEP=${1:-$OUT/runs}
source results/keep_records.sh
keep_records "$SWEEP" "$OUT" config.json result.json log.jsonl predictions.npz features.npz done
ltbench table "$OUT/runs" --format markdown --metrics macro_f1,g_mean,ece,auc --out "$OUT/table.md"
ltbench table "$OUT/runs" --format latex --metrics macro_f1,g_mean,ece,auc --out "$OUT/table.tex"
ltbench table "$OUT/runs" --format markdown --shots 500,200 --out "$OUT/table_500_200.md"
ltbench table "$OUT/runs" --format csv --metrics macro_f1,g_mean,ece,auc,wn_var --out "$OUT/summary.csv"
# one row per run with its code version (commit, dirty), the evidence that every row ran at one clean commit; no
# run_dir, which names the machine's checkout
python -c "import sys; from ltbench.report import load_records; load_records(sys.argv[1]).drop(columns='run_dir').to_csv(sys.argv[2], index=False)" \
    "$OUT/runs" "$OUT/records.csv"
# the BNS+IP-DPP paper's rows (those measured so far), its poster's numbers beside ours, 500/200 groups
BNS=ce,focal,ldam_drw,tau_norm,ride,kcl,tsc,sbcl,otmix,disa,bns_ipdpp,bbn
HAVE=$(python -c "import sys; from ltbench.report import load_records; h=set(load_records(sys.argv[1])['method']); \
print(','.join(m for m in sys.argv[2].split(',') if m in h))" "$OUT/runs" "$BNS")
ltbench table "$OUT/runs" --methods "$HAVE" --shots 500,200 --published --source poster --out "$OUT/bns_table.md"
ltbench table "$OUT/runs" --methods "$HAVE" --shots 500,200 --published --source poster --out "$OUT/bns_table.tex"
for kind in groups per-class; do
    ltbench plot "$OUT/runs" --kind "$kind" --shots 500,200 --out "$OUT/figures"
done

#!/usr/bin/env bash
# Regenerates results/cifar10_lt_quick20/: ten methods on the shared real CIFAR-10-LT (IR 100, ResNet-32 or the
# method's preset backbone, seed 0) at the `quick` preset — every stage 20 epochs, milestones scaled — NOT the
# papers' recipes (slurm/quick20_cifar10.toml). Runs through the local one-node SLURM cluster, two 1-thread jobs
# at a time: about 4.5 hours of CPU on a 2-core machine.
#   DATA=/path/holding/cifar10 bash results/cifar10_lt_quick20/regenerate.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-$HOME/.cache/ltbench/data}
RUNS=${RUNS:-ltbench-out/quick20}
OUT=results/cifar10_lt_quick20
bash slurm/dev-cluster/start-local-cluster.sh >/dev/null
ltbench sweep slurm/quick20_cifar10.toml --launcher slurm --preset localhost --data-root "$DATA" --out "$RUNS" --wait
SWEEP=$RUNS/cifar10_lt_quick20
ltbench table "$SWEEP" --format markdown --metrics macro_f1,g_mean,ece --out $OUT/table.md
ltbench table "$SWEEP" --format markdown --shots 500,200 --out $OUT/table_500_200.md
ltbench table "$SWEEP" --format latex --metrics macro_f1,g_mean,ece --out $OUT/table.tex
ltbench table "$SWEEP" --format csv --metrics macro_f1,g_mean,ece,wn_var --out $OUT/summary.csv
python -c "import sys; from ltbench.report import load_records; load_records(sys.argv[1]).to_csv(sys.argv[2], index=False)" \
    "$SWEEP" $OUT/records.csv
ltbench plot "$SWEEP" --kind groups --out $OUT/figures
ltbench plot "$SWEEP" --kind per-class --out $OUT/figures

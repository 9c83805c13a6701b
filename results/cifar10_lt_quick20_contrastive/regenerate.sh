#!/usr/bin/env bash
# Regenerates results/cifar10_lt_quick20_contrastive/: KCL, TSC, SBCL and CE on the shared real CIFAR-10-LT
# (IR 100, ResNet-32, seed 0) at the `quick` preset — every stage 20 epochs, milestones scaled — in bf16
# autocast (slurm/quick20_contrastive.toml). NOT the papers' recipes (their stage 1 is 1000 epochs). Runs through
# the local one-node SLURM cluster, two 1-thread jobs at a time; then the linear probe of every run's frozen
# features (probe.txt).
#   DATA=/path/holding/cifar10 bash results/cifar10_lt_quick20_contrastive/regenerate.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-$HOME/.cache/ltbench/data}
RUNS=${RUNS:-ltbench-out/quick20}
OUT=results/cifar10_lt_quick20_contrastive
bash slurm/dev-cluster/start-local-cluster.sh >/dev/null
ltbench sweep slurm/quick20_contrastive.toml --launcher slurm --preset localhost --data-root "$DATA" --out "$RUNS" --wait
SWEEP=$RUNS/cifar10_lt_quick20_contrastive
bash results/tables.sh "$SWEEP" $OUT tsne
ltbench probe "$SWEEP"/*/ --data-root "$DATA" > $OUT/probe.txt

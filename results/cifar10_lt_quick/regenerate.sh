#!/usr/bin/env bash
# Regenerates results/cifar10_lt_quick/ from scratch: every registered method on the shared real CIFAR-10-LT
# (IR 100, ResNet-32, seed 0) at a short budget of 2 epochs per stage (slurm/quick_cifar10.toml) — NOT the
# papers' recipes. Runs through the local one-node SLURM cluster, two 1-thread jobs at a time.
#   DATA=/path/holding/cifar10 bash results/cifar10_lt_quick/regenerate.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-$HOME/.cache/ltbench/data}
RUNS=${RUNS:-ltbench-out/grid}
OUT=results/cifar10_lt_quick
bash slurm/dev-cluster/start-local-cluster.sh >/dev/null
ltbench sweep slurm/quick_cifar10.toml --launcher slurm --preset localhost --data-root "$DATA" --out "$RUNS" --wait
SWEEP=$RUNS/cifar10_lt_quick
bash results/tables.sh "$SWEEP" $OUT

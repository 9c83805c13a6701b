#!/usr/bin/env bash
# Regenerates results/cifar10_lt_quick20_all/: every registered method on the shared real CIFAR-10-LT (IR 100,
# ResNet-32, seed 0) at the `quick` preset (every stage 20 epochs, milestones and mixing windows scaled), bf16,
# one thread per run, through the local one-node SLURM cluster (slurm/quick20_all.toml, then
# slurm/quick20_all_reuse.toml: cRT, LWS, τ-norm from the CE run, RIDE-EA from the RIDE run). About 6-7 h on a
# 2-core CPU; restartable (finished runs are kept). Run it from a clean checkout of one commit.
#   DATA=/path/holding/cifar10 [RUNS=runs/folder] bash results/cifar10_lt_quick20_all/regenerate.sh
source "$(dirname "$0")/../common.sh"
run_sweep slurm/quick20_all.toml
ltbench sweep slurm/quick20_all_reuse.toml --from "$SWEEP" --launcher slurm --preset "$PRESET" \
    --data-root "$DATA" --out "$RUNS" --wait ${RESUME[@]+"${RESUME[@]}"}
bash "$RESULTS/tables.sh" "$SWEEP"

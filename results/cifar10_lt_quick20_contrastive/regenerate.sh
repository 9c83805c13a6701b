#!/usr/bin/env bash
# Regenerates results/cifar10_lt_quick20_contrastive/: KCL, TSC, SBCL and CE on the shared real CIFAR-10-LT
# (IR 100, ResNet-32, seed 0) at the `quick` preset — every stage 20 epochs, milestones scaled — in bf16
# autocast (slurm/quick20_contrastive.toml). NOT the papers' recipes (their stage 1 is 1000 epochs). Runs through
# the local one-node SLURM cluster, two 1-thread jobs at a time; then the linear probe of every run's frozen
# features (probe.txt).
#   DATA=/path/holding/cifar10 [RUNS=runs/folder] bash results/cifar10_lt_quick20_contrastive/regenerate.sh
source "$(dirname "$0")/../common.sh"
run_sweep slurm/quick20_contrastive.toml
bash "$RESULTS/../tables.sh" "$SWEEP" "$RESULTS" tsne
ltbench probe "$SWEEP"/*/ --data-root "$DATA" > "$RESULTS/probe.txt"

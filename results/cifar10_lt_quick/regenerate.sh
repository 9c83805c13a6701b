#!/usr/bin/env bash
# Regenerates results/cifar10_lt_quick/ from scratch: every registered method on the shared real CIFAR-10-LT
# (IR 100, ResNet-32, seed 0) at a short budget of 2 epochs per stage (slurm/quick_cifar10.toml) — NOT the
# papers' recipes. Runs through the local one-node SLURM cluster, two 1-thread jobs at a time.
#   DATA=/path/holding/cifar10 [RUNS=runs/folder] bash results/cifar10_lt_quick/regenerate.sh
source "$(dirname "$0")/../common.sh"
run_sweep slurm/quick_cifar10.toml
bash "$RESULTS/../tables.sh" "$SWEEP" "$RESULTS"

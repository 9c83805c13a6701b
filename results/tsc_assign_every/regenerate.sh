#!/usr/bin/env bash
# Regenerates results/tsc_assign_every/: TSC (the paper's loss) with its Hungarian assignment every step and every
# 10th step, side by side on the shared real CIFAR-10-LT (IR 100, ResNet-32, seed 0) at the `quick` preset, bf16,
# one thread per run (slurm/quick20_tsc_assign_every.toml). Two runs, about 1 CPU-hour (both at once on 2 cores).
#   DATA=/path/holding/cifar10 [RUNS=runs/folder] bash results/tsc_assign_every/regenerate.sh
source "$(dirname "$0")/../common.sh"  # DATA, RUNS, the local one-node SLURM cluster (2 runs at a time)
run_sweep slurm/quick20_tsc_assign_every.toml
bash "$RESULTS/tables.sh" "$SWEEP"

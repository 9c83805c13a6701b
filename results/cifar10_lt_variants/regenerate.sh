#!/usr/bin/env bash
# Regenerates results/cifar10_lt_variants/: released-code variants side by side on the shared real CIFAR-10-LT
# (IR 100, ResNet-32, seed 0) at the `quick` preset, bf16, one thread per run (slurm/quick20_variants.toml):
# BNS+IP-DPP stage-2 subset exact k-DPP / fresh uniform / the release's fixed subset, TSC paper / ImageNet release,
# SBCL warm-up ×1 / ×1.43. Seven runs, about 4 CPU-hours (two at a time on a 2-core machine: about 2 hours).
#   DATA=/path/holding/cifar10 [RUNS=runs/folder] bash results/cifar10_lt_variants/regenerate.sh
source "$(dirname "$0")/../common.sh"  # DATA, RUNS, the local one-node SLURM cluster (2 runs at a time)
ltbench sweep slurm/quick20_variants.toml --launcher slurm --preset "$PRESET" --data-root "$DATA" --out "$RUNS" \
    --wait ${RESUME[@]+"${RESUME[@]}"}
bash "$RESULTS/tables.sh" "$RUNS/cifar10_lt_variants"

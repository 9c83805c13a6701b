#!/usr/bin/env bash
# Regenerates results/cifar10_lt_quick20_bns_table/: the rows of the BNS+IP-DPP paper's comparison table that
# ltbench has measured, plus BBN, on the shared real CIFAR-10-LT (IR 100, ResNet-32, seed 0) at the `quick`
# preset (every stage 20 epochs, milestones and mixing windows scaled), bf16 autocast
# (slurm/quick20_bns_table.toml). NOT the papers' recipes: compare methods at equal budget only. By default all
# twelve rows of the spec (3.6 CPU-hours on a CPU without AMX; the contrastive methods and BNS+IP-DPP 25-30 min each);
# METHODS=a,b,... runs some of them. The committed records were all made at commit 7722fdc, over two sittings:
# PIN=7722fdc takes every finished record made at 7722fdc and runs only what is missing (here: nothing).
# Tables in the paper's layout: shot groups 500/200 (many > 500, few < 200 training images: 5/2/3 classes), the
# published numbers beside.
#   DATA=/path/holding/cifar10 [RUNS=runs/folder] [METHODS=otmix,disa,...] [PIN=7722fdc] \
#       bash results/cifar10_lt_quick20_bns_table/regenerate.sh
source "$(dirname "$0")/../common.sh"
ltbench sweep slurm/quick20_bns_table.toml ${METHODS:+--methods "$METHODS"} --launcher slurm --preset "$PRESET" \
    --data-root "$DATA" --out "$RUNS" --wait ${RESUME[@]+"${RESUME[@]}"}
SWEEP=$RUNS/cifar10_lt_quick20_bns_table
bash "$RESULTS/tables.sh" "$SWEEP"

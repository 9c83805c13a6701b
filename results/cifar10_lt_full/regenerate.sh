#!/usr/bin/env bash
# Regenerates results/cifar10_lt_full/ from scratch: the papers' full recipes on the shared real CIFAR-10-LT
# (IR 100, ResNet-32, seed 0, 200 epochs, bf16 autocast, test accuracy logged every epoch for the best-test†
# column) through the local one-node SLURM cluster, two 1-thread jobs at a time (~2-3 h per run on a 2-core
# CPU). slurm/full_cifar10.toml (ce, ldam_drw, ce_drw, focal) first; the decoupling spec takes its CE stage
# from that sweep's finished ce run (--from); then RIDE and CE in fp32. The finished runs' records (config,
# result, log, predictions, feature sample; not the checkpoints) are copied to runs/, the tables made from them.
#   DATA=/path/holding/cifar10 [RUNS=runs/folder] bash results/cifar10_lt_full/regenerate.sh
# SPECS="full_cifar10_fp32" (names under slurm/) runs only those sweeps, e.g. to finish one run over several
# sittings with PIN=COMMIT, the run's checkpoint parked in unfinished/ between them (results/park.sh), and
# PRESET=localhost_2cpu to give a lone run both cores (slurm/dev-cluster/presets.toml).
ALL="full_cifar10 full_cifar10_decoupling full_cifar10_more full_cifar10_fp32"
SPECS=${SPECS:-$ALL}
for spec in $SPECS; do
    [[ " $ALL " == *" $spec "* ]] || { echo "SPECS: unknown sweep '$spec' (accepted: $ALL)" >&2; exit 2; }
done
source "$(dirname "$0")/../common.sh"
SWEEP=$RUNS/cifar10_lt_full
for spec in $SPECS; do
    if [ "$spec" = full_cifar10_decoupling ]; then  # cRT, LWS and τ-norm from the finished ce run of full_cifar10
        ltbench sweep slurm/full_cifar10_decoupling.toml --from "$SWEEP" --launcher slurm --preset "$PRESET" \
            --data-root "$DATA" --out "$RUNS" --wait ${RESUME[@]+"${RESUME[@]}"}
    else
        run_sweep "slurm/$spec.toml"
    fi
done
OUT=$RESULTS
source "$RESULTS/../keep_records.sh"
keep_records "$SWEEP" "$OUT" config.json result.json log.jsonl predictions.npz features.npz done
park "$SWEEP" "$OUT" "${PIN:-HEAD}"  # drops the parked checkpoints of the runs that have now finished (results/park.sh)
bash "$OUT/tables.sh"

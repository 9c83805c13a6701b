#!/usr/bin/env bash
# Regenerates results/bench/: the outputs behind every speed figure of the README's "Performance" section, each
# bench's stdout in <part>.txt with the command, commit, date and CPU flags on top. Speed depends on what else
# runs: train/compare/profile/startup need an otherwise idle machine; dpp/ot/report compare solvers side by side
# in one process, so their ratios hold under load (decode: both decoders of the same loader, one after the
# other); ddp is a CPU/gloo figure (the README states the condition each was measured under). The dppy column of
# dpp needs the `dpp` extra (pip install -e ".[dpp]"). PARTS=train_nobf16, on a CPU without avx512_bf16 or AMX
# (idle), measures what emulated bf16 costs there, the case `--precision auto` avoids.
#   DATA=/path/holding/cifar10 [PARTS="train compare profile startup dpp ot report ddp decode"] bash results/bench/regenerate.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=results/bench
DATA=${DATA:-$HOME/.cache/ltbench/data}
PARTS=${PARTS:-train compare profile startup dpp ot report ddp decode}

header() {  # what ran, where and when
    echo "# $1"
    # dirty = uncommitted changes outside results/bench (the outputs this script writes do not count)
    echo "# commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!results/bench' || echo ' (dirty)'), $(date -u +%FT%TZ)"
    echo "# cpu: $(python -c 'from ltbench.records import cpu_info; print(cpu_info())'), torch $(python -c 'import torch; print(torch.__version__)')"
    echo "# load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
}

run() {  # run PART COMMAND...: the command's output, with its header, into $OUT/PART.txt
    local part=$1
    shift
    { header "$*"; "$@"; } > "$OUT/$part.txt.tmp" 2>&1 && mv "$OUT/$part.txt.tmp" "$OUT/$part.txt"
}

for part in $PARTS; do
    case $part in
        train)
            for t in 1 2; do
                run "train_threads$t" ltbench bench train --dataset cifar10_lt --data-root "$DATA" --precision both --threads "$t"
            done ;;
        compare)
            for t in 1 2; do
                run "compare_threads$t" ltbench bench compare --dataset cifar10_lt --data-root "$DATA" --precision both --threads "$t"
            done ;;
        train_nobf16)  # only on a CPU without avx512_bf16/AMX (bf16 emulated, slow: 10 steps), not in the default PARTS
            run train_nobf16 ltbench bench train --dataset cifar10_lt --data-root "$DATA" --precision both --threads 1 \
                --steps 10 ;;
        ddp) run ddp ltbench bench train --dataset digits_lt --devices 2 --threads 1 ;;
        profile) run profile ltbench bench profile --dataset cifar10_lt --data-root "$DATA" --threads 1 ;;
        startup) run startup bash results/bench/startup.sh ;;
        dpp) run dpp ltbench bench dpp ;;
        ot) run ot env OMP_NUM_THREADS=1 ltbench bench ot --repeats 21 ;;
        report) run report ltbench bench report ;;
        decode) run decode ltbench bench decode --data-root "$DATA" --workers 1 --threads 1 ;;  # 2,000 JPEGs from CIFAR-10
        *) echo "unknown part $part (train compare profile startup dpp ot report ddp decode train_nobf16)" >&2; exit 2 ;;
    esac
done

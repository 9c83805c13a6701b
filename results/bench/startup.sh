#!/usr/bin/env bash
# Start-up and the default run (results/bench/regenerate.sh PARTS=startup): wall seconds of `ltbench --help`,
# `ltbench list`, and `ltbench run` with only --seed/--precision (BNS+IP-DPP on digits_lt, both stages), seeds 0-2.
set -euo pipefail
secs() { local t0 t1; t0=$(date +%s.%N); "$@" > /tmp/ltbench-startup.out 2>&1; t1=$(date +%s.%N); printf "%.2f" "$(echo "$t1 - $t0" | bc)"; }
for i in 1 2 3; do
    echo "ltbench --help: $(secs ltbench --help) s"
    echo "ltbench list: $(secs ltbench list) s"
done
for seed in 0 1 2; do
    for precision in bf16 fp32; do
        out=$(mktemp -d)
        echo "ltbench run --seed $seed --precision $precision: $(secs ltbench run --seed "$seed" --precision "$precision" --out "$out") s"
        python -c "import json, glob, sys; r = json.load(open(glob.glob(sys.argv[1] + '/**/result.json', recursive=True)[0]));
print('  overall', round(100 * r['metrics']['overall'], 2), '%, precision', r['env']['precision'])" "$out"
        rm -rf "$out"
    done
done

#!/usr/bin/env bash
# The GPU check of ltbench: one NVIDIA GPU, no network. Run from the repository root of a copy that also holds
#   .whl/   wheels of what the GPU machine lacks (kornia, kornia_rs, submitit; the machine's python3 has torch),
#   .gpu/cifar10_lt.tar.gz   the CIFAR-10-LT training subset + test set (python slurm/gpu/cifar10_lt_copy.py ...).
#   OUT=/some/dir DEADLINE_S=540 bash slurm/gpu_check.sh
# In order, each step bounded by the time left: install + torch/GPU info; the data; `ltbench bench train` on the
# GPU alone (fp32, bf16, each also compiled); then, side by side, the full 200-epoch CIFAR-10-LT recipe of
# CE, LDAM-DRW, CE-DRW and Focal in the background (bf16, test accuracy every epoch) and `pytest -m gpu` in
# the foreground (every method on CUDA with CUDA's sync detector, mid-epoch resume on CUDA, compile); runs
# still going at the deadline get SIGTERM (they save a mid-epoch checkpoint). Logs, a summary and the runs'
# records (result.json, log.jsonl, config.json) come back under $OUT.
set -uo pipefail
T0=$(date +%s)
DEADLINE_S=${DEADLINE_S:-540}
ROOT=$PWD
OUT=${OUT:-$ROOT/gpu-check-out}
WORK=${GPU_CHECK_WORK:-/tmp/ltbench-gpu}
RUNS_METHODS=${RUNS_METHODS:-"ce ldam_drw ce_drw focal"}
DEVICE=${DEVICE:-cuda}           # DEVICE=cpu RUN_EPOCHS=1 rehearses the script on a CPU machine
RUN_EPOCHS=${RUN_EPOCHS:-}       # empty: the full recipe (200 epochs)
PY=${PY:-python3}                # the GPU machine's python3 holds torch
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1 LTBENCH_CACHE=$WORK/cache OMP_NUM_THREADS=2
elapsed() { echo $(( $(date +%s) - T0 )); }
left() { echo $(( DEADLINE_S - $(elapsed) )); }
say() { echo "$*" | tee -a "$OUT/summary.txt"; }
step() {  # step NAME MAX_S CMD...: CMD under timeout min(MAX_S, time left - 20 s) -> $OUT/NAME.log
  local name=$1 max=$2; shift 2
  local t=$(( max < $(left) - 20 ? max : $(left) - 20 )) s rc
  if (( t < 10 )); then say "SKIP $name (time)"; return 99; fi
  s=$(date +%s)
  timeout --kill-after=10 "$t" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  say "$(printf '%-8s %-22s %4ss (limit %ss, t=%ss)' "$([ $rc = 0 ] && echo OK || echo "rc=$rc")" "$name" $(( $(date +%s) - s )) "$t" "$(elapsed)")"
  return $rc
}
say "ltbench GPU check $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD 2>/dev/null || echo '?') deadline ${DEADLINE_S}s"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1 | sed 's/^/gpu: /' | tee -a "$OUT/summary.txt"

# 1. wheels + info
if [ -d .whl ] && [ "$DEVICE" = cuda ] && ! [ -f "$WORK/site/.done" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --target "$WORK/site" .whl/*.whl > "$OUT/01_pip.log" 2>&1 && touch "$WORK/site/.done"
fi
export PYTHONPATH=$ROOT:$WORK/site
step 01_info 60 $PY -c "
import torch, timm, kornia, submitit, ltbench
gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'
print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpu', gpu, 'cpu threads', torch.get_num_threads())
print('timm', timm.__version__, 'kornia', kornia.__version__, 'ltbench', ltbench.__file__)" || { say "FATAL: imports"; cat "$OUT/01_info.log"; exit 1; }
cat "$OUT/01_info.log" | tee -a "$OUT/summary.txt"

# 2. data
DATA=$WORK/data
[ -d "$DATA/cifar10/test" ] || { mkdir -p "$DATA" && tar xzf .gpu/cifar10_lt.tar.gz -C "$DATA"; }
say "data: $(find "$DATA/cifar10/train" -type f | wc -l) train / $(find "$DATA/cifar10/test" -type f | wc -l) test images"

# 3. throughput, the GPU alone
COMPILE=$([ "$DEVICE" = cuda ] && echo --compile)
step 03_bench_train 120 $PY -m ltbench bench train --device "$DEVICE" --precision both $COMPILE --dataset cifar10_lt \
  --data-root "$DATA" --batch-size 128 --steps "${BENCH_STEPS:-100}"
grep -E "^\||^device" "$OUT/03_bench_train.log" | tee -a "$OUT/summary.txt"

# 4. the full recipes in the background
RUN_LIMIT=$(( $(left) - 25 ))
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader -l 2 > "$OUT/gpu_util.csv" 2>/dev/null &
SAMPLER=$!
PIDS=()
for m in $RUNS_METHODS; do
  timeout --signal=TERM --kill-after=15 "$RUN_LIMIT" $PY -m ltbench run --method "$m" --dataset cifar10_lt \
    --data-root "$DATA" --device "$DEVICE" --precision bf16 --eval-every 1 --threads 2 --out "$WORK/out" \
    ${RUN_EPOCHS:+--epochs $RUN_EPOCHS} > "$OUT/run_$m.log" 2>&1 &
  PIDS+=($!)
done
say "launched ${#PIDS[@]} full-recipe runs at t=$(elapsed)s (limit ${RUN_LIMIT}s each)"

# 5. GPU tests in the foreground
step 05_pytest_gpu 330 $PY -m pytest -m gpu -p no:cacheprovider -v --durations=10 tests/test_gpu.py
grep -E "passed|failed|PASSED|FAILED|ERROR" "$OUT/05_pytest_gpu.log" | tail -40 | tee -a "$OUT/summary.txt"

# 6. wait for the runs, collect
for p in "${PIDS[@]}"; do wait "$p"; done
kill "$SAMPLER" 2>/dev/null
(cd "$WORK/out" 2>/dev/null && tar czf "$OUT/gpu_runs.tar.gz" --exclude='ckpt.pt' --exclude='run.lock' runs) 2>/dev/null
$PY - "$WORK/out/runs" <<'PYEOF' | tee -a "$OUT/summary.txt"
import json, sys
from pathlib import Path
for d in sorted(Path(sys.argv[1]).glob("*")):
    log = [json.loads(x) for x in (d / "log.jsonl").read_text().splitlines() if x.strip()] if (d / "log.jsonl").exists() else []
    res = json.loads((d / "result.json").read_text()) if (d / "result.json").exists() else {}
    accs = [e["test_acc"] for e in log if "test_acc" in e]
    ips = sorted(e["images_per_s"] for e in log)
    m = res.get("metrics", {})
    print(f"{d.name}: {res.get('status', 'unfinished')} epochs {len(log)}/200 final {m.get('overall', float('nan')):.4f} "
          f"best-logged {max(accs) if accs else float('nan'):.4f} median img/s {ips[len(ips)//2] if ips else 0:.0f} "
          f"wall {res.get('timing', {}).get('wall_seconds', 'n/a')}")
PYEOF
util=$(awk -F'[ ,%]+' '{s+=$1; n++} END {if (n) printf "%.0f", s/n}' "$OUT/gpu_util.csv" 2>/dev/null)
say "mean GPU utilisation during the runs and tests: ${util:-?} %; total $(elapsed) s"

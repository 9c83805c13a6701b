# Sourced by results/common.sh (and by hand at the end of a sitting): carries an unfinished run from one machine to
# the next through the repository, for a regeneration whose single runs outlast a sitting (a 200-epoch fp32 run on
# a 2-core CPU without bf16 takes ~4.7 h; a sitting ~2 h) on machines whose run folders do not survive.
#
#   park SWEEP OUT COMMIT
#       copies the checkpoint, config and log of every unfinished run of the sweep folder SWEEP (one with a ckpt.pt
#       and no `done` marker; stop it first: `scancel` makes it write a mid-epoch checkpoint) to
#       OUT/unfinished/<sweep name>/<run>/, to commit, with COMMIT, the code that ran it (the PIN); and drops the
#       parked copy of every run of SWEEP that has finished since (its records are in OUT/runs by then).
#   unpark OUT RUNS
#       puts every parked run back under RUNS/<sweep name>/<run>/ where that run has no checkpoint yet, so the next
#       `ltbench sweep` over the same spec finds it incomplete and resumes it instead of starting over (a local
#       checkpoint is never overwritten: it is newer). Only with PIN set to the run's COMMIT (results/common.sh
#       resolves PIN): a record must come from one code version, and a checkpoint fits only the code that wrote it.
copy_run() {  # copy_run SRC DEST: a run's config, log and checkpoint (written under a temporary name, then renamed)
    mkdir -p "$2"
    cp "$1/config.json" "$1/log.jsonl" "$2/"
    cp "$1/ckpt.pt" "$2/ckpt.pt.tmp" && mv "$2/ckpt.pt.tmp" "$2/ckpt.pt"
}

park() {
    local sweep=${1%/} out=$2 commit run name dest
    commit=$(git rev-parse --verify --quiet "${3:?park SWEEP OUT COMMIT: the commit whose code ran the sweep}^{commit}") ||
        { echo "park: $3 is not a commit of this repository" >&2; return 2; }
    for run in "$sweep"/*/; do
        run=${run%/}
        name=$(basename "$run")
        dest="$out/unfinished/$(basename "$sweep")/$name"
        if [ -f "$run/done" ]; then
            rm -rf "$dest"
        elif [ -f "$run/ckpt.pt" ] && [ -f "$run/config.json" ]; then
            copy_run "$run" "$dest"
            echo "$commit" > "$dest/commit"
            echo "parked $name ($(wc -l < "$dest/log.jsonl") epochs logged) in $dest" >&2
        fi
    done
    rmdir "$out/unfinished/$(basename "$sweep")" "$out/unfinished" 2>/dev/null || true
}

unpark() {
    local out=$1 runs=$2 parked sweep name dest made
    [ -d "$out/unfinished" ] || return 0
    for parked in "$out"/unfinished/*/*/; do
        [ -f "$parked/ckpt.pt" ] || continue
        parked=${parked%/}
        name=$(basename "$parked")
        sweep=$(basename "$(dirname "$parked")")
        dest="$runs/$sweep/$name"
        [ ! -e "$dest/ckpt.pt" ] && [ ! -e "$dest/done" ] || continue
        made=$(cat "$parked/commit")
        if [ "$made" != "${PIN:-}" ]; then
            echo "not unparking $name: its checkpoint was made by the code of $made; finish it with PIN=${made:0:12}" >&2
            continue
        fi
        copy_run "$parked" "$dest"
        echo "unparked $name into $dest: the sweep resumes it from its checkpoint" >&2
    done
}

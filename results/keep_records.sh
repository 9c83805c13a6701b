# Sourced by results/*/tables.sh and regenerate.sh: `keep_records SWEEP OUT FILE...` copies the named files of every
# finished run (one with a `done` marker) of a sweep folder into OUT/runs/<run>/ — the records, never the
# checkpoints. Nothing to do when SWEEP is OUT/runs itself (tables remade from the committed records).
keep_records() {
    local sweep=$1 out=$2 run dest file
    shift 2
    [ "$sweep" != "$out/runs" ] || return 0
    for run in "$sweep"/*/; do
        [ -f "$run/done" ] || continue
        dest="$out/runs/$(basename "$run")"
        mkdir -p "$dest"
        for file in "$@"; do cp "$run/$file" "$dest/"; done
    done
}

"""Resuming a sweep on another machine from the records of an earlier sitting.

Run directories do not travel between machines, records do (a ``results/*/runs`` folder keeps each finished
run's config, result, log and predictions, never its checkpoints). ``ltbench sweep SPEC --resume RECORDS`` copies
the finished record of every run of the sweep that RECORDS holds into the sweep folder, where it counts as done,
and launches only the rest. A record counts only when this checkout's code made it (same commit, both clean or
the same uncommitted diff): a sweep finished over several sittings then still comes from one code version, which
is what a committed table must say. To finish one whose records come from an older commit, run it from a
checkout of that commit (``PIN=COMMIT`` in results/common.sh).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ltbench.config import RunConfig
from ltbench.errors import ConfigError
from ltbench.records import git_info, read_json, run_state
from ltbench.sweep.state import as_ran, run_dir_of

CODE_KEYS = ("commit", "dirty", "diff_sha256")  # the code version a record's env holds (records.git_info)
MARKERS = ("result.json", "done")  # copied last: a run counts as done only once both are in place


@dataclass
class Resumed:
    """What ``resume_from_records`` did: run ids restored, and refused ones with the reason."""

    restored: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def short_code(code: dict) -> str:
    """A code version as text: the commit's first 8 characters, '+ uncommitted changes' for a dirty tree."""
    commit = (code.get("commit") or "unknown commit")[:8]
    return commit + (" + uncommitted changes" if code.get("dirty") else "")


def resume_from_records(configs: list[RunConfig], records: Path, copy: bool = True) -> Resumed:
    """Copy into the run directory of every config that is not done the finished record of the same run id under
    ``records``, when this checkout's code made it. Files are copied (never moved, never checkpoints: ``*.pt``),
    result.json and the ``done`` marker last, so an interrupted copy leaves a run that is simply launched again.
    ``copy=False`` (a dry run) only says what would be restored."""
    records = Path(records)
    if not records.is_dir():
        raise ConfigError(f"--resume {records}: not a folder (expected run records, e.g. results/<name>/runs)")
    code = {k: git_info().get(k) for k in CODE_KEYS}
    out = Resumed()
    for cfg in configs:
        found = [c for c in as_ran(cfg) if run_state(records / c.run_id) == "done"]
        if not found or run_state(run_dir_of(cfg)) == "done":
            continue
        ran = found[0]  # the run id names the precision that ran (as_ran)
        env = (read_json(records / ran.run_id / "result.json") or {}).get("env") or {}
        made = {k: env.get(k) for k in CODE_KEYS}
        if code["commit"] is None or made != code:
            out.refused.append(f"{ran.run_id}: made by {short_code(made)}, this checkout is {short_code(code)}")
            continue
        if copy:
            _copy_record(records / ran.run_id, ran.run_dir)
        out.restored.append(cfg.run_id)
    return out


def _copy_record(src: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    files = [f for f in sorted(src.iterdir()) if f.is_file() and f.suffix != ".pt" and f.name not in MARKERS]
    for f in files + [src / name for name in MARKERS]:
        shutil.copy2(f, dest / f.name)

"""Run records -> pandas DataFrame (docs/architecture.md §3 ``load_records``), the input of tables and figures.

One row per *completed* run (state ``done``: result.json with status done plus the ``done`` marker). Failed,
incomplete and running runs are never mixed into the numbers: they are listed in ``df.attrs["not_done"]``
(and by ``load_status``) so a table can say what is missing instead of quietly averaging fewer seeds.
Per-class accuracies and training class counts stay in list columns, so many/medium/few can be recomputed
with other thresholds (``regroup``; docs/protocol.md §0.4 "always log per-class accuracy").
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from ltbench.config import RUNTIME_FIELDS, SETTING_FIELDS
from ltbench.errors import ConfigError
from ltbench.records import read_json, run_state

GROUPS = ("many", "medium", "few")
SCALARS = ("overall", "many", "medium", "few", "macro_f1", "g_mean", "ece", "auc")
LISTS = ("per_class", "class_counts", "weight_norms", "classes", "confusion")
IR_SEP = "@IR"  # a column group of `--columns imbalance_ratio` is "<dataset>@IR<ratio>" (table.by_imbalance_ratio)
PathsLike = str | os.PathLike | Iterable[str | os.PathLike]


def find_run_dirs(paths: PathsLike) -> list[Path]:
    """Run directories under each path (a run dir, a sweep dir or any folder of those, searched recursively).

    A run directory is one holding config.json or result.json; hidden folders (``.submitit``) are skipped.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found: dict[Path, None] = {}
    for p in map(Path, paths):
        if not p.exists():
            raise ConfigError(f"{p} does not exist; give a run directory, a sweep directory or a folder of them")
        p = p.parent if p.is_file() else p  # a run's result.json or config.json names its run
        for root, dirs, files in os.walk(p):
            if "config.json" in files or "result.json" in files:
                found[Path(root).resolve()] = None
                dirs.clear()  # a run directory has no nested runs
            else:
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    return sorted(found)


def _state(run_dir: Path) -> str:
    try:
        return run_state(run_dir)
    except OSError:  # a read-only copy of results: the lock file cannot be opened, so nobody is running it
        result = read_json(run_dir / "result.json") or {}
        if result.get("status") == "done" and (run_dir / "done").exists():
            return "done"
        return "failed" if result.get("status") == "failed" else "incomplete"


def _config_key(config: dict) -> str:
    """Hash of what defines the result except the seed: runs sharing it are seeds of one table row."""
    ident = {k: v for k, v in config.items() if k not in RUNTIME_FIELDS and k != "seed"}
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _cell(value: Any) -> Any:
    """Hashable cell value for config columns (lists become their JSON text so groupby works)."""
    return json.dumps(value) if isinstance(value, (list, tuple, dict)) else value


@functools.cache
def _display_names() -> dict[str, str]:
    from ltbench.cli.catalog import display_names

    return display_names()


def base_dataset(key: str) -> str:
    """The dataset of a table's column group (``cifar10_lt@IR100`` -> ``cifar10_lt``; a plain name stays)."""
    return key.partition(IR_SEP)[0]


def display_name(label: str) -> str:
    """How tables and figures print a method key or row label (``ldam_drw`` -> LDAM-DRW, ``ce+ssp`` -> CE+SSP):
    the method's declared ``display_name``; unknown keys print as they are."""
    base = label.removesuffix("+ssp")
    return _display_names().get(base, base) + ("+SSP" if label.endswith("+ssp") else "")


def method_label(method: str, ssp: bool, variant: str | None = None) -> str:
    """The row name of a method: ``+ssp`` marks a rotation-SSP stage 0, as in the seed paper's table; a run of a
    method's ``variant=code`` (the released code's behaviour where it departs from the paper, e.g. OTmix's
    test-set confusion matrix) is always labelled ``(code)``, whatever else the table shows."""
    label = f"{method}+ssp" if ssp else method
    return f"{label} (code)" if variant == "code" else label


def _config_columns(rec: dict) -> dict:
    cfg, res = rec.get("config") or {}, rec.get("resolved") or {}
    data = rec.get("data") or {}
    prov = data.get("provenance") or {}
    row = {
        "method": cfg.get("method"),
        "label": method_label(cfg.get("method"), bool(cfg.get("ssp")), (res.get("hp") or {}).get("variant")),
        "dataset": cfg.get("dataset"),
        "backbone": res.get("backbone") or cfg.get("backbone"),
        "seed": cfg.get("seed"),
        "preset": ",".join(res.get("presets") or cfg.get("preset") or []),
        "imbalance_ratio": prov.get("imbalance_ratio", cfg.get("imbalance_ratio")),
        "config_key": _config_key(cfg),
    }
    recorded = [*row, *cfg]  # before the loop below gives every setting a column, unset or not
    for k in SETTING_FIELDS:  # every setting that defines the result (a table tells rows apart by them)
        if k not in row:
            row[k] = _cell(cfg.get(k))
    hp = res.get("hp") or cfg.get("hparams") or {}
    row.update({f"hparams.{k}": _cell(v) for k, v in sorted(hp.items())})
    row["recorded"] = {*recorded, *(f"hparams.{k}" for k in hp)}  # the settings it has at all (_mark_unrecorded)
    return row


def _metric_columns(rec: dict) -> dict:
    m, data = rec.get("metrics") or {}, rec.get("data") or {}
    row: dict[str, Any] = {k: _num(m.get(k)) for k in SCALARS}
    row.update({f"{g}_classes": m.get(f"{g}_classes") for g in GROUPS})
    row["wn_var"] = _num(m.get("weight_norm_var"))
    shots = data.get("shots") or {}
    row["shots_many"], row["shots_few"] = shots.get("many"), shots.get("few")
    row["num_classes"] = data.get("num_classes")
    row["per_class"] = [_num(v) for v in m.get("per_class") or []]
    row["class_counts"] = list(data.get("class_counts") or [])
    row["weight_norms"] = m.get("weight_norms")
    row["classes"] = data.get("classes")
    row["confusion"] = (rec.get("similarity") or {}).get("confusion")  # [a][b]: class a's test images taken for b
    row["chosen_variant"] = rec.get("chosen_variant")
    return row


def _other_columns(rec: dict) -> dict:
    timing, model, env = rec.get("timing") or {}, rec.get("model") or {}, rec.get("env") or {}
    stages = timing.get("stages") or {}
    seconds = sum(s.get("seconds", 0.0) for s in stages.values())
    images = sum(s.get("images", 0) for s in stages.values())
    row = {
        "wall_seconds": timing.get("wall_seconds"),
        "train_seconds": seconds,
        "images_per_s": images / seconds if seconds else float("nan"),
        "peak_memory_mb": timing.get("peak_memory_mb"),
        "params": model.get("params"),
        "gflops": model.get("gflops"),
        "commit": env.get("commit"),
        "dirty": env.get("dirty"),
        "diff_sha256": env.get("diff_sha256"),
        "capped": bool(((rec.get("data") or {}).get("provenance") or {}).get("capped_classes")),
        "device_name": env.get("device_name"),
        "run_precision": env.get("precision"),
    }
    row.update({f"images_per_s.{name}": s.get("images_per_s") for name, s in stages.items()})
    return row


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)


def record_row(run_dir: Path, rec: dict, state: str = "done") -> dict:
    """One DataFrame row from a result.json (flattened config, metrics, list columns, timings, cost)."""
    row = {"run_id": rec.get("run_id", run_dir.name), "run_dir": str(run_dir), "state": state}
    row.update(_config_columns(rec))
    row.update(_metric_columns(rec))
    row.update(_other_columns(rec))
    row.update(_best_test(run_dir, row.get("overall")))
    return row


def _best_test(run_dir: Path, final: float | None) -> dict:
    """The best test accuracy over the epochs that were evaluated (log.jsonl ``test_acc``, --eval-every) and the
    final epoch: what the LDAM-DRW/RIDE/BNS releases report. For comparison only, never the headline."""
    from ltbench.records import log_entries

    accs = [e["test_acc"] for e in log_entries(run_dir) if e.get("test_acc") is not None]
    final = _num(final)
    values = accs + ([final] if final == final else [])
    return {"best_test": max(values) if values else float("nan"), "epochs_evaluated": len(values)}


def _status_row(run_dir: Path, state: str) -> dict:
    rec = read_json(run_dir / "result.json") or read_json(run_dir / "config.json") or {}
    cfg = rec.get("config") or {}
    err = (rec.get("error") or "").strip().splitlines() if rec.get("status") == "failed" else []
    return {
        "run_id": rec.get("run_id", run_dir.name),
        "run_dir": str(run_dir),
        "state": state,
        "method": cfg.get("method"),
        "dataset": cfg.get("dataset"),
        "seed": cfg.get("seed"),
        "error": err[-1] if err else None,
    }


def load_status(paths: PathsLike) -> pd.DataFrame:
    """Every run directory found with its state (done / failed / incomplete / running / pending) and error."""
    rows = [_status_row(d, _state(d)) for d in find_run_dirs(paths)]
    return pd.DataFrame(rows, columns=["run_id", "run_dir", "state", "method", "dataset", "seed", "error"])


def load_records(
    paths: PathsLike, include: str = "done", shots: tuple[int, int] | None = None, strict: bool = True
) -> pd.DataFrame:
    """One row per completed run under ``paths``; the others are in ``df.attrs["not_done"]`` (list of dicts).

    ``include="all"`` also returns failed/incomplete rows (metrics NaN, ``state`` column says which) for
    callers that want them in one frame on purpose. ``shots=(many, few)`` recomputes the groups from the
    stored per-class accuracies. The same run id found twice (a copied directory) counts once; the extra
    copies are listed in ``df.attrs["duplicates"]`` so seeds are never double-counted. ``strict``: raise
    ConfigError when no completed run is found (the CLI's "nothing to report").
    """
    if include not in ("done", "all"):
        raise ConfigError(f"include must be 'done' or 'all', got {include!r}")
    rows, not_done, duplicates, seen = [], [], [], set()
    dirs = find_run_dirs(paths)
    for d in dirs:
        state = _state(d)
        if state != "done":
            not_done.append(_status_row(d, state))
            if include == "done":
                continue
        rec = read_json(d / "result.json") or read_json(d / "config.json") or {}
        row = record_row(d, rec, state)
        if row["run_id"] in seen:
            duplicates.append(str(d))
            continue
        seen.add(row["run_id"])
        rows.append(row)
    if strict and not any(r["state"] == "done" for r in rows):
        where = ", ".join(str(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths))
        detail = f"{len(dirs)} run directories, none done ({_count_states(not_done)})" if dirs else "no run directories"
        raise ConfigError(f"no completed runs under {where}: {detail}; check the path, or `ltbench status <sweep dir>`")
    _mark_unrecorded(rows)
    df = pd.DataFrame(rows)
    if len(df):
        df = regroup_by_dataset(df, shots)
    df.attrs["not_done"] = not_done
    df.attrs["duplicates"] = duplicates
    return df


def _mark_unrecorded(rows: list[dict]) -> None:
    """Column ``unrecorded``: the settings and hparams that other records of the same method have and this one
    lacks ("" for most), comma-separated. A record made before an option or hparam existed lacks it, which is not a
    setting of its own: table.row_labels does not tell rows apart by it (the code-version footnote flags the mix)."""
    have: dict[str, set[str]] = {}
    for r in rows:
        have.setdefault(r["method"], set()).update(r["recorded"])
    for r in rows:
        r["unrecorded"] = ",".join(sorted(have[r["method"]] - r.pop("recorded")))


def _count_states(rows: list[dict]) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"


def parse_shots(text: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"500,200"`` -> (500, 200): many > MANY, few < FEW training images; ConfigError on anything else."""
    if text is None or isinstance(text, tuple):
        many, few = text or (100, 20)
    else:
        try:
            many, few = (int(t) for t in str(text).split(","))
        except ValueError:
            raise ConfigError(
                f"--shots expects MANY,FEW as two integers (e.g. 100,20 or 500,200), got {text!r}"
            ) from None
    if not 0 <= few <= many:
        raise ConfigError(f"--shots MANY,FEW needs 0 <= FEW <= MANY, got {many},{few}")
    return None if text is None else (many, few)


def regroup(df: pd.DataFrame, shots: tuple[int, int]) -> pd.DataFrame:
    """A copy whose many/medium/few (and their class counts) are recomputed from per-class accuracies.

    Uses ``ltbench.metrics.group_accuracy``, the benchmark's one definition of the groups, so a table with
    ``--shots 500,200`` (the BNS code's CIFAR-10-LT rule) agrees with a run trained with those thresholds.
    """
    from ltbench.metrics import group_accuracy

    many, few = parse_shots(shots)
    out = df.copy()
    values, bad = [], []
    for rid, state, acc, counts in zip(out["run_id"], out["state"], out["per_class"], out["class_counts"]):
        if len(acc) and len(acc) == len(counts):
            values.append(group_accuracy(acc, counts, many, few))
        else:  # a failed run has no metrics (NaN stays NaN); a done run without them cannot be regrouped
            values.append(
                dict.fromkeys(("many", "medium", "few"), float("nan")) | {f"{g}_classes": None for g in GROUPS}
            )
            if state == "done":
                bad.append(rid)
    if bad:
        raise ConfigError(f"cannot recompute groups: runs {bad} store no per-class accuracies with class counts")
    for key in ("many", "medium", "few", "many_classes", "medium_classes", "few_classes"):
        out[key] = [v[key] for v in values]
    out["shots_many"], out["shots_few"] = many, few
    out.attrs = dict(df.attrs)
    return out


def regroup_by_dataset(df: pd.DataFrame, shots: tuple[int, int] | None) -> pd.DataFrame:
    """Groups recomputed with ``shots`` for every dataset, or with each dataset's default thresholds
    (``ltbench.data.longtail.default_shots``: 500/200 on CIFAR-10-LT) whatever each run recorded."""
    from ltbench.data.longtail import default_shots

    groups = df.groupby("dataset", sort=False, dropna=False)
    parts = [regroup(g, shots or default_shots(ds if isinstance(ds, str) else "")) for ds, g in groups]
    out = pd.concat(parts).loc[df.index] if parts else df
    out.attrs = dict(df.attrs)
    return out


def read_log(run_dir: str | os.PathLike) -> pd.DataFrame:
    """log.jsonl of a run as a frame with a global ``epoch_index`` (1, 2, ... across stages) for curves."""
    path = Path(run_dir) / "log.jsonl"
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue  # a torn last line from a killed process
    df = pd.DataFrame(rows)
    if len(df):
        df["epoch_index"] = range(1, len(df) + 1)
    return df

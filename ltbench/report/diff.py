"""``ltbench diff RUN_A RUN_B``: what differs between two finished runs, and what it changed.

Three tables: the configuration (RunConfig as given, the resolved recipe, the training data's identity and the
software that ran), the group metrics (overall, many, medium, few with their class counts, macro-F1, G-mean,
ECE), and the per-class accuracies. Only ``done`` runs are compared: a half-trained run's numbers are not
results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tabulate import tabulate

GROUPS = ("overall", "many", "medium", "few")
OTHER_METRICS = ("macro_f1", "g_mean", "ece")
WHERE = ("out", "sweep")  # where a run was written, not what it is
ENV_KEYS = ("ltbench", "commit", "dirty", "torch", "device_name", "precision")


def flatten(value: Any, prefix: str) -> dict[str, Any]:
    """Nested dicts as ``a.b.c`` keys; lists stay values."""
    if not isinstance(value, dict):
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, sub in value.items():
        out.update(flatten(sub, f"{prefix}.{key}" if prefix else str(key)))
    return out


def described(config: dict, result: dict) -> dict[str, Any]:
    """The comparable description of one run: config, resolved recipe, data identity, software."""
    cfg = {k: v for k, v in config["config"].items() if k not in WHERE}
    data = result["data"]
    identity = {
        "dataset": data["name"],
        "train_size": data["train_size"],
        "class_counts": data["class_counts"],
        "train_label_hash": data.get("train_label_hash"),
        "index_hash": (data.get("provenance") or {}).get("index_hash"),
    }
    env = {k: result.get("env", {}).get(k) for k in ENV_KEYS}
    return {
        **flatten(cfg, "config"),
        **flatten(config["resolved"], "resolved"),
        **flatten(identity, "data"),
        **flatten(env, "env"),
        "chosen_variant": result.get("chosen_variant"),
    }


def config_rows(a: dict[str, Any], b: dict[str, Any]) -> list[list[str]]:
    missing = "—"
    keys = list(a) + [k for k in b if k not in a]
    return [[k, _short(a.get(k, missing)), _short(b.get(k, missing))] for k in keys if a.get(k) != b.get(k)]


def _short(value: Any, width: int = 60) -> str:
    text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _pct(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{100 * value:.2f}"


def _delta(a: float | None, b: float | None) -> str:
    if a is None or b is None or a != a or b != b:
        return "n/a"
    return f"{100 * (b - a):+.2f}"


def metric_rows(ma: dict, mb: dict) -> list[list[str]]:
    rows = []
    for name in GROUPS + OTHER_METRICS:
        if name not in ma and name not in mb:
            continue
        label = name
        if name in GROUPS[1:]:
            ca, cb = ma.get(f"{name}_classes"), mb.get(f"{name}_classes")
            label = f"{name} ({ca})" if ca == cb else f"{name} ({ca} / {cb})"
        a, b = ma.get(name), mb.get(name)
        rows.append([label, _pct(a), _pct(b), _delta(a, b)])
    return rows


def per_class_rows(ra: dict, rb: dict, limit: int) -> tuple[list[list[str]], str]:
    """Per-class accuracy rows (all classes up to ``limit``, else the ``limit`` largest |Δ|) and a caption."""
    classes, counts = ra["data"]["classes"], ra["data"]["class_counts"]
    pa, pb = ra["metrics"]["per_class"], rb["metrics"]["per_class"]
    order = list(range(len(classes)))
    caption = f"per class ({len(classes)} classes)"
    if len(order) > limit:
        order = sorted(order, key=lambda c: -abs(_num(pb[c]) - _num(pa[c])))[:limit]
        caption = f"per class: the {limit} largest differences of {len(classes)} (--classes N shows more)"
    rows = [[c, classes[c], counts[c], _pct(pa[c]), _pct(pb[c]), _delta(pa[c], pb[c])] for c in order]
    return rows, caption


def _num(value: float | None) -> float:
    return 0.0 if value is None or value != value else value


def _table(rows: list[list], heads: list[str]) -> str:
    """A GitHub-style table with the cells exactly as formatted here (no re-parsing of "100.00" as 100)."""
    return tabulate(rows, heads, tablefmt="github", disable_numparse=True)


def diff_runs(run_a: str | Path, run_b: str | Path, classes: int = 20) -> str:
    """The text ``ltbench diff`` prints."""
    from ltbench.restore import finished_records

    (ca, ra), (cb, rb) = finished_records(run_a), finished_records(run_b)
    out = [f"A: {Path(run_a)}  ({ra['run_id']})", f"B: {Path(run_b)}  ({rb['run_id']})", ""]
    rows = config_rows(described(ca, ra), described(cb, rb))
    if rows:
        out += ["configuration", _table(rows, ["key", "A", "B"]), ""]
    else:
        out += ["configuration: identical", ""]
    out += ["metrics (%)", _table(metric_rows(ra["metrics"], rb["metrics"]), ["", "A", "B", "B − A"])]
    if ra["data"]["shots"] != rb["data"]["shots"]:
        out.append(f"note: group thresholds differ: A {ra['data']['shots']}, B {rb['data']['shots']}")
    if classes > 0:
        if ra["data"]["classes"] != rb["data"]["classes"]:
            out += ["", "per class: not compared (the runs have different classes)"]
        else:
            rows, caption = per_class_rows(ra, rb, classes)
            heads = ["#", "class", "train images (A)", "A", "B", "B − A"]
            out += ["", caption, _table(rows, heads)]
    return "\n".join(out)

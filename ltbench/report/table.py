"""Paper tables from run records: rows = methods, column groups = datasets x (Many, Medium, Few, Overall).

The layout is the BNS+IP-DPP paper's comparison table (docs/methods.md §9.6), with what that table lacks and
the reporting rules require (§0.4): mean ± sample std over seeds and the number of seeds, the class count of
each group in a header row, the group thresholds in a note, runs that did not finish listed instead of
silently averaged away, and optionally the published number and our difference beside each cell.
LaTeX is a hand-built booktabs ``tabular`` (ready to ``\\input``), markdown goes through tabulate, CSV is
the long aggregated frame (one row per method x dataset x metric) for further analysis.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ltbench.config import SETTING_FIELDS
from ltbench.errors import ConfigError
from ltbench.report.load import IR_SEP, PathsLike, base_dataset, display_name, load_records, parse_shots
from ltbench.report.metrics import ACCURACY, metric_info, metric_list, metric_pair, metric_values
from ltbench.report.published import join_published, load_published

FORMATS = ("latex", "markdown", "csv")
DATASET_NAMES = {
    "cifar10_lt": "CIFAR-10-LT",
    "cifar100_lt": "CIFAR-100-LT",
    "imagenet_lt": "ImageNet-LT",
    "inat2018": "iNat 2018",
    "places_lt": "Places-LT",
}
METHOD_ORDER = (
    "ce ce_rs ce_rw ce_drw cb_ce cb_focal focal ldam ldam_drw la balanced_softmax crt lws tau_norm kps "
    "ride kcl tsc sbcl otmix disa bns_ipdpp"
).split()


COLUMNS = ("dataset", "imbalance_ratio")  # what a column group is: a dataset, or a dataset at one imbalance ratio


def group_name(key: str) -> str:
    """A column group as printed: ``cifar10_lt`` -> CIFAR-10-LT, ``cifar10_lt@IR100`` -> CIFAR-10-LT IR 100."""
    ds, _, ir = key.partition(IR_SEP)
    return DATASET_NAMES.get(ds, ds) + (f" IR {ir}" if ir else "")


def by_imbalance_ratio(df: pd.DataFrame) -> pd.DataFrame:
    """One column group per (dataset, imbalance ratio), as the seed paper's Table 1 (IR 100 / 50 / 20 / 10 side by
    side): the ratio joins the group key, so runs that differ only in it share a row. Published numbers
    join each group by its dataset and ratio (published.join_published)."""

    def ir(v) -> str:
        v = pd.to_numeric(v, errors="coerce")
        return "?" if v != v else (str(int(v)) if float(v).is_integer() else f"{v:g}")

    df = df.copy()
    df["dataset"] = [f"{d}{IR_SEP}{ir(v)}" for d, v in zip(df["dataset"], df["imbalance_ratio"])]
    return df


def _ir_value(key: str) -> float:
    v = key.partition(IR_SEP)[2]
    return float(v) if v.replace(".", "", 1).isdigit() else -1.0


def _order(name: str, order: list[str] | tuple[str, ...]) -> tuple:
    """Rows in the method order, then by their settings with numbers compared as numbers: a sweep's rows read
    100x10, 500x9,100, ..., 5000x9,100 and lr=0.05 before lr=0.1."""
    base = name.split(" ")[0].removesuffix("+ssp")
    parts = re.split(r"(\d+(?:\.\d+)?)", name)  # text, number, text, ...: positions never mix types
    numeric = tuple(float(p) if i % 2 else p for i, p in enumerate(parts))
    return (order.index(base) if base in order else len(order), numeric, name)


def budget(r) -> str:
    """How a run's recipe was shortened (``quick`` preset, ``--epochs``): '' for the method's full recipe."""
    presets = str(r.get("preset") or "")
    if "quick" in presets.split(","):
        return "quick"
    epochs = r.get("epochs")
    return f"{int(epochs)} ep" if epochs is not None and epochs == epochs else ""


def row_labels(df: pd.DataFrame) -> pd.Series:
    """Table row of each run: its method label, plus the settings that tell apart several configurations of
    that method on one dataset (e.g. a hparam sweep), so different recipes are never averaged as seeds."""
    cand = [c for c in SETTING_FIELDS if c in df.columns]
    cand += sorted(c for c in df.columns if c.startswith("hparams."))
    labels = df["label"].copy()
    budgets = pd.Series([budget(r) for _, r in df.iterrows()], index=df.index, dtype=object)
    for label, g in df.groupby("label"):
        if g.groupby("dataset")["config_key"].nunique().max() <= 1:
            continue
        varying = [c for c in cand if _tells_apart(g, c)] or ["config_key"]
        if "train_counts" in varying and "imbalance_ratio" in varying:  # the ratio follows from the counts
            varying.remove("imbalance_ratio")
        by_budget = g.assign(_budget=budgets[g.index]).groupby(["dataset", "_budget"])
        tagged = by_budget.ngroups > g["dataset"].nunique()  # budgets differ (quick, --epochs N, the full recipe)
        if tagged:  # name the budget as the published tag does, not the epochs, presets and milestones it sets:
            # the hparams that change only with it are taken for the ones it scales; other settings stay named
            scaled = {c for c in varying if c.startswith("hparams.") and by_budget[c].nunique(dropna=False).max() <= 1}
            varying = [c for c in varying if c not in scaled and c not in ("epochs", "preset")]
        for i, r in g.iterrows():
            parts = ", ".join(f"{c.removeprefix('hparams.')}={_setting(c, r[c])}" for c in varying)
            labels[i] = label + (f" ({parts})" if parts else "") + (f" [{budgets[i]}]" if tagged and budgets[i] else "")
    return labels


def _tells_apart(g: pd.DataFrame, column: str) -> bool:
    """Whether runs of one method differ in a setting on some dataset. Only the records that have the setting
    count: one made before the option or hparam existed (``unrecorded`` names it) ran without it, which is no
    setting of its own, so a 200-epoch record of older code is not labelled ``schedule=–`` beside a newer one."""
    if "unrecorded" in g:
        g = g[g["unrecorded"].map(lambda keys: column not in str(keys).split(","))]  # NaN: a CSV read back
    return bool((g.groupby("dataset")[column].nunique(dropna=False) > 1).any())


def _setting(column: str, value):
    """A setting as a row label shows it: explicit class counts in the --class-counts form (``5000x9,100``), not as
    a list of ten numbers."""
    if isinstance(value, float) and value != value:  # not set in this run (e.g. --epochs of a quick-preset run)
        return "–"
    if column == "train_counts" and isinstance(value, str) and value.startswith("["):
        from ltbench.data.longtail import format_class_counts

        return format_class_counts(json.loads(value))
    return value


def _check_thresholds(df: pd.DataFrame) -> None:
    for ds, g in df.groupby("dataset"):
        pairs = sorted(
            {(int(a), int(b)) for a, b in zip(g["shots_many"], g["shots_few"]) if pd.notna(a) and pd.notna(b)}
        )
        if len(pairs) > 1:
            shown = " and ".join(f"{a},{b}" for a, b in pairs)
            raise ConfigError(f"runs on {ds} use different group thresholds ({shown}); pass --shots MANY,FEW")


def _classes(g: pd.DataFrame, metric: str) -> str:
    col = "num_classes" if metric == "overall" else f"{metric}_classes"
    if metric not in ACCURACY or col not in g:
        return ""
    vals = sorted({int(v) for v in g[col] if v == v and v is not None})
    return "/".join(map(str, vals))


def summarize(df: pd.DataFrame, metrics: tuple[str, ...] = ACCURACY) -> pd.DataFrame:
    """Long frame: one row per (table row, dataset, metric) with mean, sample std (ddof=1) and n in display
    units (% for accuracies, F1, G-mean, ECE), the seeds, and the class count of the group."""
    df = df[df["state"] == "done"].copy()
    _check_thresholds(df)
    df["row"] = row_labels(df)
    out = []
    for (row, ds), g in df.groupby(["row", "dataset"], sort=False):
        for m in metrics:
            scale = metric_info(m)[1]
            vals = pd.to_numeric(metric_values(g, m), errors="coerce").dropna() * scale
            out.append(
                {
                    "row": row,
                    "method": g["label"].iloc[0],
                    "dataset": ds,
                    "metric": m,
                    "mean": vals.mean() if len(vals) else math.nan,
                    "std": vals.std(ddof=1) if len(vals) > 1 else math.nan,
                    "n": len(vals),
                    "runs": len(g),
                    "seeds": ",".join(str(s) for s in sorted(g["seed"].tolist())),
                    "classes": _classes(g, m),
                    "unit": "%" if scale == 100 else "",
                    "shots": ",".join(
                        str(int(v)) if pd.notna(v) else "?" for v in g[["shots_many", "shots_few"]].iloc[0]
                    ),
                    "imbalance_ratio": g["imbalance_ratio"].iloc[0],
                    "backbone": g["backbone"].iloc[0],
                    "capped": bool(g["capped"].fillna(False).any()) if "capped" in g else False,
                    "budget": ",".join(sorted({budget(r) for _, r in g.iterrows()} - {""})),
                }
            )
    return pd.DataFrame(out)


@dataclass
class Grid:
    """A table independent of the output format: header rows, body cells (text, style), notes."""

    groups: list[tuple[str, int]] = field(default_factory=list)
    heads: list[str] = field(default_factory=list)
    counts: list[str] = field(default_factory=list)
    rows: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _fmt(v: float, digits: int, sign: bool = False) -> str:
    if v is None or v != v:
        return "n/a"
    return f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"


def _styles(values: dict[str, float], higher: bool | None) -> dict[str, str]:
    """best / second per column, compared on the printed (rounded) values so equal-looking cells tie."""
    ranked = sorted({v for v in values.values() if v == v}, reverse=bool(higher))
    if higher is None or len(ranked) < 2 or sum(v == v for v in values.values()) < 2:
        return {}
    return {k: "best" if v == ranked[0] else "second" for k, v in values.items() if v in ranked[:2]}


def _columns(summary: pd.DataFrame, metrics: tuple[str, ...], published: bool) -> list[tuple[str, str, str]]:
    order = list(DATASET_NAMES)
    cols = []
    groups = summary["dataset"].unique()  # datasets, or dataset@IR keys (by_imbalance_ratio): ratios descending
    for ds in sorted(groups, key=lambda d: (_order(base_dataset(d), order), -_ir_value(d), d)):
        for m in metrics:
            cols.append((ds, m, "ours"))
            if published and summary[(summary.metric == m) & (summary.dataset == ds)]["published"].notna().any():
                cols += [(ds, m, "pub"), (ds, m, "diff")]
        cols.append((ds, "", "n"))
    return cols


def build_grid(summary: pd.DataFrame, metrics: tuple[str, ...], digits: int = 1, published: bool = False) -> Grid:
    """Arrange a (joined) summary in the paper layout, with bold/underline per ``ours`` column."""
    cols = _columns(summary, metrics, published)
    rows = sorted(summary["row"].unique(), key=lambda r: _order(r, METHOD_ORDER))
    cell = {(r.row, r.dataset, r.metric): r for r in summary.itertuples()}
    grid = Grid()
    for ds, m, kind in cols:
        if not grid.groups or grid.groups[-1][0] != ds:
            grid.groups.append((ds, 0))
        grid.groups[-1] = (ds, grid.groups[-1][1] + 1)
        grid.heads.append({"ours": _head(m, summary, ds), "pub": "Pub.", "diff": "Δ", "n": "n"}[kind])
        counts = sorted({c.classes for (_, d, mm), c in cell.items() if d == ds and mm == m and c.classes})
        grid.counts.append(f"({'/'.join(counts)})" if kind == "ours" and counts else "")
    styles = {}
    for ds, m, kind in cols:
        if kind == "ours":
            vals = {r: round(cell[r, ds, m].mean, digits) if (r, ds, m) in cell else math.nan for r in rows}
            styles[ds, m] = _styles(vals, metric_info(m)[2])
    capped = set(summary.loc[summary["capped"].astype(bool), "row"]) if "capped" in summary else set()
    budgets = summary.groupby("row")["budget"].first().to_dict() if "budget" in summary else {}
    for r in rows:
        cells = []
        for ds, m, kind in cols:
            c = cell.get((r, ds, m if kind != "n" else metrics[-1]))
            cells.append(_cell_text(c, kind, digits, styles.get((ds, m), {}).get(r, "")))
        tag = f" [{budgets[r]}]" if published and budgets.get(r) else ""
        label = r + ("" if r.endswith(tag) else tag) + (" ‡" if r in capped else "")  # row_labels may name it
        grid.rows.append((label, cells))
    return grid


def _head(metric: str, summary: pd.DataFrame, dataset: str) -> str:
    """A metric's column head; the group thresholds are part of the many/medium/few heads (">500" ...)."""
    name = (metric_info(metric) or ("",))[0]
    shots = summary.loc[summary["dataset"] == dataset, "shots"]
    if metric not in ("many", "medium", "few") or shots.empty or "?" in shots.iloc[0]:
        return name
    many, few = shots.iloc[0].split(",")
    return name + {"many": f" >{many}", "medium": f" {few}–{many}", "few": f" <{few}"}[metric]


def _cell_text(c, kind: str, digits: int, style: str) -> tuple[str, str]:
    if c is None:
        return ("–", "")
    if kind == "n":
        return (str(c.runs), "")
    if kind == "pub":
        return ("–" if c.published != c.published else _fmt(c.published, digits), "")
    if kind == "diff":
        return ("–" if c.diff != c.diff else _fmt(c.diff, digits, sign=True), "")
    text = _fmt(c.mean, digits)
    if c.n > 1 and c.std == c.std:
        text += f" ± {_fmt(c.std, digits)}"
    return (text, style)


def _notes(df: pd.DataFrame, summary: pd.DataFrame, metrics: tuple[str, ...], published: bool) -> list[str]:
    shots = ", ".join(
        f"{group_name(d)} many > {s.split(',')[0]}, few < {s.split(',')[1]}"
        for d, s in summary.groupby("dataset")["shots"].first().items()
    )
    notes = [
        "Top-1 accuracy (%) of the final epoch; mean ± sample std over the n seeds (n = number of completed runs).",
        f"Groups by training images per class: {shots}; class count of each group in parentheses.",
        "Bold: best, underlined: second best per column.",
    ]
    if set(metrics) & {"macro_f1", "g_mean", "ece", "wn_var"}:
        notes.append("Macro-F1, G-mean and ECE (15 bins) in %; WN var: variance of per-class classifier weight norms.")
    if "auc" in metrics:
        notes.append("AUC: the unweighted mean over classes of the one-vs-rest ROC AUC, in %.")
    if any(metric_pair(m) for m in metrics):
        notes.append("A as B: the share of class A's test images predicted as class B, in % (not ranked).")
    if published:
        used = summary[summary["published"].notna()]
        for (method, ds, src), g in used.groupby(["method", "dataset", "pub_source"], sort=False):
            status = g["pub_status"].iloc[0]
            flag = f" [{status}]" if status and status != "published" else ""
            extra = "; ".join(sorted({n for n in g["pub_note"] if n}))
            which = ", ".join(dict.fromkeys(g["metric"]))  # two rows of one method (two budgets) join the same number
            notes.append(
                f"Pub. {display_name(method)} on {group_name(ds)} ({which}): {src}{flag}"
                + (f"; {extra}" if extra else "")
            )
        notes.append("Δ = ours − published (points)." if len(used) else "No published numbers match these rows.")
    if "best_test" in metrics:
        notes.append(
            "† Best-test: the best test accuracy over the evaluated epochs (every epoch with --eval-every 1) and the "
            "final one, i.e. selected on the test set as the LDAM-DRW, RIDE and BNS code do; for comparison with "
            "their numbers only, never the result."
        )
    if published and "budget" in summary and summary["budget"].astype(bool).any():
        notes.append(
            "[quick] / [N ep]: a shortened recipe (the quick preset: every stage ≤ 20 epochs, milestones scaled; or "
            "--epochs N), not the published one: its Δ to the paper measures the budget, not the method."
        )
    if "capped" in summary and summary["capped"].astype(bool).any():
        notes.append(
            "‡ Trained with fewer images than the profile requests in some classes: the data's pool could not give "
            "more (result.json data.provenance.capped_classes)."
        )
    version = code_versions(df)
    if version:
        notes.append(version)
    missing = df.attrs.get("not_done") or []
    if missing:
        counts = pd.Series([m["state"] for m in missing]).value_counts()
        notes.append(
            "Excluded runs: "
            + ", ".join(f"{n} {s}" for s, n in counts.items())
            + " ("
            + ", ".join(m["run_id"] for m in missing[:5])
            + (", ..." if len(missing) > 5 else "")
            + ")"
        )
    return notes


def code_versions(df: pd.DataFrame) -> str | None:
    """A note when the runs of one table come from several commits or from modified trees (None: one clean
    commit, or records without code versions)."""
    if "commit" not in df or df["commit"].isna().all():
        return None
    commits = sorted({str(c)[:8] for c in df["commit"].dropna()})
    dirty = df[df["dirty"].fillna(False).astype(bool)] if "dirty" in df else df.iloc[:0]
    if len(commits) <= 1 and dirty.empty:
        return None
    trees = {str(d)[:8] for d in dirty.get("diff_sha256", pd.Series(dtype=object)).dropna()}
    text = f"Code versions: {len(commits)} commit(s) ({', '.join(commits[:4])}{', ...' if len(commits) > 4 else ''})"
    if not dirty.empty:
        text += f"; {len(dirty)} run(s) from modified trees ({len(trees) or '?'} distinct diffs)"
    return text + " — compare with care."


def latex_escape(text: str) -> str:
    """Escape LaTeX specials (underscores in method and dataset names) so the file can be \\input as is."""
    specials = {
        "\\": r"\textbackslash{}",
        "&": r"\&",
        "%": r"\%",
        "$": r"\$",
        "#": r"\#",
        "_": r"\_",
        "{": r"\{",
        "}": r"\}",
        "<": r"$<$",
        ">": r"$>$",
        "~": r"\textasciitilde{}",
        "^": r"\textasciicircum{}",
    }
    out = "".join(specials.get(ch, ch) for ch in text)
    for plain, tex in (("±", r"$\pm$"), ("Δ", r"$\Delta$"), ("τ", r"$\tau$"), ("−", "--"), ("–", "--")):
        out = out.replace(plain, tex)
    return out


def display_row(row: str) -> str:
    """A table row as printed: the method's display name, then the settings that tell its configurations apart."""
    base, _, rest = row.partition(" ")
    return display_name(base) + (f" {rest}" if rest else "")


def to_latex(grid: Grid) -> str:
    """booktabs tabular: dataset spans with cmidrules, metric heads, class counts, bold/underline."""
    wrap = {"best": r"\textbf{%s}", "second": r"\underline{%s}", "": "%s"}
    lines = [f"% {latex_escape(n)}" for n in grid.notes]
    lines += [r"\begin{tabular}{l" + "r" * len(grid.heads) + "}", r"\toprule"]
    spans, rules, col = [], [], 2
    for ds, span in grid.groups:
        spans.append(rf"\multicolumn{{{span}}}{{c}}{{{latex_escape(group_name(ds))}}}")
        rules.append(rf"\cmidrule(lr){{{col}-{col + span - 1}}}")
        col += span
    lines += [" & " + " & ".join(spans) + r" \\", " ".join(rules)]
    lines.append("Method & " + " & ".join(latex_escape(h) for h in grid.heads) + r" \\")
    if any(grid.counts):
        lines.append(" & " + " & ".join(grid.counts) + r" \\")
    lines.append(r"\midrule")
    for row, cells in grid.rows:
        body = " & ".join(wrap[s] % latex_escape(t) for t, s in cells)
        lines.append(f"{latex_escape(display_row(row))} & {body}" + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def to_markdown(grid: Grid) -> str:
    """GitHub markdown via tabulate; one header row (dataset, metric, class count), notes below."""
    from tabulate import tabulate

    wrap = {"best": "**%s**", "second": "<u>%s</u>", "": "%s"}
    names = [group_name(ds) for ds, span in grid.groups for _ in range(span)]
    heads = ["Method"] + [" ".join(p for p in (n, h, c) if p) for n, h, c in zip(names, grid.heads, grid.counts)]
    body = [[display_row(row)] + [wrap[s] % t for t, s in cells] for row, cells in grid.rows]
    table = tabulate(body, heads, tablefmt="github", disable_numparse=True)
    return table + "\n\n" + "\n".join(f"- {n}" for n in grid.notes) + "\n"


def filter_datasets(df: pd.DataFrame, datasets: str | list[str] | None) -> pd.DataFrame:
    wanted = [d for d in (datasets.split(",") if isinstance(datasets, str) else datasets or []) if d]
    if not wanted:
        return df
    have = sorted(df["dataset"].unique())
    unknown = [d for d in wanted if d not in have]
    if unknown:
        raise ConfigError(f"no completed runs on {unknown}; the records hold {', '.join(have)}")
    out = df[df["dataset"].isin(wanted)]
    out.attrs = dict(df.attrs)
    return out


def filter_methods(df: pd.DataFrame, methods: str | list[str] | None) -> pd.DataFrame:
    """Only the runs of ``methods`` (registry keys or the names tables print, e.g. ``LDAM-DRW``): one table of a
    larger sweep, such as a paper's rows out of an every-method grid."""
    from ltbench.cli.catalog import canonical_method

    wanted = [canonical_method(m.strip()) for m in (methods.split(",") if isinstance(methods, str) else methods or [])]
    wanted = [m for m in wanted if m]
    if not wanted:
        return df
    have = sorted(df["method"].unique())
    unknown = [m for m in wanted if m not in have]
    if unknown:
        raise ConfigError(f"no completed runs of {unknown}; the records hold {', '.join(have)}")
    out = df[df["method"].isin(wanted)]
    out.attrs = dict(df.attrs)
    return out


def make_table(
    paths: PathsLike,
    fmt: str = "markdown",
    datasets: str | list[str] | None = None,
    shots: str | tuple[int, int] | None = None,
    published: bool | str | Path = False,
    metrics: str | tuple[str, ...] | None = None,
    digits: int = 1,
    source: str | None = None,
    methods: str | list[str] | None = None,
    columns: str = "dataset",
) -> str:
    """The whole pipeline behind ``ltbench table``: load, filter, regroup, aggregate, join, render.

    ``published``: False, True (results/published.csv) or a CSV path; ``source`` narrows its sources;
    ``methods``: only these methods' runs; ``columns="imbalance_ratio"``: one column group per dataset and ratio.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    if columns not in COLUMNS:
        raise ConfigError(f"--columns {columns!r} is not one of {', '.join(COLUMNS)}")
    if not 0 <= digits <= 6:
        raise ConfigError(f"--digits must be between 0 and 6, got {digits}")
    cols = metric_list(metrics)
    df = filter_methods(filter_datasets(load_records(paths, shots=parse_shots(shots)), datasets), methods)
    if columns == "imbalance_ratio" and not df.empty:
        df = by_imbalance_ratio(df)
    mixed = code_versions(df)
    if mixed:
        from ltbench.train.progress import console

        console(f"ltbench: warning: {mixed}")
    summary = summarize(df, cols)
    if published is not False:
        summary = join_published(summary, load_published(None if published is True else published), source)
    if fmt == "csv":
        return summary.to_csv(index=False)
    grid = build_grid(summary, cols, digits, published is not False)
    grid.notes = _notes(df, summary, cols, published is not False)
    return to_latex(grid) if fmt == "latex" else to_markdown(grid)

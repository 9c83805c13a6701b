"""Figures from run records (seaborn, PNG + PDF): per-class accuracy vs training frequency, classifier weight
norms, many/medium/few bars, training curves, t-SNE of test features, confusion matrices; the study figures
(class similarity, accuracy against a swept setting) live in ``study_plots``, the shared look in ``figure``.

Every figure is drawn from what the runs stored (result.json, log.jsonl, and the optional ``features.npz`` /
``predictions.npz``); nothing is re-evaluated, so a figure always matches the table made from the same runs.
Missing data is a ConfigError naming the file or field, never an empty plot. Matplotlib runs on the Agg
backend (no display on cluster nodes).
"""

from __future__ import annotations

import difflib
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ltbench.errors import ConfigError, DataError
from ltbench.records import FEATURES_FILE, PREDICTIONS_FILE
from ltbench.report.figure import caption, legend_outside, palette, save_figure, setup
from ltbench.report.load import PathsLike, load_records, parse_shots, read_log
from ltbench.report.study_plots import plot_similarity, plot_sweep
from ltbench.report.table import display_row, row_labels

KINDS = ("per-class", "weight-norms", "groups", "curves", "tsne", "confusion", "similarity", "sweep")


def _explode(df: pd.DataFrame, column: str, value: str) -> pd.DataFrame:
    """Long frame (method, dataset, seed, class, count, value) from a per-class list column."""
    rows = []
    for r in df.itertuples():
        values = getattr(r, column)
        if values is None or not len(values) or len(values) != len(r.class_counts):
            continue
        for c, (n, v) in enumerate(zip(r.class_counts, values)):
            rows.append({"method": r.row, "dataset": r.dataset, "seed": r.seed, "class": c, "count": n, value: v})
    return pd.DataFrame(rows)


def _per_class_like(df: pd.DataFrame, out_dir: Path, column: str, value: str, stem: str) -> list[Path]:
    plt, sns = setup()
    long = _explode(df, column, value)
    if not len(long):
        raise ConfigError(
            f"none of the {len(df)} runs stores per-class {column!r} in result.json metrics; "
            "weight norms exist only for methods whose head has class weight vectors (linear, cosine)"
        )
    n_methods = long["method"].nunique()
    g = sns.relplot(
        data=long,
        x="count",
        y=value,
        hue="method",
        palette=palette(n_methods),
        col="dataset",
        kind="line",
        marker="o",
        errorbar="sd",
        facet_kws={"sharex": False, "sharey": False},
        col_wrap=min(3, long["dataset"].nunique()),
        height=4.0 if long["method"].nunique() > 6 else 3.2,  # room for a 20-method grid's lines
        aspect=1.5 if long["method"].nunique() > 6 else 1.0,
    )
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    for ds, ax in g.axes_dict.items():
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 5.0)))  # 50, 100, 500, 1000, 5000: no "10002000"
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("training images of the class (log)")
        if value.startswith("accuracy"):
            ax.set_ylim(-3, 103)  # the sd band of a 0/100 class would otherwise leave the possible range
        for x, text in zip(_thresholds(df, ds), ("few <", "many >")):
            ax.axvline(x, color="grey", linestyle="--", linewidth=0.8)
            ax.annotate(f"{text} {x:g}", (x, 1.0), xycoords=("data", "axes fraction"), xytext=(2, -2),
                        textcoords="offset points", fontsize=6, color="0.35", va="top", rotation=90)  # fmt: skip
    legend_outside(g, n_methods)
    caption(g.figure, "Lines: mean over seeds; bands: ± 1 sd. Dashed: the many / few thresholds of the table.")
    return save_figure(g.figure, out_dir, stem)


def _thresholds(df: pd.DataFrame, dataset: str) -> list[float]:
    """(few, many) thresholds of ``dataset``'s runs (few first)."""
    sub = df[df["dataset"] == dataset]
    return sorted({float(v) for c in ("shots_many", "shots_few") for v in sub[c] if v == v})


def plot_per_class(df: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Per-class test accuracy against training-set frequency (mean ± sd over seeds; group thresholds dashed)."""
    long_df = df.assign(per_class=[[100 * a for a in acc] for acc in df["per_class"]])
    return _per_class_like(long_df, out_dir, "per_class", "accuracy (%)", "per-class")


def plot_weight_norms(df: pd.DataFrame, out_dir: Path) -> list[Path]:
    """L2 norm of each class's classifier weight vector against its frequency (seed paper Fig. 6)."""
    return _per_class_like(df, out_dir, "weight_norms", "weight norm", "weight-norms")


def plot_groups(df: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Many / medium / few / overall bars per method, one panel per dataset, sd over seeds as error bars."""
    plt, sns = setup()
    long = df.melt(
        id_vars=["row", "dataset", "seed"], value_vars=["many", "medium", "few", "overall"], var_name="group"
    )
    long["accuracy (%)"] = 100 * pd.to_numeric(long["value"], errors="coerce")
    long = long.dropna(subset=["accuracy (%)"]).rename(columns={"row": "method"})
    g = sns.catplot(
        data=long,
        x="group",
        y="accuracy (%)",
        hue="method",
        palette=palette(long["method"].nunique()),
        col="dataset",
        kind="bar",
        errorbar="sd",
        col_wrap=min(3, long["dataset"].nunique()),
        height=4.0,
        aspect=min(2.2, max(1.0, long["method"].nunique() / 6)),  # bars stay readable with the whole registry
    )
    g.set(ylim=(0, 100))
    legend_outside(g, long["method"].nunique())
    caption(g.figure, "Bars: mean over seeds; error bars: ± 1 sd.")
    return save_figure(g.figure, out_dir, "groups")


def plot_curves(df: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Training loss and the logged test accuracy per epoch (stages concatenated), from each run's log.jsonl."""
    plt, sns = setup()
    frames, boundaries = [], set()
    for r in df.itertuples():
        log = read_log(r.run_dir)
        if "stage" in log:
            changes = log["stage"].ne(log["stage"].shift()) & log.index.to_series().gt(0)
            boundaries |= set(log.loc[changes, "epoch_index"].tolist())
        if len(log) and r.overall == r.overall:  # the final evaluation (the reported number) ends the curve
            log.loc[len(log) - 1, "test_acc"] = r.overall
        for q, name, scale in (("loss", "train loss", 1), ("test_acc", "test accuracy (%)", 100)):
            if q in log:
                part = log[["epoch_index", q]].dropna().rename(columns={q: "value"})
                frames.append(part.assign(value=part["value"] * scale, quantity=name, method=r.row, dataset=r.dataset))
    if not frames:
        raise ConfigError(f"none of the {len(df)} runs has a log.jsonl with loss values to plot")
    long = pd.concat(frames, ignore_index=True)
    n_methods = long["method"].nunique()
    g = sns.relplot(
        data=long,
        x="epoch_index",
        y="value",
        hue="method",
        palette=palette(n_methods),
        row="quantity",
        col="dataset",
        kind="line",
        errorbar="sd",
        marker="o",
        markersize=3,
        facet_kws={"sharey": False, "sharex": False},
        height=2.8,
        aspect=1.4,
    )
    g.set_axis_labels("epoch (all stages)", "")
    g.set_titles("{row_name} · {col_name}")
    for (quantity, _), ax in g.axes_dict.items():
        if quantity == "train loss":
            ax.set_yscale("log")  # one diverging or contrastive-scale loss no longer flattens the rest
        for boundary in boundaries:
            ax.axvline(boundary - 0.5, color="grey", linestyle=":", linewidth=0.8)
    legend_outside(g, n_methods)
    caption(g.figure, "Lines: mean over seeds; bands: ± 1 sd. Loss on a log axis; dotted: stage boundaries. "
                       "Losses of different stages (e.g. contrastive, then CE) are not on one scale.")  # fmt: skip
    return save_figure(g.figure, out_dir, "curves")


def _with_file(df: pd.DataFrame, name: str, what: str, needed: str) -> pd.DataFrame:
    have = df[[(Path(d) / name).exists() for d in df["run_dir"]]]
    missing = df[~df["run_id"].isin(have["run_id"])]
    if not len(have):
        raise ConfigError(
            f"run {missing['run_id'].iloc[0]} has no {what} ({name} in the run directory, {needed})"
            + (f"; nor do the other {len(missing) - 1} runs" if len(missing) > 1 else "")
            + "; rerun with a trainer that stores it"
        )
    if len(missing):
        warnings.warn(f"{len(missing)} runs have no {name}, skipped: {', '.join(missing['run_id'])}", stacklevel=3)
    return have


def _hue(labels: np.ndarray, counts: list[int], shots: tuple[int, int], names: list | None) -> tuple[list, list, str]:
    """Colour by class when there are few classes, else by many/medium/few group; returns each point's label,
    the legend order (head to tail: classes by decreasing training count, then many → medium → few) and the
    legend title. Labels carry the training count, so the legend reads as the long tail."""
    if len(counts) <= 20:
        name = [f"{names[c] if names else c} ({counts[c]})" for c in range(len(counts))]
        order = sorted(range(len(counts)), key=lambda c: (-counts[c], c))
        return [name[v] for v in labels], [name[c] for c in order], "class (train images), head → tail"
    many, few = shots
    groups = ["many" if counts[c] > many else "few" if counts[c] < few else "medium" for c in labels]
    return groups, [g for g in ("many", "medium", "few") if g in groups], "group"


def plot_tsne(df: pd.DataFrame, out_dir: Path) -> list[Path]:
    """t-SNE (sklearn, PCA init, fixed seed) of each run's stored test-feature sample, one figure per run."""
    from sklearn.manifold import TSNE

    plt, sns = setup()
    paths: list[Path] = []
    for r in _with_file(df, FEATURES_FILE, "feature sample", "arrays 'features' and 'labels'").itertuples():
        with np.load(Path(r.run_dir) / FEATURES_FILE) as z:
            feats, labels = z["features"].astype(np.float32), z["labels"].astype(int)
        finite = np.isfinite(feats).all(axis=1)
        if not finite.all():  # older records stored float16 features, which overflow to inf
            warnings.warn(
                f"{r.run_id}: {int((~finite).sum())} stored features are not finite; t-SNE skips them", stacklevel=2
            )
            feats, labels = feats[finite], labels[finite]
        if len(feats) < 5:
            warnings.warn(f"{r.run_id}: fewer than 5 finite stored features; no t-SNE figure", stacklevel=2)
            continue
        perplexity = float(min(30, max(2, (len(feats) - 1) // 3)))
        method = "exact" if len(feats) <= 1000 else "barnes_hut"  # exact: no OpenMP spin on a busy node
        emb = TSNE(2, perplexity=perplexity, init="pca", random_state=0, method=method).fit_transform(feats)
        hue, order, title = _hue(labels, list(r.class_counts), (int(r.shots_many), int(r.shots_few)), r.classes)
        palette = sns.color_palette("viridis", len(order))  # sequential: dark head, light tail
        fig, ax = plt.subplots(figsize=(4.5, 4.0))
        sns.scatterplot(
            x=emb[:, 0], y=emb[:, 1], hue=hue, hue_order=order, palette=palette, s=8, linewidth=0, ax=ax, legend=True
        )
        ax.set(xticks=[], yticks=[], title=f"{r.row} · {r.dataset} · seed {r.seed}")
        if ax.get_legend() is not None:
            ax.legend(title=title, fontsize=6, markerscale=1.5, bbox_to_anchor=(1.02, 1), loc="upper left")
        caption(fig, "Colour: training-set size, dark = head (most images), light = tail.")
        paths += save_figure(fig, out_dir, f"tsne_{r.run_id}")
    return paths


def _confusion(run_dir: Path, result_confusion, num_classes: int) -> np.ndarray | None:
    path = Path(run_dir) / PREDICTIONS_FILE
    if path.exists():
        with np.load(path) as z:
            preds, labels = z["preds"].astype(int), z["labels"].astype(int)
        return np.bincount(labels * num_classes + preds, minlength=num_classes**2).reshape(num_classes, num_classes)
    if result_confusion is not None:
        return np.asarray(result_confusion, dtype=float)
    return None


def plot_confusion(df: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Row-normalised test confusion matrix (recall on the diagonal), averaged over seeds, per method x dataset."""
    from ltbench.records import read_json

    plt, sns = setup()
    mats = []
    for r in df.itertuples():
        stored = ((read_json(Path(r.run_dir) / "result.json") or {}).get("metrics") or {}).get("confusion")
        cm = _confusion(Path(r.run_dir), stored, int(r.num_classes))
        if cm is not None:
            mats.append((r.row, r.dataset, cm / np.maximum(cm.sum(axis=1, keepdims=True), 1), r.classes))
    if not mats:
        raise ConfigError(
            f"run {df['run_id'].iloc[0]} stores no test predictions ({PREDICTIONS_FILE} with 'preds' and 'labels', "
            "or metrics.confusion in result.json); a confusion matrix needs one of them"
        )
    paths: list[Path] = []
    for (row, ds), group in pd.DataFrame(mats, columns=["row", "dataset", "cm", "classes"]).groupby(["row", "dataset"]):
        cm = np.mean(np.stack(group["cm"].tolist()), axis=0)
        names = group["classes"].iloc[0] or list(range(len(cm)))
        small = len(cm) <= 30
        fig, ax = plt.subplots(figsize=(5, 4.2))
        sns.heatmap(
            cm,
            vmin=0,
            vmax=1,
            cmap="viridis",
            square=True,
            ax=ax,
            xticklabels=names if small else False,
            yticklabels=names if small else False,
        )
        ax.set(xlabel="predicted", ylabel="true (sorted by training count)", title=f"{row} · {ds} ({len(group)} runs)")
        paths += save_figure(fig, out_dir, f"confusion_{row}_{ds}")
    return paths


PLOTS = {
    "per-class": plot_per_class,
    "weight-norms": plot_weight_norms,
    "groups": plot_groups,
    "curves": plot_curves,
    "tsne": plot_tsne,
    "confusion": plot_confusion,
    "similarity": plot_similarity,
    "sweep": plot_sweep,
}


def make_plot(
    paths: PathsLike,
    kind: str,
    out_dir: str | Path = "figures",
    datasets: str | list[str] | None = None,
    shots: str | tuple[int, int] | None = None,
    **options: str | None,
) -> list[Path]:
    """The pipeline behind ``ltbench plot``: load completed runs, filter, draw one kind, return written files."""
    if kind not in PLOTS:
        close = difflib.get_close_matches(kind, KINDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown plot kind {kind!r}{hint}; choose from {', '.join(KINDS)}")
    from ltbench.report.table import filter_datasets, filter_methods

    df = filter_datasets(load_records(paths, shots=parse_shots(shots)), datasets)
    df = filter_methods(df, options.pop("methods", None))
    df = df.assign(
        row=[display_row(row) for row in row_labels(df)]
    )  # as the tables print them (LDAM-DRW, not ldam_drw)
    try:
        return PLOTS[kind](df, Path(out_dir), **{k: v for k, v in options.items() if v is not None})
    except ConfigError:
        raise
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:  # data the figure cannot show
        raise DataError(f"the {kind} figure cannot be drawn from these runs: {type(exc).__name__}: {exc}") from exc

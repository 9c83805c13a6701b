"""Figures of the studies of sample number and class similarity (Liu & Liu): the class-by-class similarity of a
run, and the accuracy of chosen classes, spans of classes or groups against a swept setting (the toy cases'
class counts, the injection's ρ and λ, any hparam), mean ± sd over seeds."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ltbench.errors import ConfigError
from ltbench.records import FEATURES_FILE, PREDICTIONS_FILE, read_json
from ltbench.report.figure import save_figure, setup
from ltbench.report.load import display_name
from ltbench.report.metrics import class_span, metric_pair, pair_share, span_accuracy


def _similarity_of(r) -> dict | None:
    from ltbench.report.similarity import run_similarity

    stored = (read_json(Path(r.run_dir) / "result.json") or {}).get("similarity")
    return stored or run_similarity(Path(r.run_dir), list(r.class_counts))


def plot_similarity(df: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Per method x dataset (mean over seeds): the class-by-class cosine of class-mean test features, and each
    class's accuracy against its highest similarity to a more frequent class, sized by its training count
    (Liu & Liu: a rare class suffers most when it resembles a frequent one)."""
    plt, sns = setup()
    rows = []
    for r in df.itertuples():
        sim = _similarity_of(r)
        if sim is not None:
            rows.append((r.row, r.dataset, np.asarray(sim["feature_cosine"]), sim["most_similar_frequent"], r))
    if not rows:
        raise ConfigError(
            f"run {df['run_id'].iloc[0]} has no class similarity (result.json 'similarity', or {FEATURES_FILE} "
            f"and {PREDICTIONS_FILE} to compute it)"
        )
    paths: list[Path] = []
    for (row, ds), group in pd.DataFrame(rows, columns=["row", "dataset", "cos", "msf", "r"]).groupby(
        ["row", "dataset"]
    ):
        cos = np.mean(np.stack(group["cos"].tolist()), axis=0)
        first = group["r"].iloc[0]
        names = first.classes or list(range(len(cos)))
        acc = np.nanmean(np.stack([np.asarray(r.per_class, dtype=float) for r in group["r"]]), axis=0)
        msf = np.asarray([np.nan if v is None else v for v in group["msf"].iloc[0]], dtype=float)
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
        small = len(cos) <= 30
        sns.heatmap(cos, vmin=-1, vmax=1, cmap="vlag", square=True, ax=ax1,
                    xticklabels=names if small else False, yticklabels=names if small else False)  # fmt: skip
        ax1.set(title="cosine of class-mean test features")
        counts = np.asarray(first.class_counts, dtype=float)
        ax2.scatter(msf, 100 * acc, s=20 + 80 * counts / counts.max(), c=np.log10(counts), cmap="viridis")
        ax2.set(xlabel="highest similarity to a more frequent class", ylabel="test accuracy (%)",
                title="accuracy vs similarity (size, colour: training images)")  # fmt: skip
        fig.suptitle(f"{row} · {ds} ({len(group)} runs)")
        paths += save_figure(fig, out_dir, f"similarity_{row}_{ds}")
    return paths


def sweep_values(df: pd.DataFrame, x: str) -> pd.Series:
    """The swept parameter of each run: a record column (``imbalance_ratio``, ``seed``), a hparam (``lr`` or
    ``hparams.lr``), one element of a list column (``class_counts[9]``) or ``mix_similar.rho`` / ``.lambda``."""
    element = re.fullmatch(r"(\w+)\[(\d+)\]", x)
    if element and element.group(1) in df.columns:
        i = int(element.group(2))
        return df[element.group(1)].map(lambda v: v[i] if isinstance(v, (list, tuple)) and len(v) > i else np.nan)
    if x in ("mix_similar.rho", "mix_similar.lambda") and "mix_similar" in df.columns:
        part = 2 if x.endswith("rho") else 3
        return df["mix_similar"].map(lambda v: float(v.split(":")[part]) if isinstance(v, str) else 0.0)
    for column in (x, f"hparams.{x}"):
        if column in df.columns:
            return pd.to_numeric(df[column], errors="coerce")
    raise ConfigError(
        f"--x {x!r} is not a setting of these runs; e.g. imbalance_ratio, lr, class_counts[9], mix_similar.rho"
    )


def where_runs(df: pd.DataFrame, where: str | None) -> pd.DataFrame:
    """The runs whose settings match every ``PARAM=VALUE`` of ``where`` (comma-separated, PARAM as for --x): a
    grid that varies two settings (Liu & Liu's ρ and λ) is drawn against one with the other held."""
    for condition in filter(None, (where or "").split(",")):
        param, sep, value = condition.partition("=")
        if not sep:
            raise ConfigError(f"--where {condition!r}: expected PARAM=VALUE, e.g. mix_similar.lambda=0.2")
        try:
            wanted = float(value)
        except ValueError:
            raise ConfigError(f"--where {condition!r}: VALUE must be a number") from None
        df = df[np.isclose(sweep_values(df, param).astype(float), wanted)]
    return df


def plot_sweep(
    df: pd.DataFrame, out_dir: Path, x: str | None = None, classes: str | None = None, where: str | None = None
) -> list[Path]:
    """Accuracy of chosen classes (indices) or groups against a swept setting, mean ± sd over seeds, one line per
    target and method (the figure of Liu & Liu's toy and similarity studies); ``where`` holds other settings."""
    if not x:
        raise ConfigError("--kind sweep needs --x PARAM (e.g. class_counts[9], mix_similar.rho, lr)")
    plt, sns = setup()
    targets = [t for t in (classes or "overall").split(",") if t]
    frame = where_runs(df, where)
    if frame.empty:
        raise ConfigError(f"no run matches --where {where}")
    frame = frame.assign(x=sweep_values(frame, x))
    pairs = {t: metric_pair(f"confusion:{t}") for t in targets}
    shares = any(pairs.values())  # confusion shares: their own axis, title and file beside the accuracy figure
    y = "% of test images" if shares else "accuracy (%)"
    rows = []
    for r in frame.itertuples():
        for t in targets:
            span, pair = class_span(t), pairs[t]
            if pair is not None:
                value, name = pair_share(getattr(r, "confusion", None), pair), _pair_name(pair, r.classes)
            else:
                value = getattr(r, t, np.nan) if span is None else span_accuracy(list(r.per_class), span)
                name = _target_name(t, span, r.classes)
            rows.append({"x": r.x, "method": display_name(r.label), "target": name, y: 100 * float(value)})
    long = pd.DataFrame(rows).dropna()
    if long.empty:
        raise ConfigError(f"no run has both {x!r} and an accuracy for {','.join(targets)}")
    fig, ax = plt.subplots(figsize=(6, 4))
    sns.lineplot(data=long, x="x", y=y, hue="target", style="method", errorbar="sd", marker="o", ax=ax)
    held = f", {where}" if where else ""
    ax.set(xlabel=x, title=f"{y if shares else 'accuracy'} vs {x}{held} (mean ± sd over seeds)")
    prefix = "shares_" if shares else "sweep_"
    return save_figure(fig, out_dir, prefix + re.sub(r"[^\w.]+", "_", x + (f"_where_{where}" if where else "")))


def _pair_name(pair: tuple[int, int], classes) -> str:
    """A confusion target's legend entry: "truck taken for airplane" (class names where the record has them)."""
    a, b = (classes[i] if classes is not None and len(classes) > i else f"class {i}" for i in pair)
    return f"{a} taken for {b}"


def _target_name(target: str, span: tuple[int, int] | None, classes) -> str:
    """A sweep figure's legend entry: a group as given, a class by its name, a span by its first and last names."""
    if span is None:
        return target
    first, last = span
    name = [classes[i] if classes is not None and len(classes) > i else f"class {i}" for i in (first, last)]
    return name[0] if first == last else f"{name[0]}–{name[1]} (mean)"

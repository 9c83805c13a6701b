"""Published numbers beside ours: the shipped ``published.csv`` (percent, with source and verification status)
and the join that gives each table row one source's numbers and our difference to them (docs/protocol.md §0.3)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ltbench.errors import ConfigError
from ltbench.report.load import base_dataset

PUBLISHED_CSV = Path(__file__).resolve().parent / "published.csv"  # package data; --published FILE for others


def load_published(path: str | Path | None = None) -> pd.DataFrame:
    """Numbers reported in papers (percent) with source and verification status: ltbench/report/published.csv
    (shipped with the package) or ``path``."""
    path = Path(path) if path else PUBLISHED_CSV
    if not path.exists():
        raise ConfigError(f"published numbers file {path} not found; pass --published FILE")
    return pd.read_csv(path, comment="#")


def _candidates(pub: pd.DataFrame, r: pd.Series, metrics: list[str]) -> pd.DataFrame:
    """Published rows for one table row, best first: our backbone, then most metrics given, then file order."""
    cand = pub[(pub["method"] == r["method"]) & (pub["dataset"] == base_dataset(r["dataset"]))]
    ir = pd.to_numeric(cand["imbalance_ratio"], errors="coerce") if "imbalance_ratio" in cand else None
    if ir is not None:
        cand = cand[ir.isna() | (ir == r["imbalance_ratio"])]
    have = [m for m in metrics if m in cand]
    cand = cand.assign(_other=cand["backbone"] != r["backbone"], _given=-cand[have].notna().sum(axis=1))
    return cand.sort_values(["_other", "_given"], kind="stable")


def join_published(summary: pd.DataFrame, pub: pd.DataFrame, source: str | None = None) -> pd.DataFrame:
    """Add ``published``, ``diff`` (ours − published), ``pub_source``, ``pub_status``, ``pub_note``.

    Match on method, dataset and imbalance ratio (published rows without one match any). Each table row
    takes all its published numbers from ONE source, never a mix of papers: the one with our backbone,
    then the most metrics, then file order (``source`` keeps only sources containing that text). A group
    value published with other thresholds keeps its number but gets no Δ (not comparable, §0.3).
    """
    if source:
        pub = pub[pub["source"].str.contains(source, case=False, regex=False, na=False)]
    pub = pub.reset_index(drop=True)
    out = summary.assign(published=math.nan, diff=math.nan, pub_source="", pub_status="", pub_note="")
    metrics = [m for m in out["metric"].unique() if m in pub.columns]
    for _, idx in out.groupby(["row", "dataset"]).groups.items():
        cand = _candidates(pub, out.loc[idx[0]], metrics)
        cand = cand[cand[metrics].notna().any(axis=1)] if metrics else cand.iloc[:0]
        if not len(cand):
            continue
        best = cand.iloc[0]
        shots = "" if pd.isna(best.get("shots")) else str(best.get("shots"))
        for i in idx:
            m = out.loc[i, "metric"]
            if m not in metrics or pd.isna(best[m]):
                continue
            other = m in ("many", "medium", "few") and shots and shots != out.loc[i, "shots"]
            out.loc[i, ["published", "pub_source", "pub_status"]] = [best[m], best["source"], best["status"]]
            out.loc[i, "pub_note"] = f"thresholds {shots} differ from ours, no Δ" if other else ""
            out.loc[i, "diff"] = math.nan if other else out.loc[i, "mean"] - best[m]
    return out

"""Table metrics by name: what a column is called, its display scale and ranking, and its value from a record.

A metric is one of METRICS (the record's own numbers), ``class:N`` / ``class:A-B`` (one class's test accuracy, or
the mean over a span: Liu & Liu's studies follow one class and "the rest") or ``confusion:A:B`` (the share of class
A's test images predicted as B, from the record's ``similarity.confusion``).
"""

from __future__ import annotations

import math
import re

import pandas as pd

from ltbench.errors import ConfigError

ACCURACY = ("many", "medium", "few", "overall")
# metric -> (header, scale to display units, True: higher is better / False: lower / None: not ranked)
METRICS = {
    "many": ("Many", 100, True),
    "medium": ("Medium", 100, True),
    "few": ("Few", 100, True),
    "overall": ("Overall", 100, True),
    "best_test": ("Best-test†", 100, True),  # --select best-test: the releases' test-selected epoch, never headline
    "macro_f1": ("Macro-F1", 100, True),
    "g_mean": ("G-mean", 100, True),
    "ece": ("ECE", 100, False),
    "auc": ("AUC", 100, True),  # macro one-vs-rest ROC AUC
    "wn_var": ("WN var", 1, None),  # a diagnostic (seed paper Table 2), not a score: never bold
}
EXTRA_METRICS = tuple(m for m in METRICS if m not in ACCURACY)


def class_span(text: str) -> tuple[int, int] | None:
    """``9`` -> (9, 9), ``0-8`` -> (0, 8): the classes a ``class:`` metric or a sweep figure's target averages;
    None if ``text`` is neither form. A reversed span is an error."""
    found = re.fullmatch(r"(\d+)(?:-(\d+))?", text)
    if found is None:
        return None
    first, last = int(found.group(1)), int(found.group(2) or found.group(1))
    if last < first:
        raise ConfigError(f"class span {text!r} runs backwards; write FIRST-LAST with FIRST <= LAST, e.g. 0-8")
    return first, last


def span_accuracy(per_class, span: tuple[int, int]) -> float:
    """Mean accuracy over the classes of ``span`` (NaN where the run has fewer classes): every class counts once,
    as in the group columns."""
    first, last = span
    if not isinstance(per_class, (list, tuple)) or len(per_class) <= last:
        return math.nan
    return float(sum(per_class[first : last + 1]) / (last - first + 1))


def metric_span(metric: str) -> tuple[int, int] | None:
    """The classes of a ``class:`` metric: class:9 = the test accuracy of class 9, class:0-8 = the mean over
    classes 0 to 8 (Liu & Liu's studies follow one class, and "the rest"); None for any other metric."""
    return class_span(metric.removeprefix("class:")) if metric.startswith("class:") else None


def metric_pair(metric: str) -> tuple[int, int] | None:
    """The classes of a ``confusion:A:B`` metric, the share of class A's test images predicted as class B (the
    record's ``similarity.confusion``; Liu & Liu's mechanism: a tail class taken for the head class it resembles);
    None for any other metric."""
    found = re.fullmatch(r"confusion:(\d+):(\d+)", metric)
    return (int(found.group(1)), int(found.group(2))) if found else None


def pair_share(confusion, pair: tuple[int, int]) -> float:
    """confusion[A][B] of a run (NaN where the run has no such classes or no similarity record)."""
    a, b = pair
    if not isinstance(confusion, (list, tuple)) or len(confusion) <= max(a, b) or a == b:
        return math.nan
    return float(confusion[a][b])


def metric_info(metric: str) -> tuple[str, float, bool | None] | None:
    """(header, scale, ranking) of a metric name: one of METRICS, ``class:N`` / ``class:A-B`` or ``confusion:A:B``;
    None if none of them. A confusion share is a diagnostic, never bold."""
    span = metric_span(metric)
    if span is not None:
        first, last = span
        return (f"Class {first}" if first == last else f"Classes {first}–{last}", 100, True)
    pair = metric_pair(metric)
    if pair is not None:
        return (f"{pair[0]} as {pair[1]}", 100, None)
    return METRICS.get(metric)


def metric_values(g: pd.DataFrame, metric: str) -> pd.Series:
    """The metric of each run of ``g`` (NaN where a run lacks it), in record units."""
    span = metric_span(metric)
    if span is not None:
        per_class = g["per_class"] if "per_class" in g else pd.Series(dtype=object)
        return per_class.map(lambda v: span_accuracy(v, span))
    pair = metric_pair(metric)
    if pair is not None:
        confusion = g["confusion"] if "confusion" in g else pd.Series(dtype=object)
        return confusion.map(lambda v: pair_share(v, pair))
    return pd.to_numeric(g[metric], errors="coerce") if metric in g else pd.Series(dtype=float)


def metric_list(metrics: str | tuple[str, ...] | None) -> tuple[str, ...]:
    """The columns of a table: the accuracy groups, then the extra metrics asked for (comma-separated or a tuple),
    each checked by name."""
    extra = tuple(m for m in (metrics.split(",") if isinstance(metrics, str) else metrics or ()) if m)
    unknown = [m for m in extra if metric_info(m) is None]
    if unknown:
        raise ConfigError(
            f"unknown metric(s) {unknown}; choose from {', '.join(EXTRA_METRICS)}, class:N, class:A-B or confusion:A:B"
        )
    return ACCURACY + tuple(m for m in extra if m not in ACCURACY)

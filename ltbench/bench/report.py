"""``ltbench bench report``: time ``ltbench table`` on many synthetic run records (issue 9: 1,000 records
must render in under 2 s), so report generation never becomes the slow part of a large sweep.

The records are written with the same writers as real runs (config.json, result.json, done) and the same
result.json fields that ``ltbench.report`` reads; the numbers are random but per-class consistent.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from ltbench.data.longtail import class_counts
from ltbench.metrics import group_accuracy
from ltbench.records import write_json_atomic, write_result

METHODS = ("ce", "focal", "ldam_drw", "ce_drw", "crt", "tau_norm", "ride", "kcl", "tsc", "sbcl")
DATASETS = {"cifar10_lt": (5000, 10), "cifar100_lt": (500, 100)}


def write_fake_records(out: Path, n: int, seed: int = 0) -> None:
    """``n`` done runs spread over METHODS x DATASETS x seeds, in ltbench's run-directory format."""
    rng = np.random.default_rng(seed)
    combos = [(m, d) for m in METHODS for d in DATASETS]
    for i in range(n):
        method, dataset = combos[i % len(combos)]
        n_max, num_classes = DATASETS[dataset]
        counts = class_counts(n_max, num_classes, 100)
        per_class = np.clip(np.linspace(0.9, 0.3, num_classes) + rng.normal(0, 0.03, num_classes), 0, 1).tolist()
        run_id = f"{method}-{dataset}-s{i // len(combos)}-bench{i:05d}"
        run_dir = out / run_id
        run_dir.mkdir(parents=True)
        base = {
            "run_id": run_id,
            "run_dir": str(run_dir),
            "config": {"method": method, "dataset": dataset, "seed": i // len(combos), "hparams": {}, "ssp": False},
            "resolved": {"backbone": "resnet32", "hp": {"epochs": 200}, "shots": [100, 20], "presets": []},
        }
        write_json_atomic(run_dir / "config.json", base)
        metrics = {"overall": float(np.mean(per_class)), "per_class": per_class, "macro_f1": 0.5, "g_mean": 0.4}
        metrics.update(group_accuracy(per_class, counts), ece=0.1)
        data = {"name": dataset, "num_classes": num_classes, "class_counts": counts, "shots": {"many": 100, "few": 20}}
        write_result(run_dir, {**base, "status": "done", "error": None, "metrics": metrics, "data": data})


def run_report_bench(n: int = 1000, repeats: int = 3) -> list[list]:
    """Rows (what, seconds): writing the records once, then ``make_table`` per format (best of ``repeats``)."""
    from ltbench.report.table import make_table

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        write_fake_records(Path(tmp), n)
        rows.append([f"write {n} fake run records (setup)", time.perf_counter() - t0])
        for fmt in ("markdown", "latex", "csv"):
            best = float("inf")
            for _ in range(repeats):
                t0 = time.perf_counter()
                make_table(tmp, fmt=fmt)
                best = min(best, time.perf_counter() - t0)
            rows.append([f"ltbench table --format {fmt} ({n} records)", best])
    return rows

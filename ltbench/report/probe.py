"""``ltbench probe RUN_DIR ...``: linear-probe accuracy of finished runs' frozen features.

The question the contrastive papers (KCL, TSC, SBCL, BNS) ask is whether their stage 1 learns a better
*representation* than cross-entropy, independent of the classifier trained on top. The probe answers it the
same way for every run: the backbone's pooled features of the un-augmented training images (eval mode),
a fresh linear classifier fitted to them with class-balanced weights (each class contributes equally, so
the probe does not inherit the long tail's bias), full-batch L-BFGS with a small L2 penalty, then the
benchmark's metrics on the test set. Nothing is selected on test; the probe has no tuned hyper-parameters.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

PROBE_L2 = 1e-4  # weight penalty of the probe (fixed in advance, not tuned)
PROBE_STEPS = 200  # L-BFGS iterations (full batch): converged on CIFAR-sized feature sets


@torch.no_grad()
def features(model: torch.nn.Module, ctx, images) -> torch.Tensor:
    """L2-normalised pooled backbone features of ``images`` (un-augmented, eval mode)."""
    feats = ctx.infer(model, lambda m, x: m.backbone(x).float(), images=images)
    return F.normalize(feats, dim=1)


def fit_probe(x: torch.Tensor, y: torch.Tensor, num_classes: int, steps: int = PROBE_STEPS) -> torch.nn.Linear:
    """A class-balanced multinomial logistic regression on fixed features (deterministic)."""
    torch.manual_seed(0)
    probe = torch.nn.Linear(x.shape[1], num_classes).to(x.device)
    counts = torch.bincount(y, minlength=num_classes).float()
    weight = torch.where(counts > 0, counts.sum() / (num_classes * counts.clamp(min=1)), torch.zeros_like(counts))
    opt = torch.optim.LBFGS(probe.parameters(), lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(probe(x), y, weight=weight) + PROBE_L2 * probe.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    return probe


def probe_run(run_dir: Path, data_root: str | None, device: str = "cpu") -> dict:
    """Probe metrics of one finished run (its own dataset, rebuilt from its config.json)."""
    from ltbench.config import RunConfig
    from ltbench.method import DataInfo
    from ltbench.metrics import classification_metrics
    from ltbench.records import read_json
    from ltbench.restore import load_finished
    from ltbench.run import load_data
    from ltbench.train.context import Context
    from ltbench.train.runtime import resolve_device

    config = read_json(Path(run_dir) / "config.json") or {}
    cfg_fields = config.get("config", {})
    keep = ("method", "dataset", "imbalance_ratio", "profile", "subset", "val", "image_size")
    cfg = RunConfig(**{k: cfg_fields[k] for k in keep if k in cfg_fields}, data_root=data_root)
    data = load_data(cfg)
    dev = resolve_device(device)
    info = DataInfo(data.num_classes, list(data.class_counts), data.image_size, data.name, data.train_y)
    _, model = load_finished(run_dir, info, dev)
    ctx = Context(data, dev, "fp32", channels_last=False)
    probe = fit_probe(features(model, ctx, ctx.train_x), ctx.train_y, data.num_classes)
    with torch.no_grad():
        logits = probe(features(model, ctx, data.test_x.to(dev))).cpu()
    shots = tuple(config.get("resolved", {}).get("shots", (100, 20)))
    metrics = classification_metrics(logits, data.test_y, data.class_counts, *shots)
    groups = {k: metrics[k] for k in ("many", "medium", "few", "overall")}
    return {"run": Path(run_dir).name, "method": cfg.method, **groups}


def probe_dirs(paths: list[str]) -> tuple[list[Path], Path]:
    """The finished runs under ``paths`` (run, sweep or any folder of them) and the folder the probe's table
    goes to: the one folder given, or the runs' common parent. Unfinished runs are named and skipped."""
    from ltbench.errors import ConfigError
    from ltbench.report.load import _state, find_run_dirs

    runs = find_run_dirs(paths)
    done = [d for d in runs if _state(d) == "done"]
    for d in sorted(set(runs) - set(done)):
        print(f"ltbench probe: skipping {d.name} ({_state(d)})", file=sys.stderr)
    if not done:
        raise ConfigError(f"no finished runs under {', '.join(paths)}; give run directories or a sweep folder")
    given = [Path(p).resolve() for p in paths]
    where = given[0] if len(given) == 1 and given[0] not in done else Path(os.path.commonpath(done))
    return done, where if where not in done else where.parent


def write_table(rows: list[dict], out: Path) -> str:
    """``probe.md`` (the printed table) and ``probe.csv`` (full precision) written atomically into ``out``."""
    import pandas as pd
    from tabulate import tabulate

    from ltbench.records import write_text_atomic

    keys = ("many", "medium", "few", "overall")
    table = [[r["method"], r["run"], *(f"{100 * r[k]:.1f}" if r[k] == r[k] else "n/a" for k in keys)] for r in rows]
    text = tabulate(table, ["method", "run", "many", "medium", "few", "overall"], tablefmt="github") + "\n"
    write_text_atomic(out / "probe.md", text)
    write_text_atomic(out / "probe.csv", pd.DataFrame(rows).to_csv(index=False))
    return text


def main(args: argparse.Namespace) -> int:
    from ltbench.train.runtime import configure_threads

    configure_threads(getattr(args, "threads", None))
    runs, where = probe_dirs(args.run_dirs)
    out = Path(args.out) if getattr(args, "out", None) else where
    out.mkdir(parents=True, exist_ok=True)
    rows = [probe_run(d, args.data_root, args.device) for d in runs]
    print(write_table(rows, out), end="")
    print(f"ltbench probe: wrote {out / 'probe.md'} and probe.csv", file=sys.stderr)
    return 0

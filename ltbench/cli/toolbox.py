"""``ltbench predict | export | diff``: using and comparing finished runs. Each only reads run directories."""

from __future__ import annotations

import argparse
from pathlib import Path

from ltbench.errors import ConfigError, DataError

CHUNK = 256  # images decoded and predicted at a time (memory stays bounded for large folders)


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="top-k classes of image files with a finished run's model")
    p.add_argument("run_dir", help="a finished run directory")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_FOLDER", help="image files, or folders of them")
    p.add_argument("--top-k", type=int, default=5, help="classes per image (default 5)")
    p.add_argument("--out", metavar="PREDS.csv", help="also write image,rank,class,class_index,probability")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    p.set_defaults(func=cmd_predict)
    p = sub.add_parser("export", help="one self-contained .pt file of a finished run (torch.load weights_only)")
    p.add_argument("run_dir", help="a finished run directory")
    p.add_argument("--to", required=True, metavar="MODEL.pt", help="the file to write")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("diff", help="configuration and metric differences of two finished runs")
    p.add_argument("run_a")
    p.add_argument("run_b")
    p.add_argument(
        "--classes",
        type=int,
        default=20,
        help="per-class rows: all up to N classes, else the N largest differences (default 20; 0: none)",
    )
    p.set_defaults(func=cmd_diff)


def cmd_predict(args: argparse.Namespace) -> int:
    import torch

    from ltbench.inference import load_run
    from ltbench.inference.preprocess import image_files
    from ltbench.train.progress import console

    if args.top_k < 1:
        raise ConfigError(f"--top-k must be >= 1, got {args.top_k}")
    run = load_run(args.run_dir, device=args.device)
    files, rows, bad = image_files(args.images), [], []
    k = min(args.top_k, len(run.class_names))
    for start in range(0, len(files), CHUNK):
        good, images = [], []
        for path in files[start : start + CHUNK]:
            try:
                images.append(run.transform.load(path))
                good.append(path)
            except DataError as exc:
                bad.append(str(exc))
        if not images:
            continue
        probs = run.predict(torch.stack(images)).softmax(dim=1)
        top = probs.topk(k, dim=1)
        for path, p, idx in zip(good, top.values.tolist(), top.indices.tolist()):
            rows += [(str(path), r + 1, run.class_names[c], c, pr) for r, (pr, c) in enumerate(zip(p, idx))]
    print_predictions(rows)
    if args.out:
        write_csv(Path(args.out), rows)
    for message in bad:
        console(f"ltbench: error: {message}")
    return 2 if bad else 0


def print_predictions(rows: list[tuple]) -> None:
    from tabulate import tabulate

    shown = [(img if rank == 1 else "", rank, name, f"{100 * p:.2f}%") for img, rank, name, _, p in rows]
    if shown:
        print(tabulate(shown, ["image", "rank", "class", "probability"], tablefmt="github"))


def write_csv(path: Path, rows: list[tuple]) -> None:
    import csv

    from ltbench.errors import storage_error

    try:
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["image", "rank", "class", "class_index", "probability"])
            writer.writerows((img, rank, name, c, f"{p:.6g}") for img, rank, name, c, p in rows)
    except OSError as exc:
        raise storage_error(exc, path) from exc


def cmd_export(args: argparse.Namespace) -> int:
    from ltbench.inference import export_run

    path = export_run(args.run_dir, args.to)
    print(f"exported {args.run_dir} -> {path} (torch.load(path, weights_only=True); ltbench.inference.load_export)")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from ltbench.report.diff import diff_runs

    print(diff_runs(args.run_a, args.run_b, args.classes))
    return 0

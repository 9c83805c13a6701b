"""``ltbench table`` and ``ltbench plot``: argument handling around table.py / plot.py.

Only argparse is imported at module level; pandas, seaborn and torch load inside the commands, so
``ltbench list`` and ``--help`` stay instant. Values are validated by the library (ConfigError, one line,
exit 2) rather than by argparse ``choices``/``type``, whose errors print a usage block instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ltbench.errors import ConfigError

SUFFIX_FORMATS = {".tex": "latex", ".md": "markdown", ".csv": "csv"}


METHODS_HELP = "comma-separated methods to show, as keys or printed names (default: all found)"


def add_table_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUNS", help="run directories, sweep directories or folders of them")
    p.add_argument("--methods", help=METHODS_HELP)
    p.add_argument("--format", help="latex | markdown | csv (default: from --out's suffix, else markdown)")
    p.add_argument("--datasets", help="comma-separated datasets to show (default: all found)")
    p.add_argument("--shots", help="recompute many/few groups with thresholds MANY,FEW (e.g. 500,200)")
    p.add_argument(
        "--published",
        nargs="?",
        const=True,
        default=False,
        metavar="CSV",
        help="show published numbers and ours minus them (default file: ltbench/report/published.csv)",
    )
    p.add_argument("--source", help="with --published: only sources containing this text (e.g. 'poster')")
    p.add_argument(
        "--metrics",
        help="extra columns: macro_f1,g_mean,ece,auc,wn_var,best_test, class:N (class N's accuracy), class:A-B "
        "(the mean over classes A to B) and confusion:A:B (the share of class A's test images predicted as B)",
    )
    p.add_argument(
        "--select",
        choices=("final", "best-test"),
        default="final",
        help="best-test: add the test-selected best epoch (marked †, for comparison with releases that report it)",
    )
    p.add_argument("--digits", type=int, default=1, help="decimals (default 1, as in the papers)")
    p.add_argument(
        "--columns",
        choices=("dataset", "imbalance_ratio"),
        default="dataset",
        help="column groups: one per dataset (default) or per dataset and imbalance ratio (IR 100 / 50 / ... side "
        "by side, as Liu & Liu's Table 1)",
    )
    p.add_argument("--out", help="write to this file instead of stdout")


def add_plot_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUNS", help="run directories, sweep directories or folders of them")
    p.add_argument(
        "--kind",
        required=True,
        help="per-class | weight-norms | groups | curves | tsne | confusion | similarity | sweep",
    )
    p.add_argument("--methods", help=METHODS_HELP)
    p.add_argument("--datasets", help="comma-separated datasets to show (default: all found)")
    p.add_argument("--shots", help="recompute many/few groups with thresholds MANY,FEW")
    p.add_argument("--out", default="figures", help="output directory for PNG + PDF (default: ./figures)")
    p.add_argument(
        "--x", help="--kind sweep: the swept setting (imbalance_ratio, lr, class_counts[9], mix_similar.rho)"
    )
    p.add_argument(
        "--classes",
        help="--kind sweep: class indices, spans (0-8: their mean accuracy), groups and/or A:B (the share of "
        "class A's test images predicted as B) to follow, e.g. 0,9 or 9,0-8 or many,few or 9:0",
    )
    p.add_argument(
        "--where", help="--kind sweep: only runs with these settings, PARAM=VALUE[,...] (e.g. mix_similar.lambda=0.2)"
    )


def cmd_table(args: argparse.Namespace) -> int:
    from ltbench.report.table import make_table

    fmt = args.format or SUFFIX_FORMATS.get(Path(args.out).suffix if args.out else "", "markdown")
    if args.source and args.published is False:
        raise ConfigError("--source only applies with --published")
    text = make_table(
        args.runs,
        fmt=fmt,
        datasets=args.datasets,
        shots=args.shots,
        published=args.published,
        metrics=",".join(filter(None, [args.metrics, "best_test" if args.select == "best-test" else None])),
        digits=args.digits,
        source=args.source,
        methods=args.methods,
        columns=args.columns,
    )
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from ltbench.report.plot import make_plot

    options = {"x": args.x, "classes": args.classes, "where": args.where} if args.kind == "sweep" else {}
    options["methods"] = args.methods
    for path in make_plot(args.runs, args.kind, args.out, datasets=args.datasets, shots=args.shots, **options):
        print(path)
    return 0


def add_commands(sub) -> None:
    """Register ``table`` and ``plot`` on the CLI's subparsers (each dispatches through ``args.func``)."""
    p = sub.add_parser("table", help="paper table (LaTeX booktabs / markdown / CSV) from run records")
    add_table_args(p)
    p.set_defaults(func=cmd_table)
    p = sub.add_parser("plot", help="figures (PNG + PDF) from run records")
    add_plot_args(p)
    p.set_defaults(func=cmd_plot)

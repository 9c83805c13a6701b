"""``ltbench bench`` subcommands run and print their tables (functional only: speed is never asserted here)."""

from __future__ import annotations

from ltbench.cli import main


def test_bench_compare_prints_both_loops(capsys):
    argv = ["bench", "compare", "--dataset", "synthetic_lt", "--workers", "0", "--precision", "fp32", "--threads", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "conventional: PIL + torchvision + DataLoader" in out and "ltbench: device-resident" in out
    assert "1.00x" in out


def test_bench_report_prints_timings(capsys):
    assert main(["bench", "report", "--records", "30", "--repeats", "1"]) == 0
    assert "ltbench table --format latex (30 records)" in capsys.readouterr().out

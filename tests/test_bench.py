"""``ltbench bench`` subcommands run and print their tables (functional only: speed is never asserted here)."""

from __future__ import annotations

from ltbench.cli import main


def test_bench_compare_prints_both_loops(capsys):
    argv = ["bench", "compare", "--dataset", "synthetic_lt", "--workers", "0", "--precision", "fp32", "--threads", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    rows = {r[0].split(":")[0]: r for r in _table_rows(out)}
    assert set(rows) == {"conventional", "ltbench"}, out
    assert rows["conventional"][1] == rows["ltbench"][1] == "fp32"
    # the ratio column is the ltbench images/s over the conventional one: the ratio printed to 2 decimals (±0.005)
    # of the unrounded speeds, which are printed rounded to integers (±0.5 each)
    conv, speed, ratio = float(rows["conventional"][2]), float(rows["ltbench"][2]), float(rows["ltbench"][3][:-1])
    tolerance = 0.005 + (speed / conv) * (0.5 / conv + 0.5 / speed) * 1.01
    assert abs(ratio - speed / conv) <= tolerance


def _table_rows(text: str) -> list[list[str]]:
    """Body rows of a github-format table: cells, stripped."""
    lines = [line for line in text.splitlines() if line.startswith("|") and not set(line) <= set("|-: ")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines[1:]]


def test_bench_report_prints_timings(capsys):
    assert main(["bench", "report", "--records", "30", "--repeats", "1"]) == 0
    assert "ltbench table --format latex (30 records)" in capsys.readouterr().out


def test_bench_profile_groups_the_trainer_step(tmp_path):
    import argparse

    from ltbench.bench.profile import kind, profile_epochs

    assert kind("aten::convolution_backward") == "model compute" and kind("aten::add") == "model compute"
    assert kind("aten::_foreach_add_") == "optimizer" and kind("aten::index") == "augmentation / batching"
    args = argparse.Namespace(method="ce", dataset="synthetic_lt", data_root=None, steps=2, threads=None, out=tmp_path)
    rows, ops = profile_epochs(args)
    shares = {k: float(s.rstrip("%")) for k, s, _ in rows}
    assert abs(sum(shares.values()) - 100) < 0.5 and shares["model compute"] > 50
    assert ops and all(len(r) == 3 for r in ops)

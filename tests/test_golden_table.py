"""Golden tables: fixed run records under tests/data/golden_runs -> the exact committed markdown and LaTeX.

Regenerate the expected files only on purpose (a deliberate layout change), with
``ltbench table tests/data/golden_runs --format markdown > tests/data/golden_table.md`` and
``ltbench table tests/data/golden_runs --format latex --shots 500,200 --published > tests/data/golden_table.tex``
run from the repository root.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ltbench.bench.report import write_fake_records
from ltbench.report import load_records
from ltbench.report.table import make_table

DATA = Path(__file__).parent / "data"


@pytest.fixture
def golden(monkeypatch) -> Path:
    monkeypatch.chdir(DATA.parent.parent)  # the records' run_dir paths are relative to the repository root
    return Path("tests/data/golden_runs")


def test_markdown_is_exactly_the_golden_file(golden):
    assert make_table(golden, fmt="markdown") == (DATA / "golden_table.md").read_text()


def test_latex_with_paper_groups_and_published_is_exactly_the_golden_file(golden):
    expected = (DATA / "golden_table.tex").read_text()
    assert make_table(golden, fmt="latex", shots="500,200", published=True) == expected


def test_bench_report_records_load_as_real_ones(tmp_path):
    write_fake_records(tmp_path, 40)
    df = load_records(tmp_path)
    assert len(df) == 40 and set(df["dataset"]) == {"cifar10_lt", "cifar100_lt"}
    assert "CIFAR-100-LT" in make_table(tmp_path, fmt="markdown")

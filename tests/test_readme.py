"""The README documents every `ltbench run` flag and every subcommand (issue "The house": a user finds each
option in the README, not only in --help)."""

from __future__ import annotations

import argparse
from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    from ltbench.cli.main import build_parser

    parser = build_parser()
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_every_run_flag_is_in_the_readme():
    run = _subparsers()["run"]
    flags = {opt for a in run._actions for opt in a.option_strings if opt.startswith("--") and opt != "--help"}
    missing = sorted(f for f in flags if f"`{f}" not in README and f"{f}`" not in README and f", {f}" not in README)
    assert not missing, f"README does not mention: {missing}"


def test_every_subcommand_is_in_the_readme():
    missing = sorted(name for name in _subparsers() if f"`{name}" not in README and f"ltbench {name}" not in README)
    assert not missing, f"README does not mention the subcommands: {missing}"


def test_no_dangling_references_to_notes_outside_the_repository():
    root = Path(__file__).resolve().parents[1]
    for path in [root / "README.md", *(root / "ltbench").rglob("*.py"), *(root / "methods").rglob("*.py")]:
        text = Path(path).read_text()
        assert "METHODS §" not in text and "ARCHITECTURE §" not in text, path


def test_the_performance_section_is_the_committed_bench_outputs():
    """Every speed figure in the README is copied from results/bench/*.txt by results/bench/readme_section.py."""
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("readme_section", root / "results" / "bench" / "readme_section.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.section() in README, "run `python results/bench/readme_section.py` after results/bench/regenerate.sh"

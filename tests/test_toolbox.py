"""The researcher's toolbox: --version, display names as --method, --dry-run, --config recipes, load_run,
predict, export and diff (README, Toolbox)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

import ltbench
from ltbench.cli.main import main

ROOT = Path(__file__).resolve().parent.parent


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"ltbench {ltbench.__version__}"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["version"] == ltbench.__version__

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


# ---------------------------------------------------------------- display names as --method
@pytest.mark.parametrize(
    "given, key",
    [
        ("LDAM-DRW", "ldam_drw"),
        ("cRT", "crt"),
        ("CRT", "crt"),
        ("τ-norm", "tau_norm"),
        ("Tau-Norm", "tau_norm"),
        ("BNS+IP-DPP", "bns_ipdpp"),
        ("balanced softmax", "balanced_softmax"),
        ("ce", "ce"),
    ],
)
def test_display_names_are_accepted_as_method(given, key, tmp_path):
    from ltbench.cli.main import build_parser, config_from_args

    cfg = config_from_args(build_parser().parse_args(["run", "--method", given, "--out", str(tmp_path)]))
    assert cfg.method == key
    assert cfg.run_id.startswith(f"{key}-")
    assert cfg.identity()["method"] == key


def test_every_display_name_maps_to_its_key():
    from ltbench.cli.catalog import canonical_method, display_names

    for key, display in display_names().items():
        assert canonical_method(display) == key
        assert canonical_method(display.upper()) == key


def test_unknown_method_still_lists_the_known_ones(capsys):
    assert main(["show", "LDAM-DRX"]) == 2
    err = capsys.readouterr().err
    assert "unknown method 'LDAM-DRX'" in err and "ldam_drw" in err


def test_show_accepts_a_display_name(capsys):
    assert main(["show", "LDAM-DRW"]) == 0
    assert capsys.readouterr().out.startswith("ldam_drw — LDAM-DRW")

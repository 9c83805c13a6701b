"""What a user gets from `pip install ltbench` (not the editable checkout): every package and data file.

The fast test checks that pyproject's package list names every package folder of the checkout; the slow one
builds the wheel, installs it alone into an empty folder and runs `ltbench list` and a one-epoch run from
another directory, so a module, method or data file missing from the wheel fails here, not on a user's machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _declared() -> tuple[set[str], dict[str, str], dict[str, list[str]]]:
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return set(tool["packages"]), tool["package-dir"], tool["package-data"]


def test_every_package_folder_is_in_the_wheel_list():
    packages, package_dir, _ = _declared()
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "ltbench").rglob("__init__.py")}
    mapped = {src: name for name, src in package_dir.items()}  # methods -> ltbench.methods
    for init in (ROOT / "methods").rglob("__init__.py"):
        rel = init.parent.relative_to(ROOT).parts
        found.add(".".join([mapped[rel[0]], *rel[1:]]))
    assert found == packages, f"pyproject [tool.setuptools] packages differ from the folders: {found ^ packages}"


def test_declared_package_data_exists():
    _, _, data = _declared()
    for package, files in data.items():
        for name in files:
            assert (ROOT / Path(*package.split(".")) / name).is_file(), f"{package}: {name} is missing"


@pytest.mark.slow
def test_the_built_wheel_alone_lists_methods_and_runs(tmp_path):
    wheels, target, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    pip = [sys.executable, "-m", "pip", "-q"]
    src = tmp_path / "src"  # a copy of what the wheel is built from: setuptools writes build/ next to it
    for name in ("ltbench", "methods"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(src)], check=True)
    [wheel] = wheels.glob("ltbench-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True)
    # the wheel's ltbench comes first on the path; torch & co. come from this environment
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run(
        [sys.executable, "-c", "import ltbench, ltbench.methods as m; print(ltbench.__file__, m.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.count(str(target)) == 2, f"not the installed wheel: {where}"
    listed = subprocess.run(
        [sys.executable, "-m", "ltbench", "list"], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert listed.returncode == 0, listed.stderr
    assert all(name in listed.stdout for name in ("ce", "ldam_drw", "bns_ipdpp", "ride", "tsc"))
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "ltbench",
            "run",
            "--method",
            "ce",
            "--dataset",
            "digits_lt",
            "--epochs",
            "1",
            "--threads",
            "1",
            "--quiet",
            "--out",
            str(tmp_path / "out"),
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    assert len(list((tmp_path / "out").rglob("result.json"))) == 1

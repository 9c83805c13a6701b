"""The command line: bad input gives one clear line and exit status 2, never a traceback."""

import subprocess
import sys

import pytest


def run_cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "ltbench", *args], capture_output=True, text=True, timeout=300, env=env
    )


@pytest.mark.parametrize(
    "args, expect",
    [
        (["run", "--method", "nope"], "unknown method 'nope'"),
        (["run", "--dataset", "cifar11_lt"], "unknown dataset 'cifar11_lt'"),
        (["run", "--backbone", "resnet33"], "unknown backbone 'resnet33'"),
        (["run", "--set", "lr=fast"], "expected float"),
        (["run", "--set", "gamma=2"], "has no hparam 'gamma'"),
        (["run", "--set", "lr"], "KEY=VALUE"),
        (["run", "--profile", "linear"], "exp, step"),
        (["run", "--preset", "turbo"], "valid: quick"),
        (["run", "--epochs", "-3"], "positive"),
    ],
)
def test_bad_input_one_line_exit_2(args, expect, tmp_path):
    res = run_cli(*args, "--out", str(tmp_path))
    assert res.returncode == 2, res.stderr
    assert expect in res.stderr
    assert "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_missing_data_root_is_actionable(tmp_path, monkeypatch, capsys):
    """In-process, with the download failing as offline (tests/conftest.py: no_downloads): in a subprocess a
    machine with network would download CIFAR-10 and train on it instead."""
    from ltbench.cli import main

    monkeypatch.setattr("torch.set_num_threads", lambda n: None)  # leave the test process's threads alone
    argv = ["run", "--dataset", "cifar10_lt", "--data-root", str(tmp_path / "nowhere"), "--out", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("ltbench: error: cifar10 not found") and len(err.strip().splitlines()) == 1
    assert "--data-root" in err and "offline" in err and "Traceback" not in err
    assert not (tmp_path / "nowhere").exists() and not list(tmp_path.glob("runs/*"))  # nothing fetched or started


def test_list_shows_all_registries():
    res = run_cli("list")
    assert res.returncode == 0
    for word in ("methods:", "datasets:", "backbones:", "ce ", "cifar10_lt", "resnet32"):
        assert word in res.stdout


def test_argparse_type_errors_exit_2():
    res = run_cli("run", "--epochs", "many")
    assert res.returncode == 2 and "invalid int value" in res.stderr

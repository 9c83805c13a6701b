"""Sweeps: expansion, per-hparam seeding, states, and the debug/local launchers (fast, synthetic data)."""

import json
import subprocess
import sys

import pytest

from ltbench.errors import ConfigError
from ltbench.sweep import SweepSpec, expand, load_spec, random_hparams, states, to_launch
from ltbench.sweep.launch import submit


def _spec(**kw) -> SweepSpec:
    base = dict(
        name="t",
        methods=["ce", "focal"],
        datasets=["synthetic_lt"],
        seeds=[0, 1],
        run={"epochs": 1, "eval_every": 0, "precision": "fp32", "device": "cpu"},
    )
    base.update(kw)
    return SweepSpec(**base)


def test_expand_grid_and_ids_are_stable(tmp_path):
    configs = expand(_spec(grids={"focal": {"gamma": [1.0, 2.0]}}), out=str(tmp_path))
    assert len(configs) == 2 + 4  # ce x 2 seeds, focal x 2 gammas x 2 seeds
    assert len({c.run_id for c in configs}) == len(configs)
    assert [c.run_id for c in expand(_spec(grids={"focal": {"gamma": [1.0, 2.0]}}), out=str(tmp_path))] == [
        c.run_id for c in configs
    ]
    assert all(c.run_dir.parent == tmp_path / "t" for c in configs)


def test_random_hparams_are_seeded_per_hparam(monkeypatch):
    from ltbench.method import HP
    from ltbench.registry import METHODS

    focal = METHODS.get("focal")
    before = random_hparams("focal", "cifar10_lt", 3)
    monkeypatch.setattr(focal, "hparams", {**focal.hparams, "zzz_new": HP(1.0, "test", range=("uniform", 0, 1))})
    after = random_hparams("focal", "cifar10_lt", 3)
    assert {k: after[k] for k in before} == before  # adding an hparam does not reshuffle the others
    assert random_hparams("focal", "cifar10_lt", 4) != before


def test_spec_file_errors_are_clear(tmp_path):

    bad = tmp_path / "bad.toml"
    bad.write_text('[sweep]\nmethods = ["ce"]\ndatasets = ["x"]\nlearning_rate = 1\n')
    with pytest.raises(ConfigError, match="unknown keys"):
        load_spec(bad)


def test_debug_launcher_runs_everything_then_nothing(tmp_path):
    configs = expand(_spec(), out=str(tmp_path))
    jobs = submit(to_launch(configs), "debug", tmp_path / ".submitit")
    assert [j.result() for j in jobs] == ["done"] * 4
    assert len(states(configs)["done"]) == 4
    assert to_launch(configs) == []  # relaunching submits nothing


def test_failed_run_is_shown_and_retried(tmp_path):
    configs = expand(
        _spec(
            methods=["ce"],
            seeds=[0],
            run={"epochs": 1, "eval_every": 0, "device": "cpu", "precision": "fp32"},
            grids={"ce": {"lr": [1e30]}},
        ),
        out=str(tmp_path),
    )
    [job] = submit(configs, "debug", tmp_path / ".submitit")
    assert job.result().startswith("failed: loss became")
    assert states(configs)["failed"] == configs
    assert to_launch(configs) == [] and to_launch(configs, retry_failed=True) == configs
    out = subprocess.run(
        [sys.executable, "-m", "ltbench", "status", str(tmp_path / "t")], capture_output=True, text=True
    )
    assert "failed 1" in out.stdout and "loss became" in out.stdout


def test_local_launcher_runs_in_subprocesses(tmp_path):
    configs = expand(_spec(methods=["ce"], seeds=[0]), out=str(tmp_path))
    [job] = submit(configs, "local", tmp_path / ".submitit")
    assert job.result() == "done"
    rec = json.loads((configs[0].run_dir / "result.json").read_text())
    assert rec["status"] == "done"


def test_local_launcher_refuses_an_array_limit_it_cannot_honour(tmp_path):
    """submitit's local executor starts every job at once: ``--array-parallelism`` below the number of runs was
    silently ignored (7 runs at once exhausted a 24 GB machine); now a clear error, a non-zero exit, nothing run."""
    cmd = [sys.executable, "-m", "ltbench", "sweep", "--methods", "ce,focal", "--datasets", "synthetic_lt"]
    cmd += ["--epochs", "1", "--out", str(tmp_path), "--name", "p", "--launcher", "local", "--array-parallelism", "1"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode != 0
    assert "--array-parallelism 1 is not honoured by the local launcher" in out.stderr
    assert "--launcher slurm" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "p" / ".submitit").exists()
    configs = expand(_spec(methods=["ce"], seeds=[0]), out=str(tmp_path))
    with pytest.raises(ConfigError, match="not honoured"):
        submit(configs * 2, "local", tmp_path / ".submitit", array_parallelism=1)


def test_cli_dry_run_counts(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "ltbench",
        "sweep",
        "--methods",
        "ce",
        "--datasets",
        "synthetic_lt",
        "--seeds",
        "0,1",
        "--epochs",
        "1",
        "--out",
        str(tmp_path),
        "--name",
        "d",
        "--dry-run",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "pending 2" in out.stdout and out.stdout.count("would launch") == 2


def test_command_line_lists_narrow_a_sweep_file(tmp_path):
    """``--methods`` / ``--datasets`` with a sweep file run only those rows (they were silently ignored)."""
    spec_file = tmp_path / "s.toml"
    spec_file.write_text(
        '[sweep]\nname = "s"\nmethods = ["ce", "focal", "ldam_drw"]\ndatasets = ["synthetic_lt", "digits_lt"]\n'
    )
    cmd = [sys.executable, "-m", "ltbench", "sweep", str(spec_file), "--methods", "focal", "--datasets", "synthetic_lt"]
    out = subprocess.run([*cmd, "--out", str(tmp_path / "o"), "--dry-run"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    launched = [line.split()[2] for line in out.stdout.splitlines() if "would launch" in line]
    assert len(launched) == 1 and launched[0].startswith("focal-synthetic_lt-s0-")


def test_dry_run_names_what_varies_and_sweep_takes_threads(tmp_path):
    """`sweep --dry-run` shows each run's varying settings (not only hashes); --threads reaches every run."""
    from ltbench.cli.main import build_parser
    from ltbench.cli.sweep import spec_from_args

    cmd = [sys.executable, "-m", "ltbench", "sweep", "--methods", "ce,focal", "--datasets", "synthetic_lt"]
    out = subprocess.run([*cmd, "--seeds", "0,1", "--dry-run", "--out", str(tmp_path)], capture_output=True, text=True)
    lines = [line for line in out.stdout.splitlines() if "would launch" in line]
    assert any("(method=focal, seed=1)" in line and "focal-synthetic_lt-s1-" in line for line in lines), out.stdout
    args = build_parser().parse_args(["sweep", "--methods", "ce", "--datasets", "synthetic_lt", "--threads", "1"])
    assert spec_from_args(args).run["threads"] == 1


@pytest.mark.parametrize(("spec", "runs"), [("liu2022_case1", 10), ("liu2022_case2", 10), ("liu2022_similarity", 14)])
def test_a_grid_of_run_settings_expands_to_one_run_each(spec, runs):
    """[grid] sweeps RunConfig fields (--class-counts, --mix-similar): every value x seed is one run."""
    from pathlib import Path

    configs = expand(load_spec(Path(__file__).resolve().parents[1] / "slurm" / f"{spec}.toml"))
    assert len(configs) == runs == len({c.run_id for c in configs})
    if spec == "liu2022_case1":
        assert {c.train_counts[0] for c in configs} == {100, 500, 1000, 2500, 5000}
        assert {c.train_counts[9] for c in configs} == {100}
    if spec == "liu2022_similarity":
        # the release's pairing, written out (the committed seed-0 records ran the earlier random pairing)
        assert {c.mix_similar for c in configs if c.seed == 0} >= {"0:9:0.4:0.2:balanced", "0:9:0.2:0.6:balanced"}


def test_grid_keys_are_checked(tmp_path):
    bad = tmp_path / "b.toml"
    bad.write_text('[sweep]\nmethods = ["ce"]\ndatasets = ["synthetic_lt"]\n[grid]\nlearning_rate = [1]\n')
    with pytest.raises(ConfigError, match="unknown keys"):
        load_spec(bad)
    bad.write_text('[sweep]\nmethods = ["ce"]\ndatasets = ["synthetic_lt"]\n[grid]\nmix_similar = "0:9:0.2:0.2"\n')
    with pytest.raises(ConfigError, match="non-empty list"):
        load_spec(bad)

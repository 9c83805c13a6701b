"""Sweeps: expansion, per-hparam seeding, states, and the debug/local launchers (fast, synthetic data)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ltbench.errors import ConfigError
from ltbench.sweep import SweepSpec, expand, load_spec, random_hparams, states, to_launch
from ltbench.sweep.launch import submit

ROOT = Path(__file__).resolve().parents[1]


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


@pytest.mark.parametrize(
    ("spec", "runs"),
    [
        ("liu2022_case1", 10),
        ("liu2022_case2", 10),
        ("liu2022_similarity", 14),
        ("liu2022_table", 24),
        ("liu2022_table_budget", 2),
    ],
)
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
    if spec == "liu2022_table_budget":  # CE as long as a quick-preset SSP run trains its backbone (20 + 20 epochs)
        assert {(c.method, c.epochs, c.preset, c.ssp) for c in configs} == {("ce", 40, (), False)}


def test_grid_keys_are_checked(tmp_path):
    bad = tmp_path / "b.toml"
    bad.write_text('[sweep]\nmethods = ["ce"]\ndatasets = ["synthetic_lt"]\n[grid]\nlearning_rate = [1]\n')
    with pytest.raises(ConfigError, match="unknown keys"):
        load_spec(bad)
    bad.write_text('[sweep]\nmethods = ["ce"]\ndatasets = ["synthetic_lt"]\n[grid]\nmix_similar = "0:9:0.2:0.2"\n')
    with pytest.raises(ConfigError, match="non-empty list"):
        load_spec(bad)


def test_a_sweep_at_precision_auto_finds_its_finished_runs(tmp_path, capsys):
    """A run names the precision that ran in its id ("auto" becomes bf16 or fp32 where it trains), so the sweep
    looked for the "auto" id, never found the finished runs and launched them all again."""
    from ltbench.cli.main import main

    cmd = ["sweep", "--methods", "ce", "--datasets", "synthetic_lt", "--epochs", "1", "--out", str(tmp_path)]
    assert main(cmd) == 0
    [run] = [p.name for p in (tmp_path / "sweep").iterdir() if p.name.startswith("ce-")]
    capsys.readouterr()
    assert main([*cmd, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "pending 0, running 0, incomplete 0, done 1" in out and "would launch" not in out
    assert main(cmd) == 0 and "nothing to launch" in capsys.readouterr().out
    assert [p.name for p in (tmp_path / "sweep").iterdir() if p.name.startswith("ce-")] == [run]


def test_resume_takes_finished_records_of_the_same_code_and_launches_the_rest(tmp_path, monkeypatch, capsys):
    """A sweep finished over two sittings on two machines: the first sitting's records (no checkpoints, as
    results/*/runs keeps them) count as done in a fresh sweep folder when the same code made them; a record of
    other code is refused with the reason and its run launched; a missing folder is a clear error."""
    import shutil

    from ltbench.cli.main import main
    from ltbench.sweep import resume, sweep_status

    cmd = ["sweep", "--methods", "ce", "--datasets", "synthetic_lt", "--seeds", "0,1", "--epochs", "1", "--name", "t"]
    assert main([*cmd, "--out", str(tmp_path / "a")]) == 0
    runs = sorted(p for p in (tmp_path / "a" / "t").iterdir() if p.name.startswith("ce-"))
    assert sweep_status(tmp_path / "a" / "t")["done"] == [p.name for p in runs] and len(runs) == 2
    records = tmp_path / "records"
    for run in runs:  # what keep_records commits: the records, not the checkpoints
        shutil.copytree(run, records / run.name, ignore=shutil.ignore_patterns("*.pt", "*.lock"))
    env = json.loads((records / runs[0].name / "result.json").read_text())["env"]
    made = {k: env[k] for k in resume.CODE_KEYS}
    monkeypatch.setattr(resume, "git_info", lambda: made)  # this checkout = the code that made the records
    other = json.loads((records / runs[1].name / "result.json").read_text())
    other["env"]["commit"] = "0123456789abcdef"
    (records / runs[1].name / "result.json").write_text(json.dumps(other))

    again = [*cmd, "--out", str(tmp_path / "b"), "--resume", str(records)]
    capsys.readouterr()
    assert main([*again, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would resume 1 finished runs" in out and out.count("would launch") == 1
    assert f"not resumed {runs[1].name}: made by 01234567" in out and "would launch ce-synthetic_lt-s1-" in out
    assert not (tmp_path / "b" / "t" / runs[0].name).exists()  # a dry run copies nothing
    assert main(again) == 0
    assert "resumed 1 finished runs" in capsys.readouterr().out
    assert sweep_status(tmp_path / "b" / "t")["done"] == [p.name for p in runs]  # one restored, one run here
    restored = tmp_path / "b" / "t" / runs[0].name
    assert (restored / "predictions.npz").exists() and not list(restored.glob("*.pt"))
    assert json.loads((restored / "result.json").read_text())["env"]["commit"] == made["commit"]
    assert list((tmp_path / "b" / "t" / runs[1].name).glob("*.pt"))  # trained here, not copied
    with pytest.raises(ConfigError, match="not a folder"):
        resume.resume_from_records([], tmp_path / "nowhere")


def _bash(script: str, **env: str) -> str:
    """Run ``script`` in bash from the repository root (results/park.sh is sourced by results/common.sh)."""
    proc = subprocess.run(["bash", "-euc", script], cwd=ROOT, capture_output=True, text=True, env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def test_a_parked_run_resumes_on_another_machine_and_ends_as_an_uninterrupted_one(tmp_path):
    """results/park.sh: a run stopped mid-way on one machine (its run folder then lost) is parked in the results
    folder (checkpoint, config, log; never the lock), put back in a fresh sweep folder by unpark, resumed by the
    same sweep and ends with the metrics of an uninterrupted run; its parked copy is dropped once it is done, and
    unpark never overwrites a local checkpoint."""
    from ltbench.run import execute
    from tests.conftest import interrupt_run

    spec = _spec(methods=["ce"], seeds=[0], run={"epochs": 3, "eval_every": 1, "precision": "fp32", "device": "cpu"})
    [reference] = expand(spec, out=str(tmp_path / "ref"))
    execute(reference, progress=False)
    [first] = expand(spec, out=str(tmp_path / "a"))
    interrupt_run(first, after_epochs=1)
    (first.run_dir / "run.lock").touch()  # what a killed job leaves behind
    results = tmp_path / "results"
    parked = results / "unfinished" / "t" / first.run_id
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    out = _bash(f"source results/park.sh; park {tmp_path / 'a' / 't'} {results} HEAD")
    assert f"parked {first.run_id} (1 epochs logged)" in out
    assert sorted(p.name for p in parked.iterdir()) == ["ckpt.pt", "commit", "config.json", "log.jsonl"]
    assert (parked / "commit").read_text().strip() == head

    [second] = expand(spec, out=str(tmp_path / "b"))  # the next machine: a fresh sweep folder
    out = _bash(f"source results/park.sh; unpark {results} {tmp_path / 'b'}", PIN="0" * 40)  # other code: refused
    assert f"not unparking {first.run_id}: its checkpoint was made by the code of {head}" in out
    assert states([second])["pending"] == [second]
    _bash(f"source results/park.sh; unpark {results} {tmp_path / 'b'}", PIN=head)
    assert states([second])["incomplete"] == [second]
    jobs = submit(to_launch([second]), "debug", tmp_path / ".submitit")
    assert [j.result() for j in jobs] == ["done"]
    done, ref = (json.loads((c.run_dir / "result.json").read_text()) for c in (second, reference))
    assert done["metrics"] == ref["metrics"]
    assert (second.run_dir / "log.jsonl").read_text().count("\n") == 3

    stale = b"an older checkpoint"
    (parked.parent / "other").mkdir()
    for name in ("config.json", "log.jsonl"):
        (parked.parent / "other" / name).write_text("{}\n")
    (parked.parent / "other" / "ckpt.pt").write_bytes(stale)
    (tmp_path / "b" / "t" / "other").mkdir()
    (parked.parent / "other" / "commit").write_text(head)
    (tmp_path / "b" / "t" / "other" / "ckpt.pt").write_bytes(b"newer")
    _bash(f"source results/park.sh; unpark {results} {tmp_path / 'b'}", PIN=head)
    assert (tmp_path / "b" / "t" / "other" / "ckpt.pt").read_bytes() == b"newer"

    _bash(f"source results/park.sh; park {tmp_path / 'b' / 't'} {results} HEAD")  # the finished run's copy: dropped
    assert not parked.exists() and (parked.parent / "other").exists()


@pytest.mark.parametrize("site", [False, True])
def test_every_cluster_preset_builds_a_slurm_executor(tmp_path, monkeypatch, site):
    """Each preset shipped with the package, and each of the dev cluster's file (results/common.sh points
    $LTBENCH_PRESETS there), holds only parameters submitit's SLURM executor accepts; an unknown name is refused
    with the presets on offer."""
    from ltbench.sweep.launch import PRESETS_FILE, load_presets, make_executor

    path = ROOT / "slurm" / "dev-cluster" / "presets.toml" if site else PRESETS_FILE
    monkeypatch.setenv("LTBENCH_PRESETS", str(path))
    names = list(load_presets([path]))
    assert names and ("localhost_2cpu" in names) == site
    for name in names:
        executor = make_executor("slurm", tmp_path, name, None)
        assert executor.cluster == "slurm"
    with pytest.raises(ConfigError, match="unknown cluster preset 'nope'.*localhost"):
        make_executor("slurm", tmp_path, "nope", None)

"""``--from``: a finished run's identical first stages stand in for this run's, and nothing else does."""

from __future__ import annotations

import json

import pytest

from ltbench.errors import ConfigError
from ltbench.records import log_entries
from ltbench.run import execute
from tests.conftest import tiny_config

KW = dict(epochs=2, deterministic=True, hparams={"stage2_epochs": 1, "stage2_batch_size": 64})


def _same(a: dict, b: dict) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@pytest.fixture(scope="module")
def ce_run(tmp_path_factory):
    cfg = tiny_config(tmp_path_factory.mktemp("src"), epochs=2, deterministic=True)
    execute(cfg, progress=False)
    return cfg


@pytest.mark.parametrize("method", ["crt", "lws"])
def test_a_decoupling_method_from_a_ce_run_equals_training_it_whole(ce_run, tmp_path, method):
    whole = execute(tiny_config(tmp_path / "whole", method=method, **KW), progress=False)
    cfg = tiny_config(tmp_path / "from", method=method, from_run=str(ce_run.run_dir), **KW)
    rec = execute(cfg, progress=False)
    assert _same(rec["metrics"], whole["metrics"])  # stage 1 reused, stage 2 trained: bit-identical
    assert rec["reused_from"]["run_id"] == ce_run.run_id and rec["reused_from"]["stages"] == ["features"]
    log = log_entries(cfg.run_dir)
    assert [(e["stage"], e.get("reused_from")) for e in log] == [(0, ce_run.run_id)] * 2 + [(1, None)]
    assert rec["run_id"] == whole["run_id"]  # the same computation: the same run id


def test_tau_norm_from_a_ce_run_trains_nothing(ce_run, tmp_path):
    kw = dict(epochs=2, deterministic=True)
    whole = execute(tiny_config(tmp_path / "whole", method="tau_norm", **kw), progress=False)
    rec = execute(tiny_config(tmp_path / "from", method="tau_norm", from_run=str(ce_run.out), **kw), progress=False)
    assert _same(rec["variants"], whole["variants"]) and rec["reused_from"]["stages"] == ["features"]


@pytest.mark.parametrize(
    "change",
    [dict(seed=1), dict(method="crt", hparams={"lr": 0.05, "stage2_epochs": 1}), dict(precision="bf16")],
    ids=["seed", "stage-1 lr", "precision"],
)
def test_anything_different_is_refused_with_what_was_compared(ce_run, tmp_path, change):
    kw = {**dict(method="crt", epochs=2, deterministic=True), **change}
    with pytest.raises(ConfigError, match="no finished run there has exactly this run's first stages"):
        execute(tiny_config(tmp_path, from_run=str(ce_run.run_dir), **kw), progress=False)
    assert not any(tmp_path.rglob("ckpt.pt"))


def test_a_different_loss_is_refused(tmp_path):
    focal = tiny_config(tmp_path / "focal", method="focal", epochs=2)
    execute(focal, progress=False)
    with pytest.raises(ConfigError, match="focal"):
        execute(tiny_config(tmp_path / "t", method="crt", from_run=str(focal.run_dir), epochs=2), progress=False)


def test_ride_ea_from_a_ride_run_equals_training_it_whole(tmp_path):
    """RIDE-EA's stage 1 is RIDE's: a finished ``ride`` run stands in for it and only the router trains."""
    kw = dict(epochs=2, deterministic=True, hparams={"router_epochs": 1, "router_batch_size": 64})
    ride = tiny_config(tmp_path / "ride", method="ride", epochs=2, deterministic=True)
    execute(ride, progress=False)
    whole = execute(tiny_config(tmp_path / "whole", method="ride_ea", **kw), progress=False)
    cfg = tiny_config(tmp_path / "from", method="ride_ea", from_run=str(ride.run_dir), **kw)
    rec = execute(cfg, progress=False)
    assert _same(rec["metrics"], whole["metrics"]) and rec["run_id"] == whole["run_id"]
    assert rec["reused_from"]["run_id"] == ride.run_id and len(rec["reused_from"]["stages"]) == 1
    with pytest.raises(ConfigError, match="no finished run there has exactly this run's first stages"):
        other = dict(kw, hparams={**kw["hparams"], "lambda_div": 0.3})  # a RIDE hparam differs: refused
        refused = tiny_config(tmp_path / "refused", method="ride_ea", from_run=str(ride.run_dir), **other)
        execute(refused, progress=False)

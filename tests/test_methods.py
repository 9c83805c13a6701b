"""Every registered method, two steps per stage on the synthetic dataset (registry-parametrized)."""

import numpy as np
import pytest
import torch

from ltbench.config import RunConfig
from ltbench.method import DataInfo
from ltbench.metrics import expected_calibration_error
from ltbench.records import log_entries
from ltbench.registry import METHODS
from ltbench.run import execute
from ltbench.train.trainer import load_checkpoint


def _two_step_config(out, method: str, **kw) -> RunConfig:
    # synthetic_lt: ~200 images; batch 100 with 1 epoch per stage gives 2 steps per stage
    kw.setdefault("epochs", 1)
    return RunConfig(
        method=method, dataset="synthetic_lt", out=str(out), eval_every=0, precision="fp32", device="cpu", **kw
    )


def _fast_overrides(method: str) -> dict:
    specs = METHODS.get(method).hparams
    sets = {k: 1 for k, s in specs.items() if s.epoch and k.endswith("epochs") and k != "epochs"}
    for key in ("batch_size", "stage2_batch_size"):
        if key in specs:
            sets[key] = 100
    return sets


@pytest.mark.parametrize("method", METHODS.names())
def test_every_method_runs_every_stage(method, tmp_path):
    cfg = _two_step_config(tmp_path, method, hparams=_fast_overrides(method))
    rec = execute(cfg, progress=False)
    assert rec["status"] == "done"  # a non-finite loss would have stopped the run as failed
    # the reported accuracies are those of the stored test predictions (counted here independently)
    m = rec["metrics"]
    with np.load(cfg.run_dir / "predictions.npz") as z:
        preds, labels, logits = z["preds"], z["labels"], z["logits"]
    assert m["overall"] == pytest.approx(float((preds == labels).mean()))
    # the stored logits are the ones predicted from (argmax) and calibrated (ECE of their softmax): for the
    # cosine-head methods the scaled s·cos their loss trains, without its margin (README, Fidelity)
    assert (logits.argmax(axis=1) == preds).all()
    probs = torch.from_numpy(logits).float().softmax(dim=1).numpy()
    assert m["ece"] == pytest.approx(expected_calibration_error(probs, labels), abs=1e-6)
    per_class = [float((preds[labels == c] == c).mean()) for c in range(rec["data"]["num_classes"])]
    assert m["per_class"] == pytest.approx(per_class)
    log = log_entries(cfg.run_dir)
    stages = METHODS.get(method)(rec["resolved"]["hp"], _info(rec)).stages()
    assert [e["stage_name"] for e in log] == [s.name for s in stages for _ in range(s.epochs)]
    # the checkpoint (model, optimizer, method and context state) holds only what weights_only accepts
    blob = load_checkpoint(cfg.run_dir / "ckpt.pt")
    assert set(blob) >= {"state", "model", "optimizer", "method", "ctx"}


def _info(rec):
    d = rec["data"]
    return DataInfo(
        num_classes=d["num_classes"], class_counts=d["class_counts"], image_size=d["image_size"], dataset=d["name"]
    )


def test_ssp_stage_precedes_any_method(tmp_path):
    cfg = _two_step_config(tmp_path, "ce_drw", ssp=True, hparams={"ssp_epochs": 1, "batch_size": 100})
    rec = execute(cfg, progress=False)
    log = log_entries(cfg.run_dir)
    assert [e["stage_name"] for e in log] == ["ssp", "train"]
    assert rec["status"] == "done"


def test_ssp_follows_the_released_rotation_pretraining():
    """imbalanced-semi-self pretrain_rot.py: one balanced random rotation per image, lr·e/5 warm-up, x0.01 after
    epoch 160 and no other drop, wd 2e-4; ``ssp_rotations=all`` / ``ssp_schedule=cosine`` keep the alternative."""
    from ltbench.config import RunConfig
    from ltbench.methods.ssp import one_rotation_each, with_ssp
    from ltbench.resolve import resolve
    from ltbench.train.optim import lr_factor

    cls = with_ssp(METHODS.get("ce"))
    hp = resolve(RunConfig(method="ce", dataset="cifar10_lt", ssp=True), cls).hp
    stage = cls(
        hp, _info({"data": {"class_counts": [5, 1], "num_classes": 2, "image_size": 32, "name": "x"}})
    ).stages()[0]
    assert (stage.name, stage.weight_decay, stage.schedule) == ("ssp", 2e-4, "step")
    factors = [lr_factor(stage, e - 1, 0, 10) for e in (1, 5, 160, 161, 200)]  # 1-based epochs
    assert factors == pytest.approx([0.2, 1.0, 1.0, 0.01, 0.01])
    x = torch.arange(8 * 3 * 4 * 4, dtype=torch.float).view(8, 3, 4, 4)
    torch.manual_seed(0)
    xs, ys = one_rotation_each(x)
    # labels drawn without replacement from [0, 1, 2, 3] * 3: each at most 3 times among the 8
    assert xs.shape == x.shape and max(torch.bincount(ys, minlength=4).tolist()) <= 3
    for i in range(8):
        assert torch.equal(xs[i], torch.rot90(x[i], int(ys[i]), dims=(1, 2)))


def test_rs_and_rw_offer_the_releases_effective_number_forms():
    """docs/methods.md §13: ``ce_rs`` draws a uniform class by default, ``sampling=effective_number`` draws each image
    ∝ (1 − β)/(1 − β^{n_c}), β = 0.9999 (the releases' ImbalancedDatasetSampler); ``ce_rw`` weights 1/n_c by
    default, ``weighting=effective_number`` as ``cb_ce``. Class weights n_c(1 − β)/(1 − β^{n_c}) by hand."""
    import math

    from ltbench.data.loader import EFFECTIVE_NUMBER_BETA, effective_number_class_weights, epoch_order
    from ltbench.losses import class_balanced_weights, inverse_frequency_weights

    beta = EFFECTIVE_NUMBER_BETA
    assert beta == 0.9999
    by_hand = [n * (1 - beta) / (1 - beta**n) for n in (5000, 50)]  # 1.27071, 1.00245: 1.27x, not 100x
    assert by_hand[0] / by_hand[1] == pytest.approx(1.2676, abs=1e-4)
    weights = effective_number_class_weights(torch.tensor([5000, 50, 0]), beta)
    assert weights.tolist() == pytest.approx([*by_hand, 0.0], rel=1e-9)
    labels = torch.tensor([0] * 5000 + [1] * 50 + [2] * 0)
    order = epoch_order("effective_number", labels, 3, torch.Generator().manual_seed(0), length=200_000)
    freq = torch.bincount(labels[order], minlength=3).double() / len(order)
    expected = [w / sum(by_hand) for w in by_hand]
    assert freq.tolist() == pytest.approx([*expected, 0.0], abs=0.005)
    assert math.isclose(expected[0], 0.5590, abs_tol=1e-4)  # the class-uniform default would give 0.5 / 0.5

    info = DataInfo(num_classes=2, class_counts=[5000, 50], image_size=32, dataset="x")
    rs, rw = METHODS.get("ce_rs"), METHODS.get("ce_rw")
    hp = {k: s.default for k, s in rs.hparams.items()}
    assert rs(hp, info).stages()[0].sampler == "class_balanced"
    assert rs({**hp, "sampling": "effective_number"}, info).stages()[0].sampler == "effective_number"
    hp = {k: s.default for k, s in rw.hparams.items()}
    assert torch.allclose(rw(hp, info).criterion.weight, inverse_frequency_weights([5000, 50]))
    release = rw({**hp, "weighting": "effective_number"}, info).criterion.weight
    assert torch.allclose(release, class_balanced_weights([5000, 50], 0.9999))

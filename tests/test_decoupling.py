"""cRT / LWS stage 2 as classifier-balancing runs it: class-aware sampling, per-epoch cosine stepped first,
the frozen feature model's BatchNorm in train mode, LWS for 5 epochs (config/ImageNet_LT/cls_{crt,lws}.yaml)."""

from __future__ import annotations

import math

import pytest
import torch

from ltbench.config import RunConfig
from ltbench.data.loader import class_aware_order
from ltbench.method import Stage
from ltbench.registry import METHODS
from ltbench.resolve import resolve
from ltbench.run import execute
from ltbench.train.optim import lr_factor
from tests.conftest import tiny_config


def test_class_aware_epochs_visit_classes_round_robin_four_images_at_a_time():
    counts = [10, 3, 1]
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    order = class_aware_order(labels, 3, torch.Generator().manual_seed(0))
    assert len(order) == max(counts) * len(counts)  # ClassAwareSampler.num_samples
    visits = labels[order][: len(order) // 4 * 4].view(-1, 4)  # the epoch ends inside its last visit
    assert all(len(set(v.tolist())) == 1 for v in visits)  # 4 images of one class per visit
    classes = [int(v[0]) for v in visits]
    for r in range(len(classes) // 3):  # every round visits each class once (shuffled within the round)
        assert sorted(classes[3 * r : 3 * r + 3]) == [0, 1, 2]
    for c, n in enumerate(counts):  # each class cycles through all its images before repeating one
        seq = order[labels[order] == c].tolist()
        for start in range(0, len(seq) - n + 1, n):
            assert sorted(seq[start : start + n]) == sorted((labels == c).nonzero().flatten().tolist())


def test_cosine_stepped_at_the_start_of_each_epoch():
    stage = Stage(name="c", epochs=10, lr=0.2, batch_size=512, schedule="cosine_epoch")
    factors = [lr_factor(stage, e, it, 7) for e in range(10) for it in (0, 6)]
    expected = [0.5 * (1 + math.cos(math.pi * (e + 1) / 10)) for e in range(10) for _ in (0, 6)]
    assert factors == pytest.approx(expected) and factors[-1] == pytest.approx(0.0)  # constant within an epoch


def test_official_stage_2_defaults():
    for name, epochs in (("crt", 10), ("lws", 5)):
        cls = METHODS.get(name)
        hp = resolve(RunConfig(method=name, dataset="cifar10_lt"), cls).hp
        from ltbench.method import DataInfo

        s2 = cls(hp, DataInfo(10, [5000, 50], 32, "cifar10_lt")).stages()[1]
        assert (s2.epochs, s2.lr, s2.batch_size, s2.weight_decay) == (epochs, 0.2, 512, 5e-4)
        assert (s2.sampler, s2.schedule, s2.bn_train, s2.trainable) == ("class_aware", "cosine_epoch", True, "head")


def test_bn_statistics_move_while_the_weights_stay_frozen(tmp_path):
    """BatchNorm running statistics are re-estimated on class-balanced batches (train mode); the guard still
    checks every backbone *weight* bit-identical; ``stage2_bn=eval`` keeps the statistics too."""
    hp = {"stage2_epochs": 1, "stage2_batch_size": 64}
    runs = {}
    for bn in ("train", "eval"):
        cfg = tiny_config(tmp_path / bn, method="crt", epochs=1, hparams={**hp, "stage2_bn": bn})
        execute(cfg, progress=False)
        runs[bn] = torch.load(cfg.run_dir / "ckpt.pt", weights_only=True)["model"]
    stage1 = tiny_config(tmp_path / "ce", method="ce", epochs=1)
    execute(stage1, progress=False)
    ce = torch.load(stage1.run_dir / "ckpt.pt", weights_only=True)["model"]
    weights = [k for k in ce if k.startswith("backbone.") and "running" not in k and "num_batches" not in k]
    stats = [k for k in ce if k.startswith("backbone.") and "running_mean" in k]
    for bn, state in runs.items():
        assert all(torch.equal(state[k], ce[k]) for k in weights), bn
    assert not all(torch.equal(runs["train"][k], ce[k]) for k in stats)
    assert all(torch.equal(runs["eval"][k], ce[k]) for k in stats)

"""RIDE-EA router (docs/methods.md §5 stage 2) and RIDE distillation from a stored teacher run."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ltbench.errors import ConfigError
from ltbench.method import DataInfo
from ltbench.methods.ride.ride import RIDE
from ltbench.methods.ride.ride_ea import RIDEEA
from ltbench.methods.ride.router import ExpertRouter, route, router_targets, running_ensembles
from ltbench.records import log_entries
from ltbench.restore import load_finished
from ltbench.run import execute
from tests.conftest import tiny_config

# 3 experts, 2 images, 3 classes; true labels y = [0, 2]
LOGITS = torch.tensor(
    [
        [[0.0, 3.0, 0.0], [0.0, 0.0, 5.0]],  # expert 0: image 0 wrong (says 1), image 1 right
        [[5.0, 0.0, 0.0], [0.0, 1.0, 0.0]],  # expert 1
        [[0.0, 0.0, 9.0], [0.0, 9.0, 0.0]],  # expert 2
    ]
)
Y = torch.tensor([0, 2])


def test_running_ensembles_and_targets_by_hand():
    run = running_ensembles(LOGITS)
    torch.testing.assert_close(run[1, 0], torch.tensor([2.5, 1.5, 0.0]))
    torch.testing.assert_close(run[2, 1], torch.tensor([0.0, 10.0 / 3, 5.0 / 3]))
    # image 0: ensembles {0}: class 1 (wrong), {0,1}: class 0 (right), {0,1,2}: 5/3, 1, 3 -> class 2 (wrong)
    #   router 0 target 1 (wrong now, {0,1} right); router 1 target 0 ({0,1} already right)
    # image 1: {0}: right; {0,1}: 0, 0.5, 2.5 -> right; {0,1,2}: 0, 10/3, 5/3 -> wrong: targets 0, 0
    torch.testing.assert_close(router_targets(LOGITS, Y), torch.tensor([[1.0, 0.0], [0.0, 0.0]]))


def test_route_stops_at_the_first_no():
    # image 0: router 0 yes, router 1 yes -> 3 experts; image 1: router 0 no (router 1 ignored) -> 1 expert
    router_logits = torch.tensor([[2.0, 1.0], [-1.0, 5.0]])
    routing = route(LOGITS, router_logits)
    assert routing.experts_used.tolist() == [3, 1]
    torch.testing.assert_close(routing.logits[0], LOGITS[:, 0].mean(0))
    torch.testing.assert_close(routing.logits[1], LOGITS[0, 1])
    # one yes then no: experts 0 and 1
    routing = route(LOGITS, torch.tensor([[2.0, -3.0], [2.0, -3.0]]))
    assert routing.experts_used.tolist() == [2, 2]
    torch.testing.assert_close(routing.logits, LOGITS[:2].mean(0))


def test_router_shapes_and_top_k_capped_at_classes():
    router = ExpertRouter(num_experts=4, feature_dim=8, num_classes=5, top_k=30)
    assert router.top_k == 5 and len(router.hidden) == 3
    assert router.out.in_features == 16 + 5  # 16-d feature map + top-K logits, shared output layer
    out = router(torch.randn(4, 6, 5), torch.randn(4, 6, 8))
    assert out.shape == (6, 3)
    with pytest.raises(ValueError, match="at least 2 experts"):
        ExpertRouter(1, 8, 5)


def test_router_stage_leaves_experts_bit_identical(out_dir, monkeypatch):
    """Snapshot every tensor when the router stage starts; after the run all but the router's are equal."""
    snapshot = {}
    original = RIDEEA.on_stage_start

    def spy(self, stage, model, ctx):
        if stage.name == "router":
            snapshot.update({k: v.clone() for k, v in model.state_dict().items()})
        original(self, stage, model, ctx)

    monkeypatch.setattr(RIDEEA, "on_stage_start", spy)
    cfg = tiny_config(out_dir, "ride_ea", epochs=1, hparams={"batch_size": 100, "router_batch_size": 64})
    rec = execute(cfg, progress=False)
    assert rec["status"] == "done" and snapshot
    final = torch.load(cfg.run_dir / "ckpt.pt", weights_only=False)["model"]
    router_keys = [k for k in final if k.startswith("router.")]
    assert router_keys and set(final) == set(snapshot)
    for key, value in final.items():
        if key.startswith("router."):
            continue
        assert torch.equal(value, snapshot[key]), key  # weights and BN running statistics alike
    assert any(not torch.equal(final[k], snapshot[k]) for k in router_keys), "the router did not learn"
    assert 1.0 <= rec["metrics"]["experts_used"] <= 3.0
    assert "all_experts" in rec["variants"]
    log = log_entries(cfg.run_dir)
    assert [e["stage_name"] for e in log] == ["train", "router"]


def _info(dataset="synthetic_lt", counts=(50, 20, 8, 3)):
    return DataInfo(num_classes=len(counts), class_counts=list(counts), image_size=32, dataset=dataset)


def test_distill_loss_matches_formula():
    student = RIDE({**{k: v.default for k, v in RIDE.hparams.items()}, "distill_temperature": 2.0}, _info())
    teacher_logits = torch.tensor([[1.0, 2.0, 0.0, -1.0], [0.5, 0.0, 0.0, 3.0]])

    class Fixed:
        def predict(self, model, x):
            return teacher_logits

    student.teacher = (Fixed(), None)
    ensemble = torch.tensor([[0.0, 1.0, 1.0, 0.0], [2.0, 0.0, -1.0, 0.0]])
    p = F.softmax(teacher_logits / 2, -1)
    q = F.softmax(ensemble / 2, -1)
    expected = 4.0 * (p * (p.log() - q.log())).sum(-1).mean()  # T² · KL(teacher ‖ student), batch mean
    torch.testing.assert_close(student.distill_loss(ensemble, torch.zeros(2)), expected)
    assert float(student.distill_loss(teacher_logits, torch.zeros(2))) == pytest.approx(0.0, abs=1e-6)


def test_distillation_from_a_finished_run_end_to_end(out_dir):
    teacher_cfg = tiny_config(out_dir, "ride", epochs=1, hparams={"batch_size": 100, "num_experts": 2})
    execute(teacher_cfg, progress=False)
    student = tiny_config(out_dir, "ride", epochs=1, hparams={"batch_size": 100, "teacher": str(teacher_cfg.run_dir)})
    rec = execute(student, progress=False)
    assert rec["status"] == "done"
    log = log_entries(student.run_dir)
    assert all(e["distill"] > 0 for e in log)
    # the rebuilt teacher reproduces the stored run's weights exactly
    _, model = load_finished(teacher_cfg.run_dir, _info(counts=rec["data"]["class_counts"]), torch.device("cpu"))
    stored = torch.load(teacher_cfg.run_dir / "ckpt.pt", weights_only=False)["model"]
    assert all(torch.equal(v, stored[k]) for k, v in model.state_dict().items())


def test_teacher_errors_name_the_problem(out_dir, tmp_path):
    with pytest.raises(ConfigError, match="not a finished run"):
        load_finished(tmp_path / "nowhere", _info(), torch.device("cpu"))
    cfg = tiny_config(out_dir, "ce", epochs=1)
    rec = execute(cfg, progress=False)
    with pytest.raises(ConfigError, match="same training set"):
        load_finished(cfg.run_dir, _info(dataset="cifar10_lt", counts=rec["data"]["class_counts"]), torch.device("cpu"))

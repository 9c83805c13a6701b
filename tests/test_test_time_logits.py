"""Issue #25: the probabilities evaluation reports are the softmax of the logits each method's training loss sees.

For every registered method (and the options that change its loss or head) one deterministic batch goes through
the method's own training step, with ``F.cross_entropy`` / ``F.log_softmax`` spied on so the test sees the logits
the loss receives, and through evaluation (``evaluate_logits``: metrics, ECE, stored logits; ``load_run``, ``export``
and RIDE's teacher call the same ``Method.predict``). The loss's train-only adjustment (LDAM's and KPS's margins,
the logit-adjusted loss's +τ·log π) is removed with formulas written here from docs/methods.md, not taken from
the method's code, and the two softmaxes must agree. Methods whose paper predicts differently from its training
logits are in ``TEST_TIME_RULES`` with the rule that is checked instead; ``SETUPS`` makes a training step comparable
(BBN's α, DisA's mixup). A method named nowhere is checked with no adjustment at all: a new method whose loss
adjusts its logits fails here until it declares the adjustment and its ``predict``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ltbench.config import RunConfig
from ltbench.evaluate import evaluate_logits
from ltbench.method import DataInfo
from ltbench.models.backbones import build_backbone
from ltbench.registry import METHODS
from ltbench.run import load_data, prepare
from ltbench.train.context import Context

PER_CLASS = 2  # images of each class in the batch (synthetic_lt: 10 classes, so B = 20)


# ------------------------------------------------------------------------------ train-only adjustments
# (logits the loss received, their targets, hparams, class counts) -> the margin-free logits
Adjustment = Callable[[torch.Tensor, torch.Tensor, dict, list[int]], torch.Tensor]


def ldam_margins(hp: dict, counts: list[int]) -> torch.Tensor:
    """s·Δ_c, Δ_c = Δ_max·(n_min/n_c)^{1/4} (docs/methods.md §3; RIDE §5: s·Δ_y off logits that contain s)."""
    n = torch.tensor(counts, dtype=torch.float64)
    return hp["scale"] * hp["max_margin"] * (n.min() / n) ** 0.25


def kps_margins(hp: dict, counts: list[int], max_margin: float = 0.5) -> torch.Tensor:
    """s·m_c of KPS (docs/methods.md §13: m_c = C_m − log n_c, inside s(·)), in the units of the official code
    (Keke921/KPSLoss losses.py): rescaled so the rarest class gets 0.5, C_m = log(50·n_max)."""
    logn = torch.tensor(counts, dtype=torch.float64).log()
    c_m = np.log(50.0) + logn.max()
    return hp["scale"] * max_margin * (c_m - logn) / (c_m - logn.min())


def log_prior(counts: list[int]) -> torch.Tensor:
    """log π_c = log(n_c / N) (Menon et al. 2021; docs/methods.md §13)."""
    n = torch.tensor(counts, dtype=torch.float64)
    return (n / n.sum()).log()


def plus_target(z: torch.Tensor, y: torch.Tensor, amount: torch.Tensor) -> torch.Tensor:
    """``z`` with ``amount[y_i]`` added back to the target logit of every row (undoing a target-only margin)."""
    out = z.double().clone()
    out[torch.arange(len(y)), y] += amount[y]
    return out


def without_ldam_margin(z, y, hp, counts):
    return plus_target(z, y, ldam_margins(hp, counts))


def without_log_prior(tau: float):
    return lambda z, y, hp, counts: z.double() - tau * log_prior(counts)


def without_kps_margin(z, y, hp, counts):
    return plus_target(z, y, kps_margins(hp, counts))


def contrastive_stage2(hp: dict) -> Adjustment | None:
    """KCL/TSC/SBCL stage 2: LDAM on the cosine head (CIFAR) or plain CE on a linear head (ImageNet-LT, §6)."""
    return without_ldam_margin if hp["stage2"] == "ldam" else None


def logit_adjusted(hp: dict) -> Adjustment | None:
    """LA / Balanced Softmax loss form: CE on z + τ·log π (§13); the post-hoc form trains plain CE."""
    return without_log_prior(hp["tau"]) if hp["form"] == "loss" else None


# name -> how the logits its loss receives differ from the margin-free ones, given the hparams (None: not at all)
TRAIN_ONLY: dict[str, Callable[[dict], Adjustment | None]] = {
    "ldam": lambda hp: without_ldam_margin,
    "ldam_drw": lambda hp: without_ldam_margin,
    "ride": lambda hp: without_ldam_margin,  # per expert
    "ride_ea": lambda hp: without_ldam_margin,
    "kps": lambda hp: without_kps_margin,
    "kcl": contrastive_stage2,
    "tsc": contrastive_stage2,
    "sbcl": contrastive_stage2,
    "la": logit_adjusted,
    "balanced_softmax": logit_adjusted,
    # BALMS base loss on CIFAR-100-LT (§14.3): Balanced Softmax, τ = 1
    "otmix": lambda hp: without_log_prior(1.0) if hp["base_loss"] == "balanced_softmax" else None,
}


# ------------------------------------------------------------------------------ setups and test-time rules
def alpha_half(method, monkeypatch) -> None:
    monkeypatch.setattr("ltbench.methods.bbn.cumulative_alpha", lambda epoch, epochs: 0.5)


def no_mixup(method, monkeypatch) -> None:
    method.draws.redraw(lam=np.ones(4))


# name -> (why, what makes one training step comparable with evaluation); the batch's pair is the batch itself
SETUPS = {
    "bbn": ("inference is the training formula at α = ½ with both branches on the same image (§16.3)", alpha_half),
    "disa": ("every training batch is mixed up (§15.1): λ = 1 makes the mixed batch the batch itself", no_mixup),
}


def assert_same_probs(evaluated: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(
        evaluated.double().softmax(1), expected.double().softmax(1), rtol=0, atol=1e-5, check_device=False
    )


def rule_single(run, margin_free: list[torch.Tensor]) -> None:
    """Default: every softmax loss of the step saw the same margin-free logits, and evaluation's are them."""
    for z in margin_free[1:]:  # e.g. BBN's and DisA's two CE terms on one set of logits
        torch.testing.assert_close(z, margin_free[0])
    assert_same_probs(run.evaluated(), margin_free[0])


def rule_la(run, margin_free) -> None:
    """Post-hoc logit adjustment (Menon et al. 2021, §13): trained as CE, predicted with z − τ·log π."""
    if run.method.hp["form"] != "posthoc":
        return rule_single(run, margin_free)
    assert len(margin_free) == 1
    assert_same_probs(run.evaluated(), margin_free[0] - run.method.hp["tau"] * log_prior(run.counts))


def rule_tau_norm(run, margin_free) -> None:
    """τ-norm (Kang et al. 2020, §4): trained as CE on W f + b; predicted with f·W_c/‖W_c‖^τ, no bias."""
    model, tau = run.model, run.method.hp["tau"]
    with torch.no_grad():
        feats = model.backbone(run.x).double()
        w, b = model.head.weight.double(), model.head.bias.double()
    torch.testing.assert_close(feats @ w.T + b, margin_free[0], rtol=1e-5, atol=1e-5)  # the trained head: W, b
    assert_same_probs(run.evaluated(), feats @ (w / w.norm(dim=1, keepdim=True) ** tau).T)


def rule_ride(run, margin_free) -> None:
    """RIDE (§5): each expert's LDAM loss sees its own logits; the prediction is their mean over the experts."""
    assert len(margin_free) == run.method.hp["num_experts"]
    assert_same_probs(run.evaluated(), torch.stack(margin_free).mean(0))


def rule_ride_ea(run, margin_free) -> None:
    """RIDE-EA (§5, stage 2): image b averages experts 0..n_b−1, n_b = 1 + the leading routers saying "go on";
    checked with the router forced to stop at once (expert 0 alone) and to go on (all experts, = RIDE)."""
    router, experts = run.model.router.out, run.method.hp["num_experts"]
    for bias, used in ((-20.0, 1), (20.0, experts)):
        with torch.no_grad():
            router.weight.zero_()
            router.bias.fill_(bias)
        stats: dict = {}
        assert_same_probs(run.evaluated(stats), torch.stack(margin_free[:used]).mean(0))
        assert stats["experts_used"] == used


# name -> the paper's test-time rule, checked instead of equality (the reason in each docstring). Every other method
# predicts with its margin-free training logits (rule_single), the decoupling cRT and LWS included: their stage 2
# trains the head evaluation uses (a fresh linear head; W·f + b times the learned per-class scales).
TEST_TIME_RULES = {"la": rule_la, "tau_norm": rule_tau_norm, "ride": rule_ride, "ride_ea": rule_ride_ea}


# ------------------------------------------------------------------------------ the run under test
class Built:
    """A method and its model after all stages' structural changes, weights perturbed, on one batch."""

    def __init__(self, name: str, overrides: dict) -> None:
        cfg = RunConfig(method=name, dataset="synthetic_lt", device="cpu", precision="fp32", hparams=overrides)
        cls, resolved = prepare(cfg)
        data = load_data(cfg)
        self.counts = list(data.class_counts)
        info = DataInfo(data.num_classes, self.counts, data.image_size, data.name, data.train_y)
        self.method = cls(dict(resolved.hp), info)
        torch.manual_seed(0)
        backbone = build_backbone(resolved.backbone, data.image_size)
        model = self.method.build_model(backbone, data.num_classes, self.counts)
        for stage in self.method.stages():
            self.method.adapt_model(model, stage)
        with torch.no_grad():  # off the initial values (LWS scales of 1, zero biases) a predict could ignore
            for p in model.parameters():
                p.add_(0.05 * torch.randn_like(p))
        self.ctx = Context(data, torch.device("cpu"), "fp32", channels_last=False)
        self.model = calibrated(model, self.ctx)
        index = torch.cat([torch.nonzero(data.train_y == c).flatten()[:PER_CLASS] for c in range(data.num_classes)])
        self.images, self.y, self.index = data.train_x[index], data.train_y[index], index
        self.x = next(iter(self.ctx.eval_batches(self.images)))  # evaluation's own normalised batch

    def evaluated(self, stats: dict | None = None) -> torch.Tensor:
        """The logits evaluation reports for the batch (the "default" prediction, as without validation data)."""
        return evaluate_logits(self.method, self.model, self.ctx, self.images, stats)["default"]

    def batch(self) -> dict:
        one = {"x": self.x, "y": self.y, "index": self.index}
        return {**one, "pair": dict(one)}


@torch.no_grad()
def calibrated(model: torch.nn.Module, ctx: Context) -> torch.nn.Module:
    """The model in eval mode with BatchNorm statistics of the training images: logits of a trained network's
    size, not the 1e6 of perturbed weights on initial statistics, whose softmax is one-hot for any head. Eval mode
    makes the training step and evaluation compute one function (no batch statistics)."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the passes
    model.train()
    for x in ctx.eval_batches(ctx.train_x):
        model(x)
    return model.eval()


def loss_inputs(run: Built) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """(logits, targets) of the softmax losses in the last stage that has any, from one training step at that
    stage's last epoch (DRW and RIDE's temperatures on, OTmix past its mixing epochs): the cross-entropy calls,
    or the log-softmax calls of a loss built on it (focal). RIDE-EA's last stage trains a router (BCE), so its
    classification stage is the first."""
    calls: list[tuple[str, torch.Tensor, torch.Tensor | None]] = []
    cross_entropy, log_softmax = F.cross_entropy, F.log_softmax

    def spy_ce(input, target, *args, **kwargs):
        calls.append(("ce", input.detach().double().clone(), target))
        return cross_entropy(input, target, *args, **kwargs)

    def spy_log_softmax(input, *args, **kwargs):
        calls.append(("log_softmax", input.detach().double().clone(), None))
        return log_softmax(input, *args, **kwargs)

    method, model, name = run.method, run.model, run.method.name
    for stage in reversed(method.stages()):
        epoch = stage.epochs - 1
        method.on_stage_start(stage, model, run.ctx)
        method.on_epoch_start(stage, epoch, model, run.ctx)
        with pytest.MonkeyPatch.context() as mp, torch.no_grad():
            if name in SETUPS:
                SETUPS[name][1](method, mp)
            mp.setattr(F, "cross_entropy", spy_ce)
            mp.setattr(F, "log_softmax", spy_log_softmax)
            calls.clear()
            method.training_step(model, run.batch(), stage, epoch)
        found = [c for c in calls if c[0] == "ce"] or [c for c in calls if c[0] == "log_softmax"]
        if found:
            return [(z, y) for _, z, y in found]
    pytest.fail(f"no stage of {name} trains a softmax loss")


CASES = [pytest.param(name, {}, id=name) for name in METHODS.names()] + [
    pytest.param("la", {"form": "posthoc"}, id="la-posthoc"),
    pytest.param("otmix", {"base_loss": "balanced_softmax"}, id="otmix-balanced_softmax"),
    pytest.param("otmix", {"base_loss": "ce"}, id="otmix-ce"),
    pytest.param("kcl", {"stage2": "ce_cb"}, id="kcl-ce_cb"),
    pytest.param("disa", {"variant": "code"}, id="disa-code"),
    pytest.param("disa", {"variant": "fixed_etf_head"}, id="disa-fixed_etf_head"),
    pytest.param("disa", {"neck_dim": 16}, id="disa-neck"),
    pytest.param("bns_ipdpp", {"head_init": "random"}, id="bns_ipdpp-random_head"),
]


@pytest.mark.parametrize(("name", "overrides"), CASES)
def test_evaluated_probabilities_are_the_trained_softmax(name, overrides):
    run = Built(name, overrides)
    calls = loss_inputs(run)
    num_classes = len(run.counts)
    adjust = TRAIN_ONLY[name](run.method.hp) if name in TRAIN_ONLY else None
    margin_free = []
    for z, y in calls:
        assert z.shape == (len(run.y), num_classes)  # class logits of the batch, one row per image
        margin_free.append(z if adjust is None else adjust(z, y, run.method.hp, run.counts))
    TEST_TIME_RULES.get(name, rule_single)(run, margin_free)


def test_every_named_method_is_registered():
    """No stale entries: a renamed method must not keep a rule that silently stops applying."""
    assert set(SETUPS) | set(TEST_TIME_RULES) | set(TRAIN_ONLY) <= set(METHODS.names())

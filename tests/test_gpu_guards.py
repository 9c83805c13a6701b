"""Guards for the GPU path that run without a GPU (issue "The GPU path"):

* host synchronisations in the step loop (batch production + ``training_step``) are found on the CPU by
  :class:`ltbench.bench.syncs.SyncAudit`; every method must have none beyond its declared ``step_syncs``;
* device placement: every structural change a stage makes (a fresh head, LWS scales, RIDE-EA's router) and
  every loss buffer must land on the model's device. A second device is simulated with ``meta``;
* a checkpoint written on a GPU (tensors tagged ``cuda:0``) resumes exactly on the CPU: checkpoints load to
  the CPU and ``load_state_dict`` places tensors (RNG states must be CPU byte tensors), whatever the model's device;
* --compile compiles the module that runs (RIDE's expert trunk) and its report counts this run's recompiles.
"""

from __future__ import annotations

import collections
import json
import re

import pytest
import torch
import torch.nn.functional as F

import ltbench.data.loader as loader
from ltbench.bench.syncs import SyncAudit
from ltbench.method import DataInfo
from ltbench.models.backbones import build_backbone
from ltbench.registry import METHODS
from ltbench.resolve import resolve
from ltbench.run import execute
from tests.conftest import tiny_config
from tests.test_methods import _fast_overrides, _two_step_config


def _audited_run(method: str, tmp_path, hparams: dict, **run) -> SyncAudit:
    """Two epochs per stage; the audit watches the batch pipeline and ``training_step`` from each stage's second
    epoch on, so one-time set-up (a constant copied to the device once, a fresh head) does not count: only what
    repeats every step does."""
    import ltbench.train.trainer as trainer_mod

    cls = METHODS.get(method)
    audit, watch = SyncAudit(cuda=run.get("device") == "cuda"), {"epoch": 0}
    audit.active = False
    step, iterate, run_epoch = cls.training_step, loader.DeviceBatches.iterate, trainer_mod.Trainer._run_epoch

    def audited(fn, *a, **k):
        audit.active = watch["epoch"] >= 1
        try:
            return fn(*a, **k)
        finally:
            audit.active = False

    def audited_iterate(self, start=0):  # the batch pipeline: gather, augmentation, normalisation
        it = iterate(self, start)
        while True:
            try:
                batch = audited(next, it)
            except StopIteration:
                return
            yield batch

    def tracked_epoch(self, idx, stage, epoch, state):
        watch["epoch"] = epoch
        return run_epoch(self, idx, stage, epoch, state)

    cls.training_step = lambda self, *a, **k: audited(step, self, *a, **k)
    loader.DeviceBatches.iterate, trainer_mod.Trainer._run_epoch = audited_iterate, tracked_epoch
    try:
        with audit:
            execute(_two_step_config(tmp_path, method, epochs=2, hparams=hparams, **run), progress=False)
    finally:
        cls.training_step, loader.DeviceBatches.iterate, trainer_mod.Trainer._run_epoch = step, iterate, run_epoch
    return audit


def audit_method(method: str, tmp_path, extra_hp: dict | None = None, **run) -> SyncAudit:
    """Run ``method`` for two short epochs per stage under the audit (``run``: RunConfig fields, e.g. cuda;
    ``extra_hp``: hparams on top) and fail on any host sync outside the method's declared ``step_syncs``."""
    hp = {k: 2 if k.endswith("epochs") else v for k, v in _fast_overrides(method).items()}
    if method == "tsc":
        hp["kcl_epochs"] = 0  # reach the target phase in the one short epoch
    hp.update(extra_hp or {})
    if method == "otmix":  # mix every batch of the audited epoch, in OT mode (the Sinkhorn pairing)
        hp.update(mix_after=0, mix_before_end=0, ot_power=0.0, mix_prob=1.0)
    audit = _audited_run(method, tmp_path, hp, **run)
    allowed = METHODS.get(method).step_syncs
    unexpected = {k: n for k, n in audit.counts.items() if re.sub(r".*\((\w+)\)$", r"\1", k[1]) not in allowed}
    assert not unexpected, f"host syncs in {method}'s step loop (kind, site): {unexpected}"
    if allowed:
        assert audit.counts, f"{method} declares step_syncs that never happen: {allowed}"
    return audit


@pytest.mark.parametrize("method", METHODS.names())
def test_the_step_loop_has_no_host_sync(method, tmp_path):
    audit_method(method, tmp_path)


@pytest.mark.parametrize("variant", ["paper", "code_imagenet"])
def test_tsc_matching_variants_sync_only_for_the_assignment(variant, tmp_path):
    """The default TSC variant (code_cifar) has no matching; the two that match solve the Hungarian assignment on
    the host, the one sync TSC declares."""
    audit = audit_method("tsc", tmp_path, extra_hp={"variant": variant})
    assert any("hungarian_assignment" in site for _, site in audit.counts)


def test_the_audit_sees_every_kind_of_sync():
    """The detector itself: each way to force a host sync is counted (so a clean result above means something)."""
    t = torch.ones(3)
    with SyncAudit() as audit:
        bool(t.sum())
        float(t.sum())
        t.tolist()
        t[t > 0]
        torch.tensor([1.0])
        torch.nonzero(t)
        torch.bincount(t.long())
        t.numpy()
        t.sum().item()
        t.cpu()
        int(t.sum())
        t.new_tensor([1.0])
        t.new_tensor(0.5)
        torch.as_tensor([1.0])
    kinds = collections.Counter(k for k, _ in audit.counts.elements())
    assert set(kinds) >= {"__bool__", "__float__", "tolist", "boolean-mask indexing", "tensor", "nonzero", "bincount"}
    assert set(kinds) >= {"numpy", "item", "cpu", "__int__", "as_tensor"}
    assert kinds["new_tensor"] == 2, kinds  # its data is the second argument: both host copies


@pytest.mark.filterwarnings("ignore:To copy construct")
def test_the_audit_does_not_count_tensors_built_from_tensors():
    """``t.new_tensor(u)`` / ``torch.as_tensor(u)`` of a tensor ``u`` copies on the device: no host sync."""
    t = torch.ones(3)
    with SyncAudit() as audit:
        t.new_tensor(t)
        torch.as_tensor(t)
    assert not audit.counts, dict(audit.counts)


def test_the_audit_catches_a_per_step_bce_pos_weight():
    """RIDE-EA's router loss once built its pos_weight every step with ``pred.new_tensor(100.0)`` (a host -> device
    copy per step on a GPU); it now makes ``self.pos_weight`` once in ``on_stage_start``. The old form is seen."""
    pred, target = torch.zeros(4, 3), torch.ones(4, 3)
    with SyncAudit() as audit:
        F.binary_cross_entropy_with_logits(pred, target, pos_weight=pred.new_tensor(100.0))
    assert [kind for kind, _ in audit.counts] == ["new_tensor"]
    pos_weight = torch.tensor(100.0)
    with SyncAudit() as audit:  # the current form: the constant already on the device
        F.binary_cross_entropy_with_logits(pred, target, pos_weight=pos_weight)
    assert not audit.counts, dict(audit.counts)


def _info(counts) -> DataInfo:
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    return DataInfo(
        num_classes=len(counts), class_counts=counts, image_size=16, dataset="synthetic_lt", train_labels=labels
    )


@pytest.mark.parametrize("method", METHODS.names())
def test_every_stage_keeps_the_model_on_its_device(method):
    """Build on the CPU, move to a second device ("meta"), let every stage make its structural changes: every
    parameter and buffer must follow the model (LWS's scales were created on the CPU, a crash on CUDA)."""
    from ltbench.config import RunConfig

    cls = METHODS.get(method)
    resolved = resolve(RunConfig(method=method, dataset="synthetic_lt"), cls)
    counts = [40, 20, 10, 5]
    m = cls(dict(resolved.hp), _info(counts))
    model = m.build_model(build_backbone(resolved.backbone, 16), len(counts), counts).to("meta")
    for stage in m.stages():
        m.adapt_model(model, stage)
        stray = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.device.type != "meta"]
        assert not stray, f"{method} stage {stage.name!r} left {stray} off the model's device"


class _MetaCtx:
    """What ``on_stage_start`` of the loss-only methods reads: the device."""

    device = torch.device("meta")

    def record(self, *a, **k):
        pass

    def log(self, **k):
        pass


@pytest.mark.parametrize("method", [n for n in METHODS.names() if hasattr(METHODS.get(n), "make_criterion")])
def test_loss_buffers_move_to_the_device_when_the_stage_starts(method):
    """Per-class weights, margins and log-priors are buffers moved once (not copied to the device every step)."""
    from ltbench.config import RunConfig

    cls = METHODS.get(method)
    m = cls(dict(resolve(RunConfig(method=method, dataset="synthetic_lt"), cls).hp), _info([40, 20, 10, 5]))
    stage = m.stages()[0]
    m.on_stage_start(stage, None, _MetaCtx())
    m.on_epoch_start(stage, 10**6, None, _MetaCtx())  # past any DRW switch
    assert all(b.device.type == "meta" for b in m.criterion.buffers()), method


def _held_tensors(m) -> dict[str, torch.Tensor]:
    """Every tensor a method object holds directly: tensor attributes and the parameters and buffers of its modules
    (RIDE's ``ldam`` and ``temperature``, RIDE-EA's ``pos_weight``, the contrastive methods' stage-2 LDAM loss)."""
    held = {}
    for name, value in vars(m).items():
        if isinstance(value, torch.Tensor):
            held[name] = value
        elif isinstance(value, torch.nn.Module):
            held.update({f"{name}.{k}": t for k, t in [*value.named_parameters(), *value.named_buffers()]})
    return held


def _hook_loss_methods() -> list[str]:
    """Methods whose loss tensors live on the method itself and are placed by their stage/epoch hooks: RIDE and
    its subclasses, and the contrastive two-stage methods (KCL, TSC, SBCL)."""
    from ltbench.methods.contrastive.common import ContrastiveTwoStage
    from ltbench.methods.ride.ride import RIDE

    return [n for n in METHODS.names() if issubclass(METHODS.get(n), (RIDE, ContrastiveTwoStage))]


@pytest.mark.parametrize("method", _hook_loss_methods())
def test_loss_tensors_held_by_the_method_follow_the_device(method):
    """RIDE's LDAM margins (moved in ``on_stage_start``), its DRW weights and class-wise temperature (made in
    ``on_epoch_start``), RIDE-EA's router ``pos_weight`` and the contrastive stage-2 LDAM loss are on the device
    after the hooks, every stage in order and past any DRW switch. Anything left on the CPU would be copied to the
    GPU at every step (``LDAMLoss.forward`` calls ``.to``), which no sync audit sees. The contrastive stage's hooks
    need a model and data (queue pre-fill, TSC's targets, SBCL's clustering) and are skipped: the classifier
    stage's hooks, on a fresh method, must place the stage-2 loss on their own."""
    from ltbench.config import RunConfig

    cls = METHODS.get(method)
    resolved = resolve(RunConfig(method=method, dataset="synthetic_lt"), cls)
    counts = [40, 20, 10, 5]
    m = cls(dict(resolved.hp), _info(counts))
    model = m.build_model(build_backbone(resolved.backbone, 16), len(counts), counts).to("meta")
    for stage in (s for s in m.stages() if s.name != "contrastive"):
        m.adapt_model(model, stage)
        m.on_stage_start(stage, model, _MetaCtx())
        m.on_epoch_start(stage, 10**6, model, _MetaCtx())
    held = _held_tensors(m)
    assert held, f"{method} holds no loss tensor: the test checks nothing"
    stray = sorted(n for n, t in held.items() if t.device.type != "meta")
    assert not stray, f"{method} left {stray} off the device"


def test_a_checkpoint_written_on_a_gpu_resumes_exactly_on_the_cpu(out_dir, tmp_path, monkeypatch):
    """Every tensor of a mid-epoch checkpoint tagged cuda:0 (as a GPU run writes it): resume maps it to the CPU;
    with the old ``map_location=ctx.device`` and RNG states moved to the device, ``set_state`` failed."""
    import ltbench.train.trainer as trainer_mod

    full = execute(tiny_config(out_dir, epochs=3, hparams={"batch_size": 16}), progress=False)
    cfg = tiny_config(tmp_path / "gpu", epochs=3, hparams={"batch_size": 16})

    class Late:  # the stop flag rises a few steps into the second epoch (13 steps per epoch): mid-epoch
        def __init__(self):
            self.n, self.signum = 0, 0

        def __bool__(self):
            self.n += 1
            self.signum = 15 if self.n > 16 else 0
            return bool(self.signum)

    import contextlib

    monkeypatch.setattr(trainer_mod, "graceful_stop", contextlib.contextmanager(lambda: (yield Late())))
    with pytest.raises(KeyboardInterrupt):
        execute(cfg, progress=False)
    monkeypatch.undo()
    path = cfg.run_dir / "ckpt.pt"
    blob = torch.load(path, weights_only=True)
    assert blob["state"]["step"] > 0 and blob["mid_epoch"]["generator"].dtype == torch.uint8
    real_tag = torch.serialization.location_tag
    monkeypatch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
    torch.save(blob, path)
    monkeypatch.setattr(torch.serialization, "location_tag", real_tag)
    with pytest.raises(RuntimeError, match="CUDA"):  # the file really says cuda:0
        torch.load(path, weights_only=True)
    resumed = execute(cfg, progress=False)
    assert json.dumps(resumed["metrics"], sort_keys=True) == json.dumps(full["metrics"], sort_keys=True)


class _MetaTrainCtx(_MetaCtx):
    """What ``Trainer`` reads of a context to load a checkpoint: the device, the training-set size, its state."""

    train_y = torch.zeros(8, dtype=torch.long)

    def load_state_dict(self, state: dict) -> None:
        pass


@pytest.mark.filterwarnings("ignore:for .*copying from a non-meta parameter")
def test_a_checkpoint_loads_on_the_cpu_whatever_the_models_device(tmp_path, monkeypatch):
    """The resume test above runs on the CPU, where the old ``torch.load(path, map_location=ctx.device)`` gave CPU
    tensors too. Here the model and context are on a second device (meta) and the file says cuda:0: the trainer's
    own loading path must still return the RNG states as CPU byte tensors (all ``torch.set_rng_state`` and
    ``Generator.set_state`` accept) and leave placing the weights to ``load_state_dict``."""
    from ltbench.config import RunConfig
    from ltbench.train.trainer import Trainer, TrainState

    cls, counts = METHODS.get("ce"), [4, 2, 1, 1]
    resolved = resolve(RunConfig(method="ce", dataset="synthetic_lt"), cls)
    m = cls(dict(resolved.hp), _info(counts))
    model = m.build_model(build_backbone(resolved.backbone, 16), len(counts), counts)
    mid = {
        "order": torch.randperm(8),
        "generator": torch.Generator().manual_seed(1).get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": None,
        "sums": {},
        "counters": {"images": 0, "seconds": 0.0},
    }
    blob = {"mid_epoch": mid, "state": TrainState(step=3).__dict__, "model": model.state_dict(), "optimizer": None}
    blob.update(method=m.state_dict(), ctx={"subset": None, "records": {}})
    monkeypatch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")  # as a GPU run writes it
    torch.save(blob, tmp_path / "ckpt.pt")
    monkeypatch.undo()

    trainer = Trainer(m, model.to("meta"), _MetaTrainCtx(), tmp_path, seed=0, progress=False)
    state, _ = trainer.load()
    assert state.step == 3
    for key in ("generator", "torch_rng"):
        rng = trainer.mid_epoch[key]
        assert (rng.device.type, rng.dtype) == ("cpu", torch.uint8), (key, rng.device, rng.dtype)
    torch.Generator().set_state(trainer.mid_epoch["generator"])
    assert all(p.device.type == "meta" for p in model.parameters())


class _Breaks(torch.nn.Module):
    """A module whose forward has one graph break (two compiled graphs per shape)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * 2
        torch._dynamo.graph_break()
        return x + 1


class _Plain(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * 2).relu()


def _watched_run(module: torch.nn.Module, batch_sizes: list[int]) -> dict[str, int]:
    """What a --compile run does, in small: start the watch, compile in place with static shapes, run."""
    from ltbench.train.runtime import CompileWatch

    watch = CompileWatch()
    module.compile(backend="eager", dynamic=False)  # eager backend: dynamo's counting without code generation
    for n in batch_sizes:
        module(torch.randn(n, 3))
    return watch.report()


def test_the_compile_report_counts_recompiles_and_only_this_runs_compiles():
    """A second input shape under ``dynamic=False`` recompiles and is reported as such (torch 2.14 never fills
    ``counters["recompiles"]``: the old report said 0 always); dynamo's counters are process-wide, so a second run
    in the same process (an in-process sweep) reports only its own compiles, from 0."""
    torch._dynamo.reset()  # no compiled code of an earlier test is reused: the counts below are exact
    first = _watched_run(_Breaks(), [2, 5])
    assert first["recompiles"] >= 1 and first["graph_breaks"] >= 1, first
    assert first["frames_compiled"] >= 2, first
    second = _watched_run(_Plain(), [2])
    assert second == {"frames_compiled": 1, "calls_captured": 2, "graph_breaks": 0, "recompiles": 0}, second


def test_compile_on_ride_compiles_the_expert_trunk_that_runs(tmp_path, monkeypatch):
    """RIDE's model runs its multi-expert trunk (``ExpertBackbone``, which reuses only the stem and early stages of
    the ResNet it was built from): --compile must compile that module, and it must be the one the training and
    evaluation forward passes call. The real compile is replaced by a recorder that counts the module's calls."""
    from ltbench.methods.ride.experts import ExpertBackbone

    compiled: list[tuple[torch.nn.Module, collections.Counter]] = []

    def record(self, *args, **kwargs):
        calls: collections.Counter = collections.Counter()
        self.register_forward_hook(lambda module, *_: calls.update(["train" if module.training else "eval"]))
        compiled.append((self, calls))

    monkeypatch.setattr(torch.nn.Module, "compile", record)
    resets: list[int] = []  # each compiled run starts from an empty code cache (torch's recompile limit is per process)
    monkeypatch.setattr(torch._dynamo, "reset", lambda: resets.append(len(compiled)))
    cfg = _two_step_config(tmp_path, "ride", compile=True, hparams=_fast_overrides("ride"))
    assert execute(cfg, progress=False)["status"] == "done"
    assert resets == [0]  # once, before the model is compiled
    assert [type(m).__name__ for m, _ in compiled] == ["ExpertBackbone"]
    module, calls = compiled[0]
    assert isinstance(module, ExpertBackbone)
    assert calls["train"] > 0 and calls["eval"] > 0, calls

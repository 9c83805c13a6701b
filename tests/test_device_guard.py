"""A step-level device-placement guard that runs without a GPU (issue #24, "The GPU path").

Every stage of every method runs a couple of real training steps with the model and the data on the ``meta``
device, the stand-in for a GPU: meta tensors carry shapes and dtypes but no data, so a step costs nothing. The
natural failure of a CUDA run, an op that gets a CUDA tensor and a CPU tensor, is what the guard looks for:

* :class:`DeviceMixGuard` (a ``TorchDispatchMode``) sees every aten op, forward and backward, and fails on one
  whose tensor inputs sit on more than one device. It follows CUDA's rules rather than meta's, which are laxer
  (``meta @ cpu`` is accepted): a 0-dim CPU tensor is a scalar and may join a device op, copies move data on
  purpose, and index tensors may stay on the CPU, as CUDA allows for each.
* :class:`HostReadStub` (a ``TorchFunctionMode``) answers host reads of meta tensors (``.item()``, ``.tolist()``,
  ``float()``, ``.cpu()``...) with zeros of the right shape and dtype. Meta tensors have no data to read, yet
  hooks legitimately read back once per epoch (a DRW switch records its weights) and a few methods declare a
  host sync per step (``step_syncs``: DisA's Sinkhorn stop test, TSC's Hungarian assignment); with the stub these
  run on, and whatever they send back to the device still has to be moved there. It also fails on a CPU
  ``torch.Generator`` drawing meta tensors (CUDA raises there), apart from the context's own generator, which
  stands in for the device generator (a meta generator cannot be made).

Host-sync counting is a separate guard (tests/test_gpu_guards.py); this one is only about where tensors are.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from typing import Any
from unittest import mock

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import ltbench.train.trainer as trainer_module
from ltbench.config import RunConfig
from ltbench.data.base import DataSpec
from ltbench.data.datasets import DATASETS
from ltbench.data.loader import DeviceBatches, epoch_order
from ltbench.data.transforms import get_transform
from ltbench.method import DataInfo
from ltbench.models.backbones import build_backbone
from ltbench.registry import METHODS
from ltbench.resolve import resolve
from ltbench.train.context import Context
from ltbench.train.trainer import Trainer, seed_for

META = torch.device("meta")

aten = torch.ops.aten
# ops that take tensors on two devices on purpose: copies between devices, and indexing with CPU index tensors
# (CUDA accepts ``x_cuda[idx_cpu]`` and ``x_cuda[idx_cpu] = v_cuda``); for the latter only self/values count
COPIES = {aten._to_copy.default, aten.copy_.default, aten._copy_from.default, aten._copy_from_and_resize.default}
INDEXING = {
    aten.index.Tensor: (0,),
    aten.index_put.default: (0, 2),
    aten.index_put_.default: (0, 2),
    aten._index_put_impl_.default: (0, 2),
}


def _devices(tensors: list[Any]) -> set[torch.device]:
    """Devices of the tensors among ``tensors``; a 0-dim CPU tensor is a scalar (CUDA ops accept those)."""
    return {t.device for t in tensors if isinstance(t, torch.Tensor) and not (t.device.type == "cpu" and t.dim() == 0)}


class DeviceMixGuard(TorchDispatchMode):
    """Fails on any aten op whose tensor inputs are on more than one device (see the module docstring), and counts
    the devices of the ops it saw, so a test can check that the work did run on the device."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: Counter[str] = Counter()
        self.host_reads: Counter[str] = Counter()  # filled by the HostReadStub beside it (on_meta_guard)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in COPIES:
            checked = [args[i] for i in INDEXING[func] if i < len(args)] if func in INDEXING else tree_flatten(args)[0]
            devices = _devices(checked + tree_flatten(kwargs)[0])
            if len(devices) > 1:
                raise RuntimeError(
                    f"device guard: {func} mixes devices {sorted(map(str, devices))}: a tensor was left on the "
                    "CPU while the run is on the device (a CUDA run fails here)"
                )
            self.seen.update(d.type for d in devices)
        return func(*args, **kwargs)


def _stub(t: torch.Tensor) -> torch.Tensor:
    """What a host copy of meta tensor ``t`` reads as: CPU zeros of its shape and dtype."""
    return torch.zeros(t.shape, dtype=t.dtype)


def _to_cpu(args: tuple, kwargs: dict) -> torch.Tensor | None:
    """The stub if ``Tensor.to(*args, **kwargs)`` moves a meta tensor to the CPU, else None."""
    self, rest = args[0], args[1:]
    device, dtype, *_ = torch._C._nn._parse_to(*rest, **kwargs)
    if device is None or torch.device(device).type != "cpu":
        return None
    return _stub(self).to(dtype or self.dtype)


T = torch.Tensor
HOST_READS = {
    T.item: lambda t: _stub(t).item(),
    T.tolist: lambda t: _stub(t).tolist(),
    T.numpy: lambda t, *a, **k: _stub(t).numpy(),
    T.cpu: lambda t, *a, **k: _stub(t),
    T.__bool__: lambda t: bool(_stub(t)),
    T.__float__: lambda t: float(_stub(t)),
    T.__int__: lambda t: int(_stub(t)),
    T.__index__: lambda t: _stub(t).__index__(),
    T.__format__: lambda t, spec: _stub(t).__format__(spec),
}


def _bincount(t: torch.Tensor, weights: torch.Tensor | None = None, minlength: int = 0) -> torch.Tensor:
    """``bincount`` of a meta tensor (no meta kernel: its length depends on the data), taking every value to be
    below ``minlength``, as the class counts that call it are; its inputs must share the device like any op."""
    if len(_devices([t, weights])) > 1:
        raise RuntimeError(f"device guard: bincount mixes devices {sorted(map(str, _devices([t, weights])))}")
    dtype = torch.long if weights is None else weights.dtype
    return torch.zeros(max(minlength, 1), dtype=dtype, device=t.device)


DATA_SHAPED = {torch.bincount: _bincount, T.bincount: _bincount}


class HostReadStub(TorchFunctionMode):
    """Host reads of meta tensors give zeros (see the module docstring), counted in ``reads`` by kind; a CPU
    generator drawing meta tensors fails unless it is ``device_generator``, the context's stand-in for the
    device's generator."""

    def __init__(self, device_generator: torch.Generator, reads: Counter | None = None) -> None:
        super().__init__()
        self.device_generator = device_generator
        self.reads = Counter() if reads is None else reads

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        first = args[0] if args else None
        if isinstance(first, torch.Tensor) and first.is_meta:
            if func in HOST_READS:
                self.reads[func.__name__] += 1
                return HOST_READS[func](*args, **kwargs)
            if func in DATA_SHAPED:
                return DATA_SHAPED[func](*args, **kwargs)
            if func is T.to and (stub := _to_cpu(args, kwargs)) is not None:
                self.reads["to"] += 1
                return stub
        out = func(*args, **kwargs)
        gen = kwargs.get("generator")
        if isinstance(gen, torch.Generator) and gen is not self.device_generator and gen.device.type == "cpu":
            outputs = [out, *tree_flatten(args)[0]]
            if any(isinstance(t, torch.Tensor) and t.is_meta for t in outputs):
                raise RuntimeError(
                    f"device guard: {getattr(func, '__name__', func)} draws device tensors from a CPU generator "
                    "(a CUDA run fails: Expected a 'cuda' device type for generator)"
                )
        return out


def _autocast_off_meta(real):
    """``torch.autocast`` that is a no-op on ``meta`` (autocast rejects that device type even when disabled);
    unchanged on every other device."""

    def autocast(device_type: str, *args, **kwargs):
        return contextlib.nullcontext() if device_type == "meta" else real(device_type, *args, **kwargs)

    return autocast


@contextlib.contextmanager
def on_meta_guard(ctx: Context):
    """The guard's modes, plus the two meta-only allowances: autocast (a no-op there) and boolean-mask indexing,
    whose result shape depends on data that meta tensors lack (TSC's once-per-stage target statistics index with
    an off-diagonal mask); the mask is taken as all true, which changes a shape, never a device."""
    import torch.fx.experimental._config as fx_config

    real, guard = torch.autocast, DeviceMixGuard()
    torch.autocast = _autocast_off_meta(real)
    try:
        with fx_config.patch(meta_nonzero_assume_all_nonzero=True), HostReadStub(ctx.generator, guard.host_reads):
            with guard:
                yield guard
    finally:
        torch.autocast = real


def meta_context(data, precision: str = "fp32") -> Context:
    """A Context as ``run.py`` builds it, on ``meta``: built on the CPU (a meta generator cannot exist), then its
    device and training tensors moved; its CPU generator is the one the guard accepts for device draws."""
    ctx = Context(data, torch.device("cpu"), precision, channels_last=True)
    ctx.device, ctx.train_x, ctx.train_y = META, ctx.train_x.to(META), ctx.train_y.to(META)
    return ctx


def build_on_meta(method: str, hparams: dict | None = None):
    """(method instance, model on meta, meta Context, Trainer) as ``run._train_and_evaluate`` builds them."""
    cls = METHODS.get(method)
    data = DATASETS.get("synthetic_lt")(DataSpec())
    resolved = resolve(RunConfig(method=method, dataset="synthetic_lt", hparams=hparams or {}), cls)
    info = DataInfo(data.num_classes, list(data.class_counts), data.image_size, data.name, data.train_y.to(META))
    m = cls(dict(resolved.hp), info)
    backbone = build_backbone(resolved.backbone, data.image_size)
    model = m.build_model(backbone, data.num_classes, list(data.class_counts)).to(META)
    model = model.to(memory_format=torch.channels_last)
    ctx = meta_context(data)
    return m, model, ctx, Trainer(m, model, ctx, "unused", seed=0, eval_every=0, progress=False)


def _batches(trainer: Trainer, idx: int, stage, epoch: int) -> DeviceBatches:
    """The epoch's batches as ``Trainer._run_epoch`` makes them (its epoch hook runs here), except that the pair
    order (Stage.pair_sampler) is drawn from the context's generator: the trainer seeds a fresh device generator
    for it, which meta cannot have."""
    ctx = trainer.ctx
    order, _ = trainer._epoch_order(idx, stage, epoch)
    pair = None
    if stage.pair_sampler is not None:
        pair = epoch_order(stage.pair_sampler, ctx.train_y, ctx.data.num_classes, ctx.generator, length=len(order))
    return DeviceBatches(
        ctx.data, ctx.train_x, ctx.train_y, order, stage.batch_size, get_transform(stage.transform), ctx.generator,
        stage.views, stage.drop_last, ctx.channels_last, seed_for(0, idx, epoch, 2), pair,
    )  # fmt: skip


def class_aware_on_host(host_labels: torch.Tensor):
    """``epoch_order`` for the trainer on meta: classifier-balancing's class-aware sampler walks the classes in a
    per-epoch host loop whose lengths come from the class counts, which meta tensors do not hold, so its order
    is drawn from the CPU labels ``host_labels`` and moved to the device; every other sampler runs on the
    device as in a run."""

    def order(sampler: str, labels: torch.Tensor, num_classes: int, gen: torch.Generator, *args, **kwargs):
        if sampler != "class_aware" or not labels.is_meta:
            return epoch_order(sampler, labels, num_classes, gen, *args, **kwargs)
        cpu_gen = torch.Generator().manual_seed(gen.initial_seed())
        return epoch_order(sampler, host_labels, num_classes, cpu_gen, *args, **kwargs).to(labels.device)

    return order


def run_steps(trainer: Trainer, steps: int = 2) -> None:
    """Every stage as the trainer runs it (head set-up, optimizer, stage hook), then ``steps`` optimizer steps in
    its first epoch and in its last, which is past every switch (DRW, a warm-up's end, a re-weighting)."""
    model, ctx = trainer.model, trainer.ctx
    for idx, stage in enumerate(trainer.stages):
        torch.manual_seed(seed_for(0, idx, -1))
        trainer._setup_stage(idx, stage, fresh=True)
        trainer.method.on_stage_start(stage, model, ctx)
        for epoch in sorted({0, stage.epochs - 1}):
            batches = _batches(trainer, idx, stage, epoch)
            trainer._train_mode(stage)
            for _, batch in zip(range(steps), batches):
                with ctx.autocast():
                    out = trainer.method.training_step(model, batch, stage, epoch)
                trainer.optimizer.zero_grad(set_to_none=True)
                out["loss"].backward()
                if stage.grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), stage.grad_clip)
                trainer.optimizer.step()


def guarded_run(method: str, hparams: dict | None = None, steps: int = 2) -> DeviceMixGuard:
    """Build ``method`` on meta and run every stage under the guard; returns the guard (its device counts)."""
    m, model, ctx, trainer = build_on_meta(method, hparams)
    with mock.patch.object(trainer_module, "epoch_order", class_aware_on_host(ctx.data.train_y)):
        with on_meta_guard(ctx) as guard:
            run_steps(trainer, steps)
    return guard


def small_batches(method: str, **hparams) -> dict:
    """Batch-size hparams at 32: shapes do not matter to the guard, and the contrastive views' random crops loop
    over the images of a batch (kornia's ``cropping_mode="slice"``), which costs seconds at 1024."""
    specs = METHODS.get(method).hparams
    return {k: 32 for k in specs if k.endswith("batch_size")} | hparams


@pytest.mark.parametrize("method", METHODS.names())
def test_every_stage_keeps_its_tensors_on_the_device(method):
    guard = guarded_run(method, small_batches(method))
    assert guard.seen["meta"] > 0


# code paths the defaults do not take in a first or last epoch
VARIANTS = {
    # the matching variants solve the Hungarian assignment on the host every step (TSC's declared step sync)
    "tsc-paper": ("tsc", {"variant": "paper", "kcl_epochs": 0}),
    "tsc-code_imagenet-queue": ("tsc", {"variant": "code_imagenet", "kcl_epochs": 0, "queue_size": 64}),
    # the MoCo variant: a labelled key queue and a momentum key encoder (KCL/TSC on ImageNet-LT)
    "kcl-queue": ("kcl", {"queue_size": 64, "momentum": 0.999}),
    # OTmix mixing every batch, with the Sinkhorn pairing
    "otmix-ot": ("otmix", {"mix_after": 0, "mix_before_end": 0, "ot_power": 0.0, "mix_prob": 1.0}),
    "otmix-code": ("otmix", {"variant": "code", "mix_after": 0, "mix_before_end": 0, "mix_prob": 1.0}),
    "disa-fixed_etf_head": ("disa", {"variant": "fixed_etf_head"}),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_variants_keep_their_tensors_on_the_device(variant):
    method, hparams = VARIANTS[variant]
    guarded_run(method, small_batches(method, **hparams))


# ---------------------------------------------------------------- the guard itself
def test_the_guard_fails_on_mixed_devices_that_meta_alone_accepts():
    """meta's own kernels accept ``meta @ cpu``; CUDA does not, and neither does the guard. Scalars, copies
    and CPU index tensors are what CUDA accepts too."""
    x, w = torch.ones(4, 3, device=META), torch.ones(3, 2)
    assert (x @ w).is_meta  # meta alone would not notice
    with DeviceMixGuard() as guard:
        x * torch.tensor(2.0)
        torch.ones(3).to(META)  # a copy onto the device
        x[torch.tensor([0, 2])]
        with pytest.raises(RuntimeError, match="mixes devices"):
            x @ w
    assert guard.seen["meta"] > 0


class _CpuGradient(torch.autograd.Function):
    """Identity forward; its backward multiplies by a CPU tensor (a bug that only backward would show)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad * torch.ones(grad.shape[-1])


def test_the_guard_sees_backward():
    """Backward ops pass through the mode too (the autograd engine carries it along)."""
    x = torch.ones(4, 3, device=META, requires_grad=True)
    with pytest.raises(RuntimeError, match="mixes devices"), DeviceMixGuard():
        _CpuGradient.apply(x).sum().backward()


def test_host_reads_of_meta_tensors_give_zeros_of_their_shape():
    t = torch.ones(2, 3, device=META)
    with HostReadStub(torch.Generator()):
        assert t.tolist() == [[0.0] * 3] * 2
        assert t.cpu().shape == (2, 3) and t.to("cpu").device.type == "cpu"
        assert float(t.sum()) == 0.0 and not bool(t.any()) and t.sum().item() == 0.0


def test_a_cpu_generator_drawing_device_tensors_fails():
    own = torch.Generator()
    with HostReadStub(own):
        torch.randperm(5, generator=own, device=META)
        torch.randperm(5, generator=torch.Generator())  # on the CPU: fine
        with pytest.raises(RuntimeError, match="CPU generator"):
            torch.randperm(5, generator=torch.Generator(), device=META)


def test_the_guard_catches_the_lws_scales_left_on_the_cpu(monkeypatch):
    """The bug the guard exists for: LWSHead once created its per-class scales with ``torch.ones(C)``, on the
    CPU, while the head it wraps (swapped in at the classifier stage, after the model moved) is on the device.
    Reproduced by building the scales on the CPU again; the guard must stop the LWS stage's first step."""
    from ltbench.models.heads import LWSHead

    original = LWSHead.__init__

    def old_init(self, linear: nn.Linear) -> None:
        original(self, linear)
        self.scales = nn.Parameter(torch.ones(linear.out_features))  # the old line: no device

    monkeypatch.setattr(LWSHead, "__init__", old_init)
    with pytest.raises(RuntimeError, match=r"mixes devices \['cpu', 'meta'\]"):
        guarded_run("lws")
    monkeypatch.setattr(LWSHead, "__init__", original)
    guarded_run("lws")  # and the fixed head passes

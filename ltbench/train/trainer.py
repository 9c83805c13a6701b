"""The one training loop. Executes a method's Stages: optimizer + schedule, AMP, checkpoint every epoch
and resume, seeded randomness, the NaN guard, evaluation every N epochs, progress and log files.

Randomness is re-seeded from (seed, stage, epoch) at the start of every epoch, so resuming from an
epoch checkpoint replays exactly what an uninterrupted run would have done (no RNG state to carry).
A SIGTERM or Ctrl-C stops between two steps and writes a mid-epoch checkpoint that does carry the epoch's
sample order and RNG states, so that resume is exact too (ltbench/interrupt.py).
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ltbench.data.loader import DeviceBatches, epoch_order
from ltbench.data.transforms import get_transform
from ltbench.distributed.collectives import agree, barrier, gather_objects, mean_across, sync_buffers
from ltbench.distributed.world import SINGLE, World
from ltbench.errors import CheckpointError, FrozenWeightsChanged, LTBenchError, storage_error
from ltbench.evaluate import evaluate_logits
from ltbench.method import Method, Stage
from ltbench.records import append_jsonl, log_entries, truncate_log
from ltbench.train.context import Context
from ltbench.train.interrupt import Interrupted, StopFlag, graceful_stop
from ltbench.train.optim import build_optimizer, lr_factor, set_lr
from ltbench.train.progress import Progress, console
from ltbench.train.recipes import apply_backbone_recipe
from ltbench.train.trackers import Tracker

CHECK_EVERY = 20  # steps between NaN checks / host syncs (one sync per check, none inside the step)
DIVERGED_RATIO = 100.0  # a stage whose last epoch's mean loss is this many times its first epoch's is flagged


class Diverged(LTBenchError):
    """The loss became NaN or infinite: the run stops with status ``failed`` and this reason."""


@dataclass
class TrainState:
    stage: int = 0
    epoch: int = 0  # next epoch to run within ``stage``
    step: int = 0  # > 0 only in a mid-epoch checkpoint (SIGTERM / Ctrl-C): steps of ``epoch`` already done
    timing: dict = field(default_factory=dict)
    backbone_hash: str | None = None


def seed_for(seed: int, *parts: int) -> int:
    """A 63-bit seed derived from the run seed and (stage, epoch): independent streams per epoch."""
    h = hashlib.sha256(repr((seed,) + parts).encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def backbone_hash(model: nn.Module, trainable: str = "head", buffers: bool = True) -> str:
    """Digest of every frozen tensor (weights and BN buffers) for the partial-stage check: the backbone of a
    head-only stage, or everything outside ``model.<trainable>`` for a module-only stage (RIDE's router).
    ``buffers=False``: parameters only (a stage that lets BatchNorm re-estimate its statistics)."""
    h = hashlib.sha256()
    if trainable == "head":
        frozen = dict(model.backbone.named_parameters()) if not buffers else model.backbone.state_dict()
    else:
        frozen = {k: v for k, v in model.state_dict().items() if not k.startswith(f"{trainable}.")}
    for name, t in sorted(frozen.items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def checkpoint_intact(path: Path) -> bool:
    """Whether a checkpoint file is a complete zip archive whose members all pass their CRC check (torch.save
    writes zip files): False for a truncated file (a full disk, a killed copy) or damaged bytes."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            return zf.testzip() is None
    except (zipfile.BadZipFile, OSError, EOFError):
        return False


def load_checkpoint(path: Path) -> dict:
    """A checkpoint's content, loaded on the CPU with ``weights_only=True``: a crafted file (runs directories live on
    shared storage and are read by other users' commands) can hold only tensors, numbers, strings, lists and dicts,
    and never runs code. Tensors stay on the CPU; ``load_state_dict`` places them (RNG states must be CPU tensors)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise CheckpointError(
            f"checkpoint {path} cannot be loaded: {type(exc).__name__}: {first}. Only tensors, numbers, strings, "
            "lists and dicts are accepted (weights_only); the file and the run directory are kept unchanged"
        ) from exc


def to_device(obj, device: torch.device):
    """``obj`` with every tensor inside (dicts, lists, tuples) moved to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


class Trainer:
    def __init__(
        self,
        method: Method,
        model: nn.Module,
        ctx: Context,
        run_dir: Path,
        seed: int,
        eval_every: int = 10,
        progress: bool = True,
        recipe: dict | None = None,
        explicit_lrs: frozenset[float] = frozenset(),
        tracker: Tracker | None = None,
        world: World = SINGLE,
    ) -> None:
        self.method, self.model, self.ctx, self.run_dir = method, model, ctx, Path(run_dir)
        # a multi-process run (ltbench/distributed/): rank 0 alone writes files; ``step`` is DDP around the step
        self.world, self.step = world, None
        self.stopping = False  # the ranks agreed to stop at an epoch's last step: stop after the next one
        self.seed, self.eval_every = seed, eval_every
        self.stages = apply_backbone_recipe(method.stages(), recipe, set(explicit_lrs))
        self.progress = Progress(self.stages, len(ctx.train_y), enabled=progress)
        self.tracker = tracker or Tracker()  # an observer (--tracker): sees what the progress display sees
        self.ckpt_path = self.run_dir / "ckpt.pt"
        self.log_path = self.run_dir / "log.jsonl"
        self.optimizer: torch.optim.Optimizer | None = None
        self.mid_epoch: dict | None = None  # what a mid-epoch checkpoint restores into the interrupted epoch
        self.stop = StopFlag()

    # ------------------------------------------------------------------ checkpoints
    def save(self, state: TrainState, mid_epoch: dict | None = None) -> None:
        if not self.world.is_main:
            return
        blob = {
            "mid_epoch": mid_epoch,
            "state": state.__dict__,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.optimizer else None,
            "method": self.method.state_dict(),
            "ctx": self.ctx.state_dict(),
        }
        tmp = self.ckpt_path.with_name(f".ckpt.{os.getpid()}.tmp")
        try:
            torch.save(blob, tmp)
            os.replace(tmp, self.ckpt_path)
        except OSError as exc:  # disk full: the previous checkpoint is still the last good state
            tmp.unlink(missing_ok=True)
            raise storage_error(exc, self.ckpt_path) from exc

    def load(self) -> tuple[TrainState, dict | None]:
        """The checkpoint's state, or a fresh one if there is none (or it is truncated/corrupt: then it is kept
        aside as ``ckpt.pt.corrupt-<time>`` and the run starts over). Any other failure to load (code that no
        longer matches, content ``weights_only`` refuses, a device problem) stops the run with every file kept.
        In a multi-process run rank 0 loads first (it alone moves a corrupt file aside and truncates the log),
        then the others read what it left, so every rank starts from the same state.
        """
        if not self.world.distributed:
            return self._load()
        if self.world.is_main:
            loaded = self._load()
        barrier(self.world)
        if not self.world.is_main:
            loaded = self._load()
        return loaded

    def _load(self) -> tuple[TrainState, dict | None]:
        if not self.ckpt_path.exists():
            return TrainState(), None
        if not checkpoint_intact(self.ckpt_path):
            stamp = time.strftime("%Y%m%dT%H%M%S")
            aside = self.ckpt_path.with_name(f"ckpt.pt.corrupt-{stamp}")
            os.replace(self.ckpt_path, aside)
            if self.log_path.exists():  # starting over: the old epochs' lines move aside with the checkpoint
                os.replace(self.log_path, self.log_path.with_name(f"log.jsonl.before-{stamp}"))
            console(f"ltbench: checkpoint {self.ckpt_path} is truncated or corrupt (kept as {aside.name}); restarting")
            return TrainState(), None
        blob = load_checkpoint(self.ckpt_path)
        state = TrainState(**blob["state"])
        for stage in self.stages[: state.stage + 1]:  # structural head changes before loading weights
            self.method.adapt_model(self.model, stage)
        try:
            self.model.load_state_dict(blob["model"])
        except RuntimeError as exc:
            raise CheckpointError(
                f"checkpoint {self.ckpt_path} does not fit this code's model ({str(exc).splitlines()[0]}); every file "
                "is kept — run the ltbench version that wrote it (result.json/config.json name the commit)"
            ) from exc
        self.method.load_state_dict(to_device(blob["method"], self.ctx.device))
        self.ctx.load_state_dict(blob["ctx"])
        done = (state.stage, state.epoch)
        if blob.get("mid_epoch") is not None:  # the method/ctx state of that moment, re-applied in the epoch
            self.mid_epoch = {**blob["mid_epoch"], "method": copy.deepcopy(blob["method"]), "ctx": blob["ctx"]}
        if self.world.is_main:
            at = f" step {state.step}" if state.step else ""
            console(f"ltbench: resuming {self.run_dir.name} at stage {state.stage} epoch {state.epoch}{at}")
            truncate_log(self.log_path, lambda e: (e["stage"], e["epoch"] + 1) <= done)
        return state, blob.get("optimizer")

    # ------------------------------------------------------------------ stage setup
    def _setup_stage(self, idx: int, stage: Stage, fresh: bool) -> None:
        model = self.model
        if fresh:
            self.method.adapt_model(model, stage)
        if stage.trainable in ("all", "head"):
            model.backbone.requires_grad_(stage.trainable == "all")
        else:  # only ``model.<trainable>`` learns (RIDE-EA's router): everything else is frozen
            model.requires_grad_(False)
            self._trained_module(stage).requires_grad_(True)
        params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if not params:
            raise LTBenchError(f"stage {stage.name!r} has no trainable parameters")
        self.optimizer = build_optimizer(params, stage)
        if self.world.distributed:  # rebuilt per stage: the trainable parameters change (ltbench/distributed/ddp.py)
            from ltbench.distributed.ddp import wrap_step

            self.step = wrap_step(self.method, model, self.ctx.device)

    def _trained_module(self, stage: Stage) -> nn.Module:
        module = getattr(self.model, stage.trainable, None)
        if not isinstance(module, nn.Module):
            raise LTBenchError(f"stage {stage.name!r} trains model.{stage.trainable}, which the model does not have")
        return module

    def _train_mode(self, stage: Stage) -> None:
        if stage.trainable in ("all", "head"):
            self.model.train()
            if stage.trainable == "head" and not stage.bn_train:
                self.model.backbone.eval()  # frozen backbone: BN statistics must not move
        else:
            self.model.eval()  # frozen experts: no BN statistics move either
            self._trained_module(stage).train()

    # ------------------------------------------------------------------ the loop
    def fit(self) -> TrainState:
        state, opt_state = self.load()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with graceful_stop() as self.stop:
            for idx in range(state.stage, len(self.stages)):
                self._fit_stage(idx, state, opt_state)
                opt_state = None
        self.progress.close()
        sync_buffers(self.world, self.model)  # every rank ends with rank 0's model (the one evaluated and saved)
        barrier(self.world)
        return state

    def _fit_stage(self, idx: int, state: TrainState, opt_state: dict | None) -> None:
        stage = self.stages[idx]
        fresh = not (idx == state.stage and (state.epoch > 0 or state.step > 0))
        # Seeded before the stage builds anything (a fresh head: cRT, LWS, the BNS warm-up, RIDE-EA's router), so
        # a run resumed at a stage boundary initialises it exactly as an uninterrupted one.
        torch.manual_seed(seed_for(self.seed, idx, -1))
        self._setup_stage(idx, stage, fresh)
        if not fresh and opt_state is not None:
            self.optimizer.load_state_dict(opt_state)
        if fresh:
            partial = stage.trainable != "all"
            state.backbone_hash = backbone_hash(self.model, stage.trainable, not stage.bn_train) if partial else None
        self.method.on_stage_start(stage, self.model, self.ctx)
        for epoch in range(state.epoch if not fresh else 0, stage.epochs):
            self._run_epoch(idx, stage, epoch, state)
            state.stage, state.epoch, state.step = idx, epoch + 1, 0
            self.save(state)
        frozen = backbone_hash(self.model, stage.trainable, not stage.bn_train) if stage.trainable != "all" else None
        if frozen is not None and frozen != state.backbone_hash:
            raise FrozenWeightsChanged(
                f"stage {stage.name!r} of {self.method.name} trains only model.{stage.trainable}, yet weights it "
                "declares frozen changed during the stage (a bug in the method: it must not modify them, e.g. "
                "in a hook or through BatchNorm statistics in train mode); the run is marked failed"
            )
        self._flag_divergence(idx, stage)
        state.stage, state.epoch, state.step = idx + 1, 0, 0

    def _flag_divergence(self, idx: int, stage: Stage) -> None:
        """A finite loss that grew by orders of magnitude (e.g. a classifier loss of 3e7) is not a NaN, so the
        run finishes, but it must not finish silently: recorded in result.json ``warnings`` and printed."""
        if not self.world.is_main:  # the log is rank 0's; so is the record
            return
        losses = [e["loss"] for e in log_entries(self.run_dir) if e["stage"] == idx and e.get("loss") is not None]
        if len(losses) < 2 or not losses[0] > 0 or losses[-1] < DIVERGED_RATIO * losses[0]:
            return
        msg = (
            f"stage {stage.name!r}: the last epoch's loss {losses[-1]:.3g} is {losses[-1] / losses[0]:.0f}x the "
            f"first epoch's {losses[0]:.3g}; training probably diverged (lower the learning rate)"
        )
        self.ctx.record("warnings", msg, append=True)
        console(f"ltbench: warning: {msg}")

    def _epoch_order(self, idx: int, stage: Stage, epoch: int) -> tuple[torch.Tensor, dict | None]:
        """Seed the epoch, run the method's epoch hook, and return the sample order (and, when resuming
        inside this epoch, the interrupted moment's state, restored here: method, ctx, RNG streams)."""
        ctx = self.ctx
        sync_buffers(self.world, self.model)  # hooks running the model in eval mode see the same model on all ranks
        torch.manual_seed(seed_for(self.seed, idx, epoch))
        ctx.generator.manual_seed(seed_for(self.seed, idx, epoch, 1))
        ctx.epoch_log = {}
        self.method.on_epoch_start(stage, epoch, self.model, ctx)
        mid, self.mid_epoch = self.mid_epoch, None
        if mid is None:
            order = epoch_order(stage.sampler, ctx.train_y, ctx.data.num_classes, ctx.generator, ctx.subset)
            if self.world.distributed:  # one global order above; each rank's augmentations from its own stream
                ctx.generator.manual_seed(seed_for(self.seed, idx, epoch, 4, self.world.rank))
            return order, None
        self.method.load_state_dict(to_device(mid["method"], ctx.device))  # undo what the hook redid mid-epoch
        ctx.load_state_dict(copy.deepcopy(mid["ctx"]))
        states = mid.get("generators") or [mid["generator"]]  # per rank (exact when resumed with as many ranks)
        ctx.generator.set_state(states[self.world.rank % len(states)])
        torch.set_rng_state(mid["torch_rng"])
        if mid.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(mid["cuda_rng"], ctx.device)
        return mid["order"].to(ctx.device), mid

    def _pair_order(self, idx: int, stage: Stage, epoch: int, length: int) -> torch.Tensor | None:
        """The lock-step second order (Stage.pair_sampler) from its own stream of (seed, stage, epoch): a function
        of the epoch alone, so a resumed epoch rebuilds it instead of checkpointing it."""
        if stage.pair_sampler is None:
            return None
        gen = torch.Generator(device=self.ctx.device).manual_seed(seed_for(self.seed, idx, epoch, 3))
        ctx = self.ctx
        return epoch_order(stage.pair_sampler, ctx.train_y, ctx.data.num_classes, gen, length=length)

    def _interrupt(self, idx: int, epoch: int, step: int, state: TrainState, order, sums, counters) -> None:
        """Write the mid-epoch checkpoint (after ``step`` complete steps) and stop."""
        cuda = torch.cuda.get_rng_state(self.ctx.device) if self.ctx.device.type == "cuda" else None
        generators = gather_objects(self.world, self.ctx.generator.get_state())
        sums = mean_across(self.world, sums)
        mid = {
            "order": order.cpu(),
            "generator": generators[0],
            **({"generators": generators} if self.world.distributed else {}),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": cuda,
            "sums": {k: v.cpu() for k, v in sums.items()},
            "counters": counters,
        }
        state.stage, state.epoch, state.step = idx, epoch, step
        self.save(state, mid)
        raise Interrupted(self.stop.signum, f"at stage {idx} epoch {epoch} step {step}")

    def _run_epoch(self, idx: int, stage: Stage, epoch: int, state: TrainState) -> None:
        ctx, model, opt = self.ctx, self.model, self.optimizer
        order, mid = self._epoch_order(idx, stage, epoch)
        transform = get_transform(stage.transform)
        batches = DeviceBatches(
            ctx.data, ctx.train_x, ctx.train_y, order, stage.batch_size, transform, ctx.generator, stage.views,
            stage.drop_last or ctx.compiled, ctx.channels_last, seed_for(self.seed, idx, epoch, 2),
            self._pair_order(idx, stage, epoch, len(order)), (self.world.rank, self.world.size),
        )  # fmt: skip
        step = self.step or (lambda b, s, e: self.method.training_step(model, b, s, e))
        self._train_mode(stage)
        sums = {k: v.to(ctx.device) for k, v in mid["sums"].items()} if mid else {}
        counters = dict(mid["counters"]) if mid else {"images": 0, "seconds": 0.0}
        first, n_steps, t0 = state.step if mid else 0, len(batches), time.perf_counter()
        if epoch in stage.restarts and first == 0:  # a new optimizer there (a mid-epoch resume keeps the saved one)
            opt.state.clear()
        self.progress.start_epoch(idx, epoch, n_steps)
        for it, batch in enumerate(batches.iterate(first), first):
            set_lr(opt, stage.lr * lr_factor(stage, epoch, it, n_steps))
            with ctx.autocast():
                out = step(batch, stage, epoch)
            opt.zero_grad(set_to_none=True)
            out["loss"].backward()
            if stage.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), stage.grad_clip)
            opt.step()
            for k, v in out.items():
                if isinstance(v, torch.Tensor) and v.numel() == 1:
                    sums[k] = sums.get(k, 0) + v.detach().float()
            counters["images"] += batches.global_size(it)
            # several ranks agree on stopping at check steps only (one all-reduce, where the loss is read anyway)
            stop = self.stopping or (bool(self.stop) and not self.world.distributed)
            if (it + 1) % CHECK_EVERY == 0 or it + 1 == n_steps:
                total, agreed = agree(self.world, sums["loss"], bool(self.stop))
                stop = stop or agreed
                self._check_finite(total, idx, epoch, it)
                rate = counters["images"] / (counters["seconds"] + time.perf_counter() - t0)
                loss = total / self.world.size / (it + 1)
                self.progress.step(it + 1, loss, rate)
                seen = sum(t["images"] for t in state.timing.values()) + counters["images"]
                self.tracker.step(seen, {"loss": loss, "lr": opt.param_groups[0]["lr"], "images_per_s": rate})
            if stop and it + 1 < n_steps:
                counters["seconds"] += time.perf_counter() - t0
                self._interrupt(idx, epoch, it + 1, state, order, sums, counters)
            self.stopping = stop  # at the last step: the epoch ends (checkpoint), the next one stops after a step
        counters["seconds"] += time.perf_counter() - t0
        self._end_epoch(idx, stage, epoch, state, sums, counters, n_steps)

    def _end_epoch(self, idx, stage, epoch, state, sums, counters, n_steps) -> None:
        seconds, n_images = counters["seconds"], counters["images"]
        sums = mean_across(self.world, sums)
        entry = {
            "stage": idx,
            "stage_name": stage.name,
            "epoch": epoch,
            "lr": self.optimizer.param_groups[0]["lr"],
            "seconds": round(seconds, 3),
            "images_per_s": round(n_images / max(seconds, 1e-9), 1),
        }
        entry.update({k: float(v) / max(1, n_steps) for k, v in sums.items()})
        entry.update(self.ctx.epoch_log)
        tim = state.timing.setdefault(stage.name, {"seconds": 0.0, "images": 0})
        tim["seconds"] += seconds
        tim["images"] += n_images
        if not self.world.is_main:  # rank 0 evaluates and writes; the others go on to the next epoch
            return
        if self._should_eval(stage, epoch):
            entry["test_acc"] = self._quick_eval()
        append_jsonl(self.log_path, entry)
        self.tracker.epoch(sum(s.epochs for s in self.stages[:idx]) + epoch, entry)
        self.progress.end_epoch(entry)

    def _check_finite(self, value: float, idx: int, epoch: int, it: int) -> None:
        if not math.isfinite(value):
            raise Diverged(
                f"loss became {value} in stage {self.stages[idx].name!r}, epoch {epoch + 1}, "
                f"by step {it + 1}; lower the learning rate or check the data"
            )

    def _should_eval(self, stage: Stage, epoch: int) -> bool:
        last = epoch + 1 == stage.epochs
        return stage.evaluate and self.eval_every > 0 and (epoch + 1) % self.eval_every == 0 and not last

    def _quick_eval(self) -> float:
        """Test accuracy for the training curve only (logged, never used to select anything)."""
        logits = evaluate_logits(self.method, self.model, self.ctx, self.ctx.data.test_x)["default"]
        return float((logits.argmax(1).cpu() == self.ctx.data.test_y).float().mean())

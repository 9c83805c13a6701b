"""One run end to end: resolve, load data, build, train (resumable), evaluate, write the record.

The run directory (docs/architecture.md §4) is ``<out>/<sweep>/<run_id>/``: config.json first, log.jsonl per
epoch, ckpt.pt every epoch, result.json atomically at the end, then ``done``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import resource
import sys
import time
import traceback
from pathlib import Path

import torch

from ltbench.config import RunConfig
from ltbench.data.base import DataSpec, LTData
from ltbench.data.longtail import index_hash, shot_groups
from ltbench.distributed.collectives import barrier
from ltbench.distributed.world import World, env_world, setup, teardown
from ltbench.errors import CheckpointError, ConfigError, DataError, LTBenchError, StorageError, storage_error
from ltbench.evaluate import evaluate, feature_sample
from ltbench.method import DataInfo, Method
from ltbench.metrics import weight_norm_stats
from ltbench.models.backbones import build_backbone
from ltbench.models.heads import class_weight_matrix
from ltbench.records import (
    FEATURES_FILE,
    PREDICTIONS_FILE,
    RunLock,
    env_info,
    read_json,
    run_state,
    write_json_atomic,
    write_result,
)
from ltbench.registry import DATASETS, METHODS
from ltbench.resolve import Resolved, resolve
from ltbench.train.context import Context
from ltbench.train.progress import console
from ltbench.train.runtime import (
    CompileWatch,
    configure_threads,
    numerics,
    resolve_device,
    resolve_precision,
    seed_everything,
)
from ltbench.train.trackers import check_tracker, make_tracker
from ltbench.train.trainer import Diverged, Trainer


def load_data(cfg: RunConfig) -> LTData:
    spec = DataSpec(
        root=Path(cfg.data_root).expanduser() if cfg.data_root else None,
        imbalance_ratio=cfg.imbalance_ratio,
        class_counts=cfg.train_counts,
        profile=cfg.profile,
        subset=cfg.subset,
        val=cfg.val,
        image_size=cfg.image_size,
        workers=cfg.workers,
        decoder=cfg.decoder,
    )
    data = DATASETS.get(cfg.dataset)(spec)
    if cfg.mix_similar:
        from ltbench.data.similar import inject_similar

        data = inject_similar(data, cfg.mix_similar)
    if cfg.image_size is not None and not hasattr(data.train_x, "paths"):
        raise ConfigError(
            f"--image-size applies to file-backed datasets (imagenet_lt, places_lt, inat2018), not {cfg.dataset}"
        )
    return data


def check_counts(data: LTData, strict: bool, progress: bool) -> None:
    """Say (one line) when the available pool could not give some classes their requested counts; with
    ``--strict-counts`` that is an error. The capped classes are recorded in the data provenance either way."""
    prov = data.provenance or {}
    capped = prov.get("capped_classes") or []
    if not capped:
        return
    requested, got = prov["counts_requested"], prov["counts"]
    shown = ", ".join(f"{data.classes[c]} {got[c]}/{requested[c]}" for c in capped[:3])
    more = f" and {len(capped) - 3} more" if len(capped) > 3 else ""
    msg = (
        f"{len(capped)} of {data.num_classes} classes have fewer training images than requested "
        f"(got/requested: {shown}{more}); the pool of {prov.get('source_path', 'the data')} cannot give more"
    )
    if prov.get("counts_explicit"):  # counts the user wrote down are never silently capped
        raise DataError(msg + " — lower those classes' --class-counts")
    if strict:
        raise DataError(msg + " — rerun without --strict-counts to train on what is available")
    if progress:
        console(f"ltbench: note: {msg}; training on what is available (recorded; --strict-counts stops instead)")


def prepare(cfg: RunConfig) -> tuple[type[Method], Resolved]:
    """Validate names and hparams before any data is touched (fast, clear errors)."""
    method_cls = METHODS.get(cfg.method)
    if cfg.ssp:
        from ltbench.methods.ssp import with_ssp

        method_cls = with_ssp(method_cls)
    builder = DATASETS.get(cfg.dataset)
    resolved = resolve(cfg, method_cls, getattr(builder, "default_presets", ()))
    from ltbench.models.backbones import check_backbone

    check_backbone(resolved.backbone)
    check_tracker(cfg.tracker)
    return method_cls, resolved


def model_cost(model: torch.nn.Module, method: Method, image_shape: tuple[int, ...], device: torch.device) -> dict:
    """Parameters and FLOPs of one test-time forward pass on one image (RIDE's fairness concern)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    try:  # eagerly (a compiled backbone would compile once more for this one-image shape)
        with torch.no_grad(), FlopCounterMode(display=False) as counter, torch._dynamo.config.patch(disable=True):
            method.predict(model, torch.zeros((1, *image_shape), device=device))
        flops = counter.get_total_flops()
    finally:
        model.train(was_training)
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "gflops": flops / 1e9,
        "flops_note": "torch FlopCounterMode, 1 image, test-time forward; 1 MAC = 2 FLOPs",
    }


def data_record(data: LTData, shots: tuple[int, int]) -> dict:
    many, few = shots
    return {
        "name": data.name,
        "num_classes": data.num_classes,
        "classes": data.classes,
        "class_counts": data.class_counts,
        "train_size": len(data.train_y),
        "test_size": len(data.test_y),
        "val_size": 0 if data.val_y is None else len(data.val_y),
        "image_size": data.image_size,
        # what evaluation does to an image (ltbench.inference.Preprocess: load_run, predict, export)
        "preprocess": {
            "mean": list(data.mean),
            "std": list(data.std),
            "image_size": data.image_size,
            "resize": data.test_x.resize if hasattr(data.test_x, "paths") else None,
            "decoder": getattr(data.test_x, "decoder", None),
        },
        "shots": {"many": many, "few": few},
        "groups": shot_groups(data.class_counts, many, few),
        "provenance": data.provenance,
        "train_label_hash": index_hash(data.train_y.numpy()),
    }


def concrete(cfg: RunConfig, device: torch.device | None = None) -> RunConfig:
    """``cfg`` with ``precision="auto"`` replaced by what it means on ``device`` (default: this machine's), so
    the run id names the precision that ran (a run id never means fp32 on one machine and bf16 on another)."""
    if cfg.precision != "auto":
        return cfg
    device = device or resolve_device(cfg.device)
    return dataclasses.replace(cfg, precision=resolve_precision("auto", device))


def execute(cfg: RunConfig, progress: bool = True) -> dict:
    """Run (or resume, or report) one configuration; returns its result record."""
    cfg = concrete(cfg)
    run_dir = cfg.run_dir
    progress = progress and env_world().is_main  # one voice per run, not one per process
    if run_state(run_dir) == "done":
        if progress:
            console(f"ltbench: {run_dir} is already done (delete it to rerun)")
        return read_json(run_dir / "result.json")
    method_cls, resolved = prepare(cfg)
    if not env_world().is_main:  # the other ranks of a multi-process run: rank 0 holds the lock, writes the files
        return _execute_locked(cfg, method_cls, resolved, progress=False)
    lock = RunLock(run_dir)
    if not lock.acquire():
        raise LTBenchError(
            f"{run_dir} is being trained by another process (its run.lock is held); wait for it or stop that process"
        )
    try:
        return _execute_locked(cfg, method_cls, resolved, progress)
    finally:
        lock.release()
        if not (run_dir / "config.json").exists():  # refused before anything was written: leave no folder behind
            lock.path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                run_dir.rmdir()


def _execute_locked(cfg: RunConfig, method_cls: type[Method], resolved: Resolved, progress: bool) -> dict:
    run_dir = cfg.run_dir
    world, device = setup(resolve_device(cfg.device))
    precision = resolve_precision(cfg.precision, device)
    threads = configure_threads(cfg.threads)
    t_start = time.time()
    data = load_data(cfg)
    check_counts(data, cfg.strict_counts, progress)
    run_dir.mkdir(parents=True, exist_ok=True)
    base = {
        "run_id": cfg.run_id,
        "config": cfg.record(),
        "resolved": dataclasses.asdict(resolved),
        "run_dir": str(run_dir),
        **({"distributed": world.record()} if world.distributed else {}),
    }
    if world.is_main and not (run_dir / "config.json").exists():
        write_json_atomic(run_dir / "config.json", base)
    if progress:
        console(
            f"ltbench: {cfg.method} on {data.summary()}\n  run dir {run_dir} | backbone {resolved.backbone} | "
            f"{device.type} {precision} {threads} threads | scale {resolved.scale:g}"
            + (f" | {world.size} processes ({world.backend})" if world.distributed else "")
        )
    env = env_info(device.type, precision, threads)
    try:
        record = _train_and_evaluate(cfg, method_cls, resolved, data, device, precision, progress, world)
    except (StorageError, CheckpointError):
        raise  # not a failure of the run: it stays as it was (nothing rewritten) and resumes once fixed
    except (Diverged, Exception) as exc:
        if not world.is_main:
            raise  # torchrun stops the other ranks; rank 0 writes the failed record of its own error
        error = str(exc) if isinstance(exc, LTBenchError) else traceback.format_exc()
        write_result(
            run_dir, {**base, "status": "failed", "error": error, "env": env, "data": data_record(data, resolved.shots)}
        )
        raise
    if record is None:  # not rank 0: trained its share, rank 0 evaluates and writes
        return _finish(world, run_dir, None)
    record.update(base)
    record.update(status="done", error=None, env=env, data=data_record(data, resolved.shots))
    record["timing"]["wall_seconds"] = round(time.time() - t_start, 2)
    write_result(run_dir, record)
    return _finish(world, run_dir, record)


def _finish(world: World, run_dir: Path, record: dict | None) -> dict:
    """Every rank waits until rank 0 has written result.json, then leaves the process group; the other ranks return
    that record (so their exit status is the run's, as torchrun expects)."""
    barrier(world)
    teardown(world)
    return record if record is not None else read_json(run_dir / "result.json")


def _compile(model: torch.nn.Module) -> CompileWatch:
    """Compile what runs: the model's own feature extractor (for RIDE the multi-expert trunk, not the plain ResNet
    it was built from), in place (nn.Module.compile), so state_dict keys, checkpoints and attribute access are
    unchanged; static shapes (training batches drop_last, see Context.compiled). 35-65 s per model on CPU and not
    faster than eager channels_last there, so off by default. Returns the watch of this run's compiles."""
    # a fresh code cache: an in-process sweep's earlier runs would otherwise count against torch's recompile
    # limit (8 per frame), past which it falls back to eager without a word
    torch._dynamo.reset()
    watch = CompileWatch()  # this run's compiles, not the process's (an in-process sweep)
    model.backbone.compile(dynamic=False)
    return watch


def _train_and_evaluate(
    cfg: RunConfig,
    method_cls: type[Method],
    resolved: Resolved,
    data: LTData,
    device: torch.device,
    precision: str,
    progress: bool,
    world: World,
) -> dict | None:
    """Build, train, evaluate; the record of rank 0 (None on the other ranks of a multi-process run, which only
    train: evaluating on rank 0 alone keeps every evaluation path as it is, and costs one pass on one device)."""
    seed_everything(cfg.seed, cfg.deterministic)
    info = DataInfo(
        num_classes=data.num_classes,
        class_counts=list(data.class_counts),
        image_size=data.image_size,
        dataset=data.name,
        train_labels=data.train_y.to(device),
    )
    method = method_cls(dict(resolved.hp), info)
    backbone = build_backbone(resolved.backbone, data.image_size, resolved.pretrained)
    model = _place_model(method.build_model(backbone, data.num_classes, list(data.class_counts)), cfg, device, world)
    watch = _compile(model) if cfg.compile else None
    ctx = Context(data, device, precision, channels_last=True, compiled=cfg.compile)
    recipe = getattr(backbone, "recipe", None)
    if recipe:
        ctx.record("backbone_recipe", recipe)
    lrs = explicit_lrs(cfg, resolved)
    if cfg.from_run and world.is_main and not (cfg.run_dir / "ckpt.pt").exists():
        reuse_stages(cfg, method, resolved, data, precision, progress)  # the other ranks load what it wrote
    tracked = {"run_id": cfg.run_id, "config": dataclasses.asdict(cfg), "resolved": dataclasses.asdict(resolved)}
    kind = cfg.tracker if world.is_main else "none"
    tracker = make_tracker(kind, cfg.run_dir, cfg.run_id, tracked, cfg.sweep)
    try:
        trainer = Trainer(
            method, model, ctx, cfg.run_dir, cfg.seed, cfg.eval_every, progress, recipe, lrs, tracker, world
        )
        state = trainer.fit()
        if not world.is_main:
            return None
        ev = evaluate(method, model, ctx, resolved.shots)
        tracker.final(sum(s.epochs for s in trainer.stages), ev["metrics"])
    finally:
        tracker.close()
    sample = feature_sample(model, ctx, data.test_x, data.test_y)
    save_artifacts(cfg.run_dir, ev["test_logits"], data.test_y, sample)
    metrics = ev["metrics"]
    weight = class_weight_matrix(model.head)
    if weight is not None:
        metrics.update(weight_norm_stats(weight))
    if progress:
        print_summary(cfg, metrics)
    return {
        "metrics": metrics,
        "chosen_variant": ev["chosen"],
        "variants": ev["variants"],
        "val": ev["val"],
        "model": model_cost(model, method, tuple(data.test_x.shape[1:]), device),
        "timing": _timing(state.timing, device, world),
        "warnings": ctx.records.pop("warnings", []),
        "reused_from": ctx.records.pop("reused_from", None),
        "numerics": numerics(),
        "similarity": _similarity(sample, ev["test_logits"], data),
        **({"compile": watch.report()} if watch is not None else {}),
        "extras": ctx.records,
    }


def _place_model(model: torch.nn.Module, cfg: RunConfig, device: torch.device, world: World) -> torch.nn.Module:
    """The built model on its device, SyncBatchNorm where asked (multi-process runs), channels-last (faster
    convolutions on both CPU and GPU; the trainer's batches follow the same layout)."""
    model = model.to(device)
    if cfg.sync_bn:
        from ltbench.distributed.ddp import convert_sync_bn

        model = convert_sync_bn(model, device, world.size)
    return model.to(memory_format=torch.channels_last)


def _timing(stage_times: dict, device: torch.device, world: World) -> dict:
    """Per-stage images/s and the peak memory: the GPU allocator's peak on CUDA, the process's resident peak
    elsewhere. In a multi-process run the trainer's images/s count the global batch, so the per-device figure,
    the one scaling efficiency compares, is added."""
    stages = {
        name: {**t, "images_per_s": round(t["images"] / max(t["seconds"], 1e-9), 1)} for name, t in stage_times.items()
    }
    if world.distributed:
        for t in stages.values():
            t["images_per_s_per_device"] = round(t["images_per_s"] / world.size, 1)
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {"stages": stages, "peak_memory_mb": round(peak, 1)}


def explicit_lrs(cfg: RunConfig, resolved: Resolved) -> frozenset:
    """Learning rates the user set (typed values from the resolved hparams, not the --set strings): a backbone's
    recipe replaces default learning rates only."""
    return frozenset(resolved.hp[k] for k in cfg.hparams if k == "lr" or k.endswith("_lr"))


def reuse_stages(
    cfg: RunConfig, method: Method, resolved: Resolved, data: LTData, precision: str, progress: bool
) -> None:
    """``--from``: start this run at the end of the stages a finished run already trained identically."""
    from ltbench.train.reuse import adopt, common_identity, find_source, stage_signatures

    record = data_record(data, resolved.shots)
    common = common_identity(record, resolved.backbone, dataclasses.asdict(cfg), precision, resolved.pretrained)
    source, k, src_config, src_result = find_source(cfg.from_run, stage_signatures(method, common))
    reused = adopt(source, k, src_config, src_result, cfg.run_dir, method)
    if progress:
        console(
            f"ltbench: stage(s) {', '.join(reused['stages'])} taken from finished run {source} (identical settings)"
        )


def _similarity(sample: dict | None, logits: torch.Tensor, data: LTData) -> dict | None:
    """Class-pair similarity (ltbench/report/similarity.py) for datasets of up to 100 classes, else None."""
    from ltbench.report.similarity import MAX_CLASSES, class_similarity

    if sample is None or data.num_classes > MAX_CLASSES or sample["features"].dim() != 2:
        return None  # (RIDE's backbone gives one feature per expert: no single class mean)
    preds, labels = logits.argmax(1).numpy(), data.test_y.numpy()
    return class_similarity(sample["features"].numpy(), sample["labels"].numpy(), preds, labels, data.class_counts)


def save_artifacts(run_dir: Path, logits: torch.Tensor, labels: torch.Tensor, sample: dict | None) -> None:
    """predictions.npz (the reported test logits, float32, with their argmax and the labels: post-hoc
    adjustment, calibration, AUC and the confusion matrix need no rerun) and features.npz (a stratified test
    feature sample, for t-SNE), written before result.json so that ``done`` implies they exist."""
    import numpy as np

    logits = logits.float()
    preds = logits.argmax(1).int().numpy()
    try:
        np.savez_compressed(run_dir / PREDICTIONS_FILE, preds=preds, labels=labels.int().numpy(), logits=logits.numpy())
        if sample is not None:
            np.savez_compressed(run_dir / FEATURES_FILE, **{k: v.numpy() for k, v in sample.items()})
    except OSError as exc:
        raise storage_error(exc, run_dir / PREDICTIONS_FILE) from exc


def fmt_pct(v: float | None) -> str:
    return "n/a" if v is None or v != v else f"{100 * v:.2f}"


def print_summary(cfg: RunConfig, m: dict) -> None:
    from tabulate import tabulate

    rows = [[cfg.method, fmt_pct(m["many"]), fmt_pct(m["medium"]), fmt_pct(m["few"]), fmt_pct(m["overall"])]]
    heads = [
        "method",
        f"many ({m['many_classes']})",
        f"medium ({m['medium_classes']})",
        f"few ({m['few_classes']})",
        "overall",
    ]
    console(tabulate(rows, heads, tablefmt="github"), sys.stdout)

"""The method interface: a method declares, the trainer executes (docs/architecture.md §2).

A method never builds an optimizer, writes files or moves tensors to a device. It declares its
hyper-parameters (``HP``: default, source, sweep range), its ``Stage``s, how to build the model, the loss
of one training step, optional epoch hooks and an optional ``predict`` for post-hoc adjustments.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ltbench.train.context import Context


@dataclass(frozen=True)
class HP:
    """A declared hyper-parameter.

    ``source`` says where the default comes from (paper table, official config, or PROPOSAL), ``range``
    is the sweep distribution (``("log", lo, hi)``, ``("uniform", lo, hi)``, ``("int", lo, hi)`` or
    ``("choice", (a, b, ...))``) and ``epoch=True`` marks an epoch index that scales with the recipe
    (``--preset quick`` turns a DRW switch at 160/200 into 16/20); ``epoch="ft_epochs"`` ties an epoch value
    to another stage's length hparam, so two-stage recipes scale each stage on its own (1000 + 200 -> 20 + 20).
    """

    default: Any
    source: str
    range: tuple | None = None
    help: str = ""
    epoch: bool | str = False
    choices: tuple | None = None
    type: type | None = None

    @property
    def kind(self) -> type:
        if self.type is not None:
            return self.type
        return type(self.default) if self.default is not None else str


@dataclass(frozen=True)
class Stage:
    """One training stage of a run, built from resolved hparams (epoch values already scaled)."""

    name: str
    epochs: int
    lr: float
    batch_size: int
    optimizer: str = "sgd"  # sgd | adamw
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    no_decay_1d: bool = False  # no weight decay on biases and norm weights (AdamW convention)
    schedule: str = "step"  # step | cosine (per iteration) | cosine_epoch (classifier-balancing) | constant
    warmup_epochs: float = 0.0
    warmup_per_iter: bool = False  # per-iteration linear warm-up (contrastive/BNS) vs per-epoch (LDAM)
    warmup_start: float = 0.0  # lr factor at the start of a per-iteration warm-up
    milestones: tuple[tuple[float, float], ...] = ()  # (epoch, absolute lr factor) for "step"
    final_lr_factor: float = 0.0  # cosine floor as a fraction of lr
    # epochs at which a "cosine" schedule starts a new half cycle from the full lr and the optimizer's state
    # (momentum) is cleared, as a run that builds a new optimizer there (SBCL's moco/main.py at its phase switch)
    restarts: tuple[int, ...] = ()
    # the backbone's lr as a fraction of ``lr`` (a pretrained backbone fine-tuned slower than its new head: OLTR's
    # Places-LT stage 1, config/Places_LT/stage_1.py, feature model 0.001 vs classifier 0.1); 1 = one lr for all
    backbone_lr_factor: float = 1.0
    sampler: str = "instance"  # instance | class_balanced | class_aware | sqrt | reversed | subset
    # a second sampler in lock-step: every batch also carries ``batch["pair"]`` (x, y, index), as many images
    # drawn by this sampler (OTmix's class-balanced foregrounds, BBN's reversed branch); None: no pair
    pair_sampler: str | None = None
    # all | head (backbone frozen, BN in eval mode, checked bit-identical) | the name of one model attribute
    # that alone learns (e.g. "router": RIDE-EA; everything else frozen, in eval mode, checked bit-identical)
    trainable: str = "all"
    # head-only stages: the frozen backbone's BatchNorm in train mode (running statistics re-estimated on the
    # stage's batches, as classifier-balancing's cRT/LWS do) instead of eval mode; its weights stay frozen
    bn_train: bool = False
    reinit_head: bool = False
    views: int = 1
    transform: str = "standard"  # see ltbench.data.transforms.TRANSFORMS
    evaluate: bool = True  # False for stages without a classifier (contrastive pre-training)
    drop_last: bool = False
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        """The safety net behind ``resolve.check_ranges`` for values a method computes itself."""
        from ltbench.errors import ConfigError

        bad = []
        if self.epochs < 0:
            bad.append(f"epochs={self.epochs} (must be >= 0)")
        if not (self.lr >= 0 and self.lr != float("inf")):
            bad.append(f"lr={self.lr} (must be a finite number >= 0)")
        if self.batch_size < 1:
            bad.append(f"batch_size={self.batch_size} (must be >= 1)")
        if any(not 0 < r < self.epochs for r in self.restarts) or (self.restarts and self.schedule != "cosine"):
            bad.append(f"restarts={self.restarts} (epochs strictly inside the stage, with schedule='cosine')")
        if not 0 <= self.backbone_lr_factor < float("inf"):
            bad.append(f"backbone_lr_factor={self.backbone_lr_factor} (must be a finite number >= 0)")
        if self.pair_sampler not in (None, "instance", "class_balanced", "sqrt", "reversed"):
            bad.append(f"pair_sampler={self.pair_sampler!r} (one of instance, class_balanced, sqrt, reversed)")
        if bad:
            raise ConfigError(f"stage {self.name!r}: " + ", ".join(bad))


@dataclass
class DataInfo:
    """What a method may know about the data when it is built (never the test labels)."""

    num_classes: int
    class_counts: list[int]
    image_size: int
    dataset: str
    train_labels: Any = None  # LongTensor of training labels (SBCL, IP-DPP need class membership)


class Method(ABC):
    """Base class of all methods; subclasses set the class variables and override what they need.

    ``hp`` holds the resolved hyper-parameters (defaults, presets, ``--set`` overrides, epoch values
    already scaled), ``info`` what the method may know about the training data.
    """

    name: ClassVar[str] = ""  # set by ``@METHODS.register(name)``
    display_name: ClassVar[str] = ""  # as tables and figures print it (e.g. "LDAM-DRW"); read statically by the CLI
    paper: ClassVar[str] = ""
    hparams: ClassVar[dict[str, HP]] = {}
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    # Host synchronisations a training step is allowed, by the function that makes them, with the reason (the
    # GPU-path guard, tests/test_gpu_guards.py, fails on any other): e.g. TSC's Hungarian assignment on the host.
    step_syncs: ClassVar[dict[str, str]] = {}
    # a registered backbone name, or one per dataset ({"cifar100_lt": "resnet32_w2", "*": "resnet32"})
    default_backbone: ClassVar[str | dict[str, str]] = "resnet32"

    def __init__(self, hp: dict[str, Any], info: DataInfo) -> None:
        self.hp = hp
        self.info = info

    # ----------------------------------------------------------------------------------- declaration
    @abstractmethod
    def stages(self) -> list[Stage]:
        """The stages of one run, built from ``self.hp`` (epoch hparams are already scaled by presets)."""

    def build_model(self, backbone: nn.Module, num_classes: int, class_counts: list[int]) -> nn.Module:
        """Default: backbone + linear head (``model.backbone`` / ``model.head`` are trainer conventions)."""
        from ltbench.models.heads import linear_classifier

        return linear_classifier(backbone, num_classes)

    @abstractmethod
    def training_step(self, model: nn.Module, batch: dict, stage: Stage, epoch: int) -> dict:
        """Loss of one batch: returns a dict with a ``loss`` tensor; other tensor keys are logged."""

    # ----------------------------------------------------------------------------------- optional hooks
    def adapt_model(self, model: nn.Module, stage: Stage) -> None:
        """Structural changes a stage needs, e.g. a fresh head (cRT). Called at the stage's start and, on
        resume, for every stage up to the current one before the checkpoint's weights are loaded."""
        if stage.reinit_head:
            model.head = self.new_head(model).to(next(model.parameters()).device)

    def new_head(self, model: nn.Module) -> nn.Module:
        """A freshly initialised head for ``reinit_head`` stages (default: linear)."""
        from ltbench.models.heads import new_linear

        return new_linear(model.backbone.feature_dim, self.num_classes)

    def on_stage_start(self, stage: Stage, model: nn.Module, ctx: Context) -> None:
        """Called before the first epoch of a stage (also on resume)."""

    def on_epoch_start(self, stage: Stage, epoch: int, model: nn.Module, ctx: Context) -> None:
        """Called before every epoch: DRW switches, re-clustering, subset refresh."""

    def predict(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The test-time logits: the one declaration of them (issue #25). Evaluation (accuracy, ECE and every other
        probability metric), the stored ``predictions.npz``, ``load_run``/``export``, a distillation teacher and a
        method's own use of its probabilities (IP-DPP's p(y|x), OTmix's confusion) all call this, never ``model(x)``.

        They are the logits the training loss sees without its train-only adjustment (LDAM/KPS: s·cos without the
        margin; logit-adjusted loss: without +τ·log π), unless the paper predicts differently (τ-norm's rescaled
        head, RIDE's expert mean, post-hoc logit adjustment); tests/test_test_time_logits.py checks every method.
        Default: the model's output."""
        return model(x)

    def predict_variants(self, model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor] | None:
        """Several post-hoc predictions from one forward pass (e.g. the τ-norm curve), or None."""
        return None

    def eval_stats(self, model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor] | None:
        """Per-image statistics of the test-time prediction (e.g. experts used by RIDE's router); their
        test-set means go into the result's metrics. None: nothing to report."""
        return None

    def choose_variant(self, val_scores: dict[str, float] | None) -> str | None:
        """Which variant is the reported one: selected on validation data if given, never on test."""
        return None

    def stage_key(self, index: int) -> dict[str, Any]:
        """What defines stage ``index`` beyond its ``Stage`` fields (its loss and the hparams it reads), for
        ``--from``: a finished run's stages stand in for this run's first stages only if every Stage field and
        this key agree. Default: the method and all its hparams (reuse only from the same configuration);
        methods that share a stage with another method, or whose later stages read hparams the first does not,
        narrow it."""
        return {"method": self.name, "hp": self.hp}

    def state_dict(self) -> dict[str, Any]:
        """Mutable method state that must survive a resume (cluster labels, subsets, weights)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned (stateless methods have nothing to restore)."""

    # ----------------------------------------------------------------------------------- helpers
    @property
    def counts(self) -> list[int]:
        return self.info.class_counts

    @property
    def num_classes(self) -> int:
        return self.info.num_classes

"""The dataset registry entries: one ``(spec: DataSpec) -> LTData`` builder per name.

Imported by ``DATASETS`` on first lookup (``ltbench/registry.py``); it only imports the modules that
define the builders. The first docstring line of each entry is what ``ltbench list`` prints.
"""

from __future__ import annotations

from functools import partial

from ltbench.data import nominal
from ltbench.data.base import DataSpec, LTData
from ltbench.data.cifar import build_cifar_lt
from ltbench.data.digits import build_digits_lt
from ltbench.data.folder import build_folder_lt
from ltbench.data.synthetic import build_synthetic_lt
from ltbench.registry import DATASETS


@DATASETS.register("cifar10_lt")
def cifar10_lt(spec: DataSpec) -> LTData:
    """CIFAR-10-LT (default IR 100, 12,406 images): torchvision pickles or an image folder under --data-root.

    Protocol in docs/protocol.md §0.1: exp/step profile, ``ldam`` or ``first`` subset, val rule B holds out 100
    images per class.
    """
    return build_cifar_lt("cifar10", spec)


cifar10_lt.nominal = partial(nominal.cifar, "cifar10")  # what it looks like unread (--dry-run, load_run)


@DATASETS.register("cifar100_lt")
def cifar100_lt(spec: DataSpec) -> LTData:
    """CIFAR-100-LT (default IR 100, 10,847 images): torchvision pickles or an image folder under --data-root.

    Protocol in docs/protocol.md §0.1; val rule B holds out 20 images per class.
    """
    return build_cifar_lt("cifar100", spec)


cifar100_lt.nominal = partial(nominal.cifar, "cifar100")


@DATASETS.register("digits_lt")
def digits_lt(spec: DataSpec) -> LTData:
    """Long-tailed 8x8 digits bundled with scikit-learn (default IR 10, 527 images); the no-download default."""
    return build_digits_lt(spec)


# `ltbench run` with no arguments must finish in about a minute on a 2-core CPU (foundation issue):
# the embedded dataset runs every method's recipe with the quick preset unless --preset/--epochs is given,
# plus a method's own "digits" preset where it has one (recipes whose batch sizes assume 10k+ images).
digits_lt.default_presets = ("quick", "digits")
digits_lt.nominal = nominal.digits


@DATASETS.register("synthetic_lt")
def synthetic_lt(spec: DataSpec) -> LTData:
    """Tiny generated 16x16 stripe images (default IR 10, ~240 images) for tests; no files needed."""
    return build_synthetic_lt(spec)


synthetic_lt.nominal = nominal.synthetic


@DATASETS.register("imagenet_lt")
def imagenet_lt(spec: DataSpec) -> LTData:
    """ImageNet-LT (1,000 classes, 115.8k images, 1280..5 per class) from the OLTR split files under --data-root."""
    return build_folder_lt("imagenet_lt", spec)


imagenet_lt.nominal = partial(nominal.folder, "imagenet_lt")


@DATASETS.register("places_lt")
def places_lt(spec: DataSpec) -> LTData:
    """Places-LT (365 classes, 62.5k images, 4980..5 per class) from the OLTR split files under --data-root."""
    return build_folder_lt("places_lt", spec)


places_lt.nominal = partial(nominal.folder, "places_lt")


@DATASETS.register("inat2018")
def inat2018(spec: DataSpec) -> LTData:
    """iNaturalist 2018 (8,142 classes, 437.5k images; reported on val2018) from the competition JSON or txt lists."""
    return build_folder_lt("inat2018", spec)


inat2018.nominal = partial(nominal.folder, "inat2018")

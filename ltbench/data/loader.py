"""Device-resident mini-batches: samplers produce an epoch's index order, batches are gathered and
augmented on the training device. Nothing here loops over images in Python.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ltbench.data.base import LTData
from ltbench.data.files import FileImages
from ltbench.data.transforms import Transform, normalise
from ltbench.errors import ConfigError
from ltbench.losses.classic import effective_number

SAMPLERS = ("instance", "class_balanced", "class_aware", "sqrt", "reversed", "effective_number", "subset")
# Class-drawing samplers: class c is drawn with probability ∝ n_c ** power, then one of its images uniformly.
# class_balanced (docs/methods.md §13 "RS"; OTmix's second loader, weighted_alpha = 1, §14), sqrt (∝ √n_c), and
# BBN's reversed sampler (P_c ∝ n_max / n_c, lib/dataset/imbalance_cifar.py; §16.2).
CLASS_POWER = {"class_balanced": 0.0, "sqrt": 0.5, "reversed": -1.0}
# effective_number: every image weighted (1 − β)/(1 − β^{n_c}) with β = 0.9999, so class c is drawn
# ∝ n_c (1 − β)/(1 − β^{n_c}) (a 5,000-image class 1.27x as often as a 50-image one): the "Resample" sampler of the
# releases behind Liu & Liu's Table 1 (YyzHarry/imbalanced-semi-self utils.py and Haishen-ll/
# the-Essence-of-LT-Rocognition SSL-Pretrain/utils.py, ImbalancedDatasetSampler; docs/methods.md §13)
EFFECTIVE_NUMBER_BETA = 0.9999
CLASS_AWARE_PER_VISIT = 4  # classifier-balancing ClassAwareSampler num_samples_cls (config/*/cls_crt.yaml)


def epoch_order(
    sampler: str,
    labels: torch.Tensor,
    num_classes: int,
    gen: torch.Generator,
    subset: torch.Tensor | None = None,
    length: int | None = None,
) -> torch.Tensor:
    """Indices (into the training set) visited in one epoch.

    instance: a random permutation. class_balanced / sqrt / reversed: each draw picks a class with probability
    ∝ n_c ** CLASS_POWER[sampler] (effective_number: ∝ n_c (1 − β)/(1 − β^{n_c})), then one of its images
    uniformly, with replacement; they draw ``length``
    samples (default: as many as the training set has, so epochs have the same length). subset: a permutation
    of the current subset (IP-DPP swaps it between epochs).
    """
    dev = labels.device
    if sampler == "instance":
        return torch.randperm(len(labels), generator=gen, device=dev)
    if sampler == "class_aware":
        return class_aware_order(labels, num_classes, gen)
    if sampler == "subset":
        if subset is None:
            raise RuntimeError("subset sampler used before the method set a subset")
        return subset[torch.randperm(len(subset), generator=gen, device=dev)]
    if sampler == "effective_number":
        counts = torch.bincount(labels, minlength=num_classes)
        weights = effective_number_class_weights(counts, EFFECTIVE_NUMBER_BETA)
        return class_draw_order(labels, counts, gen, weights, length or len(labels))
    if sampler not in CLASS_POWER:
        raise ConfigError(f"unknown sampler {sampler!r}; known: {', '.join(SAMPLERS)}")
    return class_power_order(labels, num_classes, gen, CLASS_POWER[sampler], length or len(labels))


def class_weights(counts: torch.Tensor, power: float) -> torch.Tensor:
    """Unnormalised class-drawing weights n_c ** power over the classes present (absent classes 0); float64."""
    counts = counts.double()
    present = counts > 0
    if power == 0:
        return present.double()
    powered = counts.sqrt() if power == 0.5 else counts.clamp(min=1) ** power
    return torch.where(present, powered, torch.zeros_like(counts))


def effective_number_class_weights(counts: torch.Tensor, beta: float) -> torch.Tensor:
    """Unnormalised class-drawing weights n_c (1 − β)/(1 − β^{n_c}) (absent classes 0); float64: each image carries
    Cui et al.'s effective-number weight, as the releases' ImbalancedDatasetSampler draws (EFFECTIVE_NUMBER_BETA)."""
    counts = counts.double()
    per_image = (1.0 - beta) / effective_number(counts.clamp(min=1), beta)
    return torch.where(counts > 0, counts * per_image, torch.zeros_like(counts))


def class_probabilities(counts: torch.Tensor, power: float) -> torch.Tensor:
    """P(class c) under a class-drawing sampler (docs/methods.md §14.7 item 4, §16.8 item 1)."""
    weights = class_weights(counts, power)
    return weights / weights.sum()


def class_power_order(
    labels: torch.Tensor, num_classes: int, gen: torch.Generator, power: float, length: int
) -> torch.Tensor:
    """``length`` training indices: a class drawn with probability ∝ n_c ** power, then one of its images."""
    counts = torch.bincount(labels, minlength=num_classes)
    return class_draw_order(labels, counts, gen, class_weights(counts, power), length)


def class_draw_order(
    labels: torch.Tensor, counts: torch.Tensor, gen: torch.Generator, weights: torch.Tensor, length: int
) -> torch.Tensor:
    """``length`` training indices: a class drawn with probability ∝ ``weights``, then one of its images uniformly."""
    dev = labels.device
    cls = torch.multinomial(weights, length, replacement=True, generator=gen)
    by_class = torch.argsort(labels, stable=True)
    offsets = torch.cumsum(counts, 0) - counts
    within = (torch.rand(length, generator=gen, device=dev, dtype=torch.float64) * counts[cls]).long()
    return by_class[offsets[cls] + within]


def class_aware_order(
    labels: torch.Tensor, num_classes: int, gen: torch.Generator, per_visit: int = CLASS_AWARE_PER_VISIT
) -> torch.Tensor:
    """classifier-balancing's ClassAwareSampler (data/ClassAwareSampler.py), vectorised: an epoch of
    max_c(n_c) x C samples; classes are visited in a shuffled round-robin (reshuffled every full round), each
    visit takes ``per_visit`` consecutive images from that class's own cycle through its images (reshuffled
    every pass). Deliberate difference: the official iterators carry over from one epoch to the next; here each
    epoch starts them afresh from the epoch's seed, so an epoch (and a resumed run) is reproducible alone."""
    dev = labels.device
    counts = torch.bincount(labels, minlength=num_classes)
    present = torch.nonzero(counts).flatten()
    total = int(counts.max()) * len(present)
    visits = -(-total // per_visit)
    rounds = -(-visits // len(present))
    cls = torch.cat([present[torch.randperm(len(present), generator=gen, device=dev)] for _ in range(rounds)])[:visits]
    by_class = torch.argsort(labels, stable=True)
    offsets = torch.cumsum(counts, 0) - counts
    need = torch.bincount(cls, minlength=num_classes) * per_visit
    streams, starts, pos = [], torch.zeros(num_classes, dtype=torch.long, device=dev), 0
    for c in present.tolist():  # per epoch, not per step
        members = by_class[int(offsets[c]) : int(offsets[c] + counts[c])]
        passes = -(-int(need[c]) // len(members))
        perms = [members[torch.randperm(len(members), generator=gen, device=dev)] for _ in range(passes)]
        streams.append(torch.cat(perms)[: int(need[c])])
        starts[c], pos = pos, pos + int(need[c])
    stream = torch.cat(streams)
    sorted_cls, visit_order = torch.sort(cls, stable=True)
    rank = torch.empty_like(cls)
    first = torch.searchsorted(sorted_cls, sorted_cls, right=False)  # first visit of the same class
    rank[visit_order] = torch.arange(visits, device=dev) - first
    items = starts[cls][:, None] + per_visit * rank[:, None] + torch.arange(per_visit, device=dev)[None, :]
    return stream[items.flatten()][:total]


class DeviceBatches:
    """One epoch of batches from uint8 tensors already on the device.

    Each batch is a dict: ``x`` (normalised float images; a list of ``views`` tensors when views > 1),
    ``y`` (labels) and ``index`` (positions in the training set, needed by SBCL and IP-DPP).

    ``shard = (rank, world_size)`` (multi-process runs): ``order`` is the epoch's *global* order, the same on every
    rank; ``batch_size`` is the global batch, and rank r takes its slice r of each global batch (``tensor_split``,
    so slices differ by at most one image). The union of the ranks' batches is then exactly what one process with
    the global batch sees, for every sampler. A last global batch with fewer images than ranks is dropped.
    """

    def __init__(
        self,
        data: LTData,
        images: torch.Tensor,
        labels: torch.Tensor,
        order: torch.Tensor,
        batch_size: int,
        transform: Transform,
        gen: torch.Generator,
        views: int = 1,
        drop_last: bool = False,
        channels_last: bool = False,
        seed: int = 0,
        pair_order: torch.Tensor | None = None,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        self.data, self.images, self.labels, self.order = data, images, labels, order
        self.batch_size, self.transform, self.gen = batch_size, transform, gen
        self.views, self.drop_last, self.channels_last = views, drop_last, channels_last
        self.seed = seed  # file-backed images: per-batch crop seeds derive from it (not from ``gen``)
        # a second sample order in lock-step (Stage.pair_sampler): batch b also carries ``pair``, the images at
        # pair_order's chunk b (OTmix's class-balanced foregrounds, BBN's reversed batch)
        self.pair_order = pair_order
        self.rank, self.world = shard

    def __len__(self) -> int:
        n = len(self.order)
        if self.drop_last:
            return n // self.batch_size
        full, rest = divmod(n, self.batch_size)
        return full + (0 < rest and rest >= self.world)  # every rank needs at least one image of the last batch

    def global_size(self, b: int) -> int:
        """Images in global batch ``b`` (over all ranks): what throughput counts."""
        return min(self.batch_size, len(self.order) - b * self.batch_size)

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        x = self.transform(x, self.data, self.gen)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def __iter__(self) -> Iterator[dict]:
        return self.iterate(0)

    def iterate(self, start: int = 0) -> Iterator[dict]:
        """Batches ``start``, ``start + 1``, ... (a resumed epoch skips the steps already done; the caller
        restores the generator state of that moment, so the remaining batches are the ones it would have had)."""
        chunks = self._chunks(self.order, start)
        pairs = None
        if self.pair_order is not None:
            pair_chunks = self._chunks(self.pair_order, start)
            pairs = zip(pair_chunks, self._raws(pair_chunks, start, (1,)))
        for idx, raw in zip(chunks, self._raws(chunks, start)):
            xs = [self._prep(raw) for _ in range(self.views)]
            batch = {"x": xs[0] if self.views == 1 else xs, "y": self.labels[idx], "index": idx}
            if pairs is not None:
                pidx, praw = next(pairs)
                batch["pair"] = {"x": self._prep(praw), "y": self.labels[pidx], "index": pidx}
            yield batch

    def _chunks(self, order: torch.Tensor, start: int) -> list[torch.Tensor]:
        chunks = [order[b * self.batch_size : (b + 1) * self.batch_size] for b in range(start, len(self))]
        if self.world == 1:
            return chunks
        return [chunk.tensor_split(self.world)[self.rank] for chunk in chunks]

    def _raws(self, chunks: list[torch.Tensor], start: int, stream: tuple = ()) -> Iterator[torch.Tensor]:
        """uint8 images of each chunk; file-backed crops are seeded by (seed, batch, *stream)."""
        if isinstance(self.images, FileImages):  # decoded (and randomly cropped) by DataLoader workers
            if self.world > 1:  # each rank's slice of batch b gets its own crops (ints: hash() of str is salted)
                stream = (*stream, -1 - self.rank)
            seeds = [hash((self.seed, b, *stream)) & (2**62 - 1) for b in range(start, start + len(chunks))]
            dev = self.labels.device
            return (raw.to(dev, non_blocking=True) for raw in self.images.batches(chunks, seeds))
        return (self.images[idx] for idx in chunks)


def eval_batches(
    data: LTData, images: torch.Tensor, batch_size: int, channels_last: bool = False, device=None, pad: bool = False
) -> Iterator[torch.Tensor]:
    """Un-augmented, normalised batches in dataset order (evaluation and feature extraction).

    ``pad``: the last batch is filled up to ``batch_size`` with copies of its first image, so a compiled model
    sees one shape; the caller drops outputs beyond ``len(images)`` (they all come at the end)."""
    if isinstance(images, FileImages):  # centre crops decoded by workers, then moved to the device
        chunks = [torch.arange(s, min(s + batch_size, len(images))) for s in range(0, len(images), batch_size)]
        raws = (raw.to(device or "cpu") for raw in images.batches(chunks, None))
    else:
        raws = (images[start : start + batch_size] for start in range(0, len(images), batch_size))
    for raw in raws:
        if pad and len(raw) < batch_size:
            raw = torch.cat([raw, raw[:1].expand(batch_size - len(raw), *raw.shape[1:])])
        x = normalise(raw, data)
        yield x.contiguous(memory_format=torch.channels_last) if channels_last else x

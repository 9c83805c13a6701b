"""The long-tail protocol (docs/protocol.md §0.1, §0.3): counts, LDAM-exact subsets, shot groups, natural order."""

from __future__ import annotations

import numpy as np
import pytest

from ltbench.data.longtail import class_counts, index_hash, lt_split, natural_key, select_indices, shot_groups
from ltbench.errors import ConfigError, DataError

CIFAR10_IR100 = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]  # docs/protocol.md §0.1 item 4


def test_cifar_counts_match_the_protocol():
    assert class_counts(5000, 10, 100) == CIFAR10_IR100
    assert sum(class_counts(5000, 10, 100)) == 12_406
    c100 = class_counts(500, 100, 100)
    assert sum(c100) == 10_847
    assert c100[:12] == [500, 477, 455, 434, 415, 396, 378, 361, 344, 328, 314, 299]
    assert c100[-5:] == [6, 5, 5, 5, 5]


def test_counts_use_the_reference_formula_exactly():
    for n_max, c, ir in [(5000, 10, 100), (500, 100, 100), (500, 100, 50), (500, 100, 10), (130, 10, 10)]:
        ref = [int(n_max * (1 / ir) ** (k / (c - 1))) for k in range(c)]
        assert class_counts(n_max, c, ir) == ref


def test_step_profile_ir1_and_single_class():
    assert class_counts(5000, 10, 100, "step") == [5000] * 5 + [50] * 5
    assert class_counts(500, 5, 10, "step") == [500] * 2 + [50] * 3  # odd C: the tail gets the extra class
    assert class_counts(5000, 10, 1) == [5000] * 10
    assert class_counts(5000, 10, 1, "step") == [5000] * 10
    assert class_counts(7, 1, 100) == [7]


@pytest.mark.parametrize(
    "args, word",
    [
        ((5000, 10, 0.5), ">= 1"),
        ((5000, 10, float("nan")), ">= 1"),
        ((5000, 0, 100), "num_classes"),
        ((0, 10, 100), "n_max"),
        ((5000, 10, 100, "linear"), "exp | step"),
    ],
)
def test_bad_count_arguments_raise_config_errors(args, word):
    with pytest.raises(ConfigError, match=word):
        class_counts(*args)


def _ldam_reference(labels: np.ndarray, counts: list[int]) -> np.ndarray:
    """Independent re-implementation of the LDAM-DRW `gen_imbalanced_data` index selection."""
    rs = np.random.RandomState(0)  # the reference seeds the global RNG with 0; same stream, no global state
    out = []
    targets = np.array(labels)
    for the_class, the_img_num in zip(np.unique(targets), counts):
        idx = np.where(targets == the_class)[0]
        rs.shuffle(idx)
        out.extend(idx[:the_img_num].tolist())
    return np.array(out)


def test_ldam_rule_matches_the_reference_on_interleaved_labels():
    labels = np.tile(np.arange(10), 50)  # dataset order interleaves the classes, like the pickle batches
    counts = class_counts(50, 10, 10)
    got = select_indices(labels, counts, "ldam")
    assert np.array_equal(got, _ldam_reference(labels, counts))
    assert got.dtype == np.int64
    assert np.bincount(labels[got], minlength=10).tolist() == counts
    assert list(labels[got]) == sorted(labels[got])  # class 0's indices first


def test_ldam_rule_depends_only_on_within_class_positions():
    """The permutation depends on class sizes only, so it can be replayed on any layout of the same classes."""
    rng = np.random.default_rng(1)
    labels = rng.permutation(np.repeat(np.arange(5), 40))
    blocks = np.repeat(np.arange(5), 40)
    counts = [40, 20, 10, 5, 2]
    a, b = select_indices(labels, counts), select_indices(blocks, counts)
    for c in range(5):
        pos_a = np.searchsorted(np.flatnonzero(labels == c), a[labels[a] == c])
        pos_b = np.searchsorted(np.flatnonzero(blocks == c), b[blocks[b] == c])
        assert np.array_equal(pos_a, pos_b)


def test_first_rule_and_errors():
    labels = np.array([1, 0, 1, 0, 1, 0, 2])
    assert select_indices(labels, [2, 3, 1], "first").tolist() == [1, 3, 0, 2, 4, 6]
    with pytest.raises(DataError, match="class 2 has 1 images"):
        select_indices(labels, [1, 1, 2], "first")
    with pytest.raises(ConfigError, match="ldam | first"):
        select_indices(labels, [1, 1, 1], "random")


def test_lt_split_rule_b_holds_out_the_last_images_and_caps():
    labels = np.tile(np.arange(3), 10)  # 10 images per class, interleaved
    split = lt_split(labels, [10, 5, 2], "first", "B", 2)
    val_by_class = {c: split.val[labels[split.val] == c].tolist() for c in range(3)}
    assert val_by_class == {c: [24 + c, 27 + c] for c in range(3)}  # the last two of each class
    assert not set(split.val) & set(split.train)
    assert split.counts == [8, 5, 2] and split.capped == [0] and split.pool_sizes == [8, 8, 8]
    assert split.train.tolist() == [0, 3, 6, 9, 12, 15, 18, 21, 1, 4, 7, 10, 13, 2, 5]
    none = lt_split(labels, [10, 5, 2], "ldam", "none", 2)
    assert none.val is None and none.capped == [] and none.counts == [10, 5, 2]
    with pytest.raises(ConfigError, match="none | B"):
        lt_split(labels, [1, 1, 1], "ldam", "A", 2)
    with pytest.raises(DataError, match="rule B"):
        lt_split(labels, [1, 1, 1], "ldam", "B", 10)


def test_shot_groups_match_the_protocol():
    def sizes(groups: dict) -> tuple[int, int, int]:
        return len(groups["many"]), len(groups["medium"]), len(groups["few"])

    assert sizes(shot_groups(class_counts(500, 100, 100))) == (35, 35, 30)
    assert sizes(shot_groups(CIFAR10_IR100)) == (8, 2, 0)
    assert shot_groups(CIFAR10_IR100)["medium"] == [8, 9]
    assert sizes(shot_groups(CIFAR10_IR100, many=500, few=200)) == (5, 2, 3)
    assert shot_groups([101, 100, 20, 19]) == {"many": [0], "medium": [1, 2], "few": [3]}


def test_index_hash_is_short_stable_and_order_sensitive():
    h = index_hash(np.array([3, 1, 2]))
    assert h == index_hash([3, 1, 2]) and len(h) == 16
    assert h != index_hash([1, 2, 3])


def test_natural_sort_orders_numbers_by_value():
    names = ["x_10.png", "x_2.png", "x_1.png", "aeroplane_s_000021.webp", "aeroplane_s_000004.webp", "x_100.png"]
    assert sorted(names, key=natural_key) == [
        "aeroplane_s_000004.webp",
        "aeroplane_s_000021.webp",
        "x_1.png",
        "x_2.png",
        "x_10.png",
        "x_100.png",
    ]
    assert sorted(["a10b2", "a2b10", "a2b3", "A2b1"], key=natural_key) == ["A2b1", "a2b3", "a2b10", "a10b2"]

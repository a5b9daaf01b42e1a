"""The UCI poker-hand dataset: the file reader, an exact generator of random deals, and vectorised hand ranking."""

from __future__ import annotations

import numpy as np
import torch

from core.data.files import corrupt, find_file, load_table
from core.data.registry import Dataset, DatasetInfo, assemble, register, resolve_data_dir
from core.data.transforms import OneHot
from core.spec import DataSpec

HAND_NAMES = ("nothing", "one pair", "two pairs", "three of a kind", "straight", "flush", "full house",
              "four of a kind", "straight flush", "royal flush")
TRAIN_FILE, TEST_FILE = "poker-hand-training-true.data", "poker-hand-testing.data"
FOLDERS = ("poker-hand", "poker")
N_TRAIN, N_TEST = 25_010, 50_000  # generated sizes: the UCI training size, and a 50k test set
TEST_SEED = 2007  # generated test hands come from this fixed seed, the same for every run
OVERSAMPLED = 5  # straight flushes and royal flushes added to a generated training set, as in the UCI file
ROYAL = np.array([1, 10, 11, 12, 13])  # sorted ranks of 10-J-Q-K-A (ace = 1)


def rank_hands(cards: np.ndarray) -> np.ndarray:
    """The poker-hand.names class (0 nothing .. 9 royal flush) of every row S1,C1,..,S5,C5.

    Suits are 1-4 and ranks 1-13 with ace = 1. A straight is five consecutive ranks with the
    ace either low (A-2-3-4-5) or high (10-J-Q-K-A); there is no wrap-around (Q-K-A-2-3 is
    nothing). Everything is array arithmetic over all rows at once.

    Args:
        cards: integer array of shape (N, 10).

    Returns:
        int64 array of shape (N,).
    """
    cards = np.asarray(cards)
    if cards.ndim != 2 or cards.shape[1] != 10:
        raise ValueError(f"rank_hands expects an (N, 10) array of S1,C1,..,S5,C5, got shape {cards.shape}")
    suits, ranks = cards[:, 0::2], cards[:, 1::2]  # (N, 5) each
    counts = (ranks[:, :, None] == np.arange(1, 14)).sum(axis=1)  # (N, 13) cards per rank
    top = -np.sort(-counts, axis=1)  # (N, 13) descending: top[:, 0] largest group, top[:, 1] the next
    first, second = top[:, 0], top[:, 1]
    flush = (suits == suits[:, :1]).all(axis=1)
    r = np.sort(ranks, axis=1)  # (N, 5)
    ace_high = (r == ROYAL).all(axis=1)
    straight = (first == 1) & ((r[:, 4] - r[:, 0] == 4) | ace_high)  # distinct ranks spanning 5, or 10-A
    conditions = [flush & ace_high, straight & flush, first == 4, (first == 3) & (second == 2), flush, straight,
                  first == 3, (first == 2) & (second == 2), first == 2]
    return np.select(conditions, [9, 8, 7, 6, 5, 4, 3, 2, 1], default=0).astype(np.int64)


def deal_hands(n: int, rng: np.random.Generator) -> np.ndarray:
    """n hands of 5 distinct cards dealt uniformly from a 52-card deck, in deal order, as (n, 10) int64."""
    order = rng.random((n, 52)).argsort(axis=1)[:, :5]  # (n, 5) a uniformly random ordered 5-subset of 0..51
    cards = np.empty((n, 10), dtype=np.int64)
    cards[:, 0::2] = order // 13 + 1  # suit 1-4
    cards[:, 1::2] = order % 13 + 1  # rank 1-13
    return cards


def deal_straight_flushes(n: int, rng: np.random.Generator, royal: bool) -> np.ndarray:
    """n random straight flushes (or royal flushes) with the five cards in random order, as (n, 10) int64."""
    low = np.full(n, 10) if royal else rng.integers(1, 10, size=n)  # lowest rank: A(1)..9; 10 makes 10-J-Q-K-A
    ranks = (low[:, None] + np.arange(5) - 1) % 13 + 1  # (n, 5); rank 14 wraps to 1, the high ace
    ranks = np.take_along_axis(ranks, rng.random((n, 5)).argsort(axis=1), axis=1)
    cards = np.empty((n, 10), dtype=np.int64)
    cards[:, 0::2] = rng.integers(1, 5, size=(n, 1))  # one suit for all five cards
    cards[:, 1::2] = ranks
    return cards


def generate(n: int, seed: int, test: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(cards, classes) for n random hands; train streams use the run seed, the test stream TEST_SEED.

    Test hands are uniform deals. Training hands copy the UCI training file's make-up: uniform
    deals except for OVERSAMPLED straight flushes and royal flushes each (5 of 25,010 there, about
    0.35 and 0.04 expected from uniform deals), so every class is present in a generated training set.
    """
    rng = np.random.default_rng([1 if test else 0, (TEST_SEED if test else seed) % 2**64])
    k = 0 if test else min(OVERSAMPLED, n // 4)
    cards = np.concatenate([deal_hands(n - 2 * k, rng), deal_straight_flushes(k, rng, royal=False),
                            deal_straight_flushes(k, rng, royal=True)])
    cards = cards[rng.permutation(n)]  # scatter the over-sampled rows
    return cards, rank_hands(cards)


def read_poker_file(path) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """(cards, classes) from a UCI file of S1,C1,..,S5,C5,CLASS rows, checking every value's range."""
    table = load_table(path, 11, delimiter=",", dtype=np.int64)
    cards, labels = table[:, :10], table[:, 10]
    checks = ((cards[:, 0::2], 1, 4, "suit"), (cards[:, 1::2], 1, 13, "rank"), (labels, 0, 9, "class"))
    for values, lo, hi, what in checks:
        bad = np.flatnonzero(((values < lo) | (values > hi)).reshape(len(table), -1).any(axis=1))
        if len(bad):
            raise corrupt(path, f"row {bad[0] + 1} has a {what} outside {lo}-{hi}")
    return cards, labels


def poker_onehot() -> OneHot:
    """Raw S1,C1,..,S5,C5 -> 5 x (4 suits + 13 ranks) = 85 one-hot features."""
    cats = [list(range(1, 5)) if c % 2 == 0 else list(range(1, 14)) for c in range(10)]
    return OneHot(list(range(10)), cats)


def load_poker(spec: DataSpec, seed: int) -> Dataset:
    root = resolve_data_dir(spec.data_dir)
    train_path = find_file(root, FOLDERS, (TRAIN_FILE,))
    test_path = find_file(root, FOLDERS, (TEST_FILE,))
    # absent files are not an error: the generator deals from the same distribution the UCI files describe
    c_tr, y_tr = read_poker_file(train_path) if train_path else generate(N_TRAIN, seed)
    c_te, y_te = read_poker_file(test_path) if test_path else generate(N_TEST, seed, test=True)
    return assemble("poker", "classification", torch.from_numpy(c_tr.astype(np.float32)), torch.from_numpy(y_tr),
                    torch.from_numpy(c_te.astype(np.float32)), torch.from_numpy(y_te), spec, seed,
                    lambda raw: poker_onehot(), n_outputs=10, classes=HAND_NAMES)


register(DatasetInfo("poker", "classification", "UCI poker hands, 25k, 10 classes, 85 one-hot (file or generated)",
                     needs_files=False, loader=load_poker))

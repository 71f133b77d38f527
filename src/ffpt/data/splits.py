"""Reproducible splits and subsets of frame lists."""

from __future__ import annotations

from typing import Sequence, TypeVar

import numpy as np

T = TypeVar("T")


def split(items: Sequence[T], sizes: Sequence[int | float], seed: int = 0) -> tuple[list[T], ...]:
    """Shuffle with ``seed`` and cut into parts of the given sizes.

    Sizes are counts (int) or fractions (float, of ``len(items)``); the parts are disjoint.
    """
    n = len(items)
    counts = [int(round(s * n)) if isinstance(s, float) else int(s) for s in sizes]
    if sum(counts) > n:
        raise ValueError(f"split sizes {list(sizes)} need {sum(counts)} items, only {n} given")
    order = np.random.default_rng(seed).permutation(n)
    parts, start = [], 0
    for c in counts:
        parts.append([items[i] for i in order[start : start + c]])
        start += c
    return tuple(parts)


def subset(items: Sequence[T], n: int, seed: int = 0) -> list[T]:
    """``n`` items drawn without replacement with ``seed``; nested for growing ``n``."""
    return split(items, [n], seed)[0]

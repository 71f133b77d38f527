"""Which explored frames to label next: a window on the committee's disagreement, thinned.

For candidate frames with the committee's largest per-atom force spread ``s`` (eV/A):

1. **window**: keep ``lower <= s <= upper``. Below ``lower`` the committee agrees (nothing to learn);
   above ``upper`` the geometry is usually already unphysical (a broken run), a poor label to spend.
2. **time spacing**: within one run, frames closer than ``min_spacing_fs`` to an already kept frame
   are dropped, keeping the larger spread first (consecutive MD frames are near-duplicates).
3. **farthest point**: up to ``max_frames`` picks, each the candidate farthest (descriptor distance,
   :mod:`ffpt.observables.descriptors`) from everything labelled so far and picked before it; ties
   and the first pick go to the larger spread. Without it, the largest spreads are taken.

All steps are deterministic: the same candidates give the same picks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from ase import Atoms

from ffpt.observables.descriptors import descriptor_distance, inverse_distances


@dataclass(frozen=True)
class SelectionRule:
    """The selection of :mod:`ffpt.sampling.selection`. Units: eV/A, fs."""

    lower: float
    upper: float
    max_frames: int
    min_spacing_fs: float = 0.0
    farthest_point: bool = True

    def __post_init__(self):
        if not 0 <= self.lower < self.upper:
            raise ValueError(f"selection window needs 0 <= lower < upper (got {self.lower}, {self.upper})")
        if self.max_frames < 0 or self.min_spacing_fs < 0:
            raise ValueError(f"need max_frames >= 0 and min_spacing_fs >= 0 (got {self.max_frames}, "
                             f"{self.min_spacing_fs})")


@dataclass(frozen=True)
class Selection:
    """Picked candidate indices (in pick order) and how many candidates each step left."""

    picked: list[int]
    n_candidates: int
    n_below: int  # under the window: the committee agrees
    n_above: int  # over the window: likely unphysical
    n_spaced: int  # in the window and far enough apart in time

    def as_dict(self) -> dict:
        return {"picked": self.picked, "n_candidates": self.n_candidates, "n_below": self.n_below,
                "n_above": self.n_above, "n_in_window": self.n_candidates - self.n_below - self.n_above,
                "n_spaced": self.n_spaced}


def spaced_in_time(order: Sequence[int], runs: Sequence[str], times_fs: Sequence[float], spacing_fs: float) -> list[int]:
    """Candidates of ``order`` (best first) kept when no kept frame of the same run lies within
    ``spacing_fs`` (fs)."""
    kept: list[int] = []
    for i in order:
        if all(runs[k] != runs[i] or abs(times_fs[k] - times_fs[i]) >= spacing_fs for k in kept):
            kept.append(i)
    return kept


def farthest_points(candidates: Sequence[int], frames: Sequence[Atoms], spreads: Sequence[float], n: int,
                    reference: Sequence[Atoms] = ()) -> list[int]:
    """Up to ``n`` of ``candidates`` by farthest-point sampling from ``reference`` (see the module docstring)."""
    desc = {i: inverse_distances(frames[i]) for i in candidates}
    known = [inverse_distances(r) for r in reference]
    nearest = {i: min((descriptor_distance(desc[i], r) for r in known), default=np.inf) for i in candidates}
    picked: list[int] = []
    left = list(candidates)
    while left and len(picked) < n:
        best = max(left, key=lambda i: (nearest[i], spreads[i], -i))
        picked.append(best)
        left.remove(best)
        for i in left:
            nearest[i] = min(nearest[i], descriptor_distance(desc[i], desc[best]))
    return picked


def select_frames(frames: Sequence[Atoms], spreads: Sequence[float], runs: Sequence[str],
                  times_fs: Sequence[float], rule: SelectionRule, labelled: Sequence[Atoms] = ()) -> Selection:
    """Apply ``rule`` to candidate ``frames`` with their force spreads (eV/A), run names and times (fs);
    ``labelled`` frames count as picked already for the farthest-point step."""
    spreads = np.asarray(spreads, dtype=float)
    if not (len(frames) == len(spreads) == len(runs) == len(times_fs)):
        raise ValueError("frames, spreads, runs and times must have one entry per candidate")
    below = spreads < rule.lower
    above = spreads > rule.upper
    window = np.flatnonzero(~below & ~above)
    order = sorted(window.tolist(), key=lambda i: (-spreads[i], i))
    spaced = spaced_in_time(order, runs, times_fs, rule.min_spacing_fs)
    if rule.farthest_point:
        picked = farthest_points(spaced, frames, spreads, rule.max_frames, labelled)
    else:
        picked = spaced[: rule.max_frames]
    return Selection([int(i) for i in picked], len(frames), int(below.sum()), int(above.sum()), len(spaced))

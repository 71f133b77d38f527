"""Chemical species along a trajectory, from covalent connectivity.

Each frame is split into molecules (:func:`ffpt.data.molecule_indices`); each molecule is named
by its Hill formula (``"HO2"``, ``"H2O"``, ``"H"``). For a reaction channel such as
``"HO2 + H -> 2 OH"``, the final species tell whether the run stayed in the reactants, reached
the products or made something else, and frames holding species outside an allowed set are
flagged as unphysical. No plots here (see :mod:`ffpt.analysis.species`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from ase import Atoms

from ffpt.data.molecules import BOND_SCALE, hill_formula, species_formulas
from ffpt.systems.h2combustion import Reaction

def species_of(atoms: Atoms, scale: float = BOND_SCALE) -> Counter:
    """Molecule counts of one frame by Hill formula."""
    return Counter(formula for formula, _ in species_formulas(atoms, scale))


@dataclass(frozen=True)
class SpeciesTimeline:
    """Species counts per frame: ``counts[f, k]`` molecules of ``names[k]`` in frame ``f`` at ``time[f]`` (fs)."""

    time: np.ndarray
    names: tuple[str, ...]
    counts: np.ndarray

    @property
    def fractions(self) -> np.ndarray:
        """Fraction of the molecules of each frame that are of each species."""
        return self.counts / self.counts.sum(axis=1, keepdims=True)

    def frame_species(self, frame: int) -> Counter:
        return Counter({n: int(c) for n, c in zip(self.names, self.counts[frame]) if c})

    def unphysical(self, allowed: Iterable[str]) -> np.ndarray:
        """Per frame: True when it holds a species not in ``allowed`` (formulas, any spelling)."""
        allowed = {hill_formula(a) for a in allowed}
        outside = np.array([n not in allowed for n in self.names], dtype=bool)
        return (self.counts[:, outside] > 0).any(axis=1)


def species_timeline(frames: Sequence[Atoms], time=None, scale: float = BOND_SCALE) -> SpeciesTimeline:
    """Species of each frame; ``time`` (fs) defaults to ``info["time_fs"]`` (MD trajectories),
    ``info["time"]`` or the frame number."""
    if time is None:
        time = [a.info.get("time_fs", a.info.get("time", k)) for k, a in enumerate(frames)]
    per_frame = [species_of(a, scale) for a in frames]
    names = tuple(sorted(set().union(*per_frame), key=lambda n: (-sum(c[n] for c in per_frame), n)))
    counts = np.array([[c[n] for n in names] for c in per_frame], dtype=int).reshape(len(frames), len(names))
    return SpeciesTimeline(np.asarray(time, float), names, counts)


@dataclass(frozen=True)
class Outcome:
    """What a reactive run ended in: ``"reactants"``, ``"products"`` or ``"other"``."""

    label: str
    final_species: Counter
    unphysical_frames: int  # frames with species outside reactants, products and ``extra_allowed``


def identify_outcome(timeline: SpeciesTimeline, reaction: Reaction, extra_allowed: Iterable[str] = (),
                     last: int = 1) -> Outcome:
    """Classify a run by its species, requiring the same species in each of the ``last`` frames."""
    final = [timeline.frame_species(f) for f in range(len(timeline.time) - last, len(timeline.time))]
    label = "other"
    if all(c == reaction.reactants for c in final):
        label = "reactants"
    elif all(c == reaction.products for c in final):
        label = "products"
    allowed = reaction.allowed | {hill_formula(a) for a in extra_allowed}
    return Outcome(label, final[-1], int(timeline.unphysical(allowed).sum()))

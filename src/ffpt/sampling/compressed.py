"""Compressed-contact sampling: one atom pair of a molecule pushed closer than the seed has it.

Isolated-molecule MD and normal modes rarely bring two atoms closer than the force field's own
bonded minimum, so a network pre-trained on them can carry bonded attraction to short range (atom
collapse in reactive MD). Each frame here takes the seed, picks one pair of atoms of the same
molecule (a bonded pair, or, with ``nonbonded``, a non-bonded pair with equal chance when both
exist), and moves the two atoms along their axis (midpoint fixed) to ``f`` x their seed distance,
``f`` drawn uniformly from [``min_factor``, ``max_factor``]. Draws where any other pair ends up
closer than ``min_factor`` x its seed distance are redrawn, so the most compressed pair of every
frame lies in the asked range. Labels are the teacher's for the seed's bonding (single-molecule
force-field labels; UFF's bonds are harmonic, so they stay finite at these distances).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from ase import Atoms
from ase.geometry import get_distances

from ffpt.data.molecules import molecules
from ffpt.observables.pair_scan import at_distance
from ffpt.sampling.labelling import bind, draw_frames, label_positions
from ffpt.teachers.base import Teacher


def contact_pairs(reference: Atoms) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(bonded, non-bonded) atom pairs (i < j) of the same molecule of ``reference``."""
    bonded, nonbonded = [], []
    for molecule in molecules(reference):
        links = {(molecule.indices[a], molecule.indices[b]) for a, b in molecule.bonds}
        for a, i in enumerate(molecule.indices):
            for j in molecule.indices[a + 1:]:
                (bonded if (min(i, j), max(i, j)) in links else nonbonded).append((min(i, j), max(i, j)))
    return bonded, nonbonded


def compression_ratios(atoms: Atoms, seed: Atoms) -> np.ndarray:
    """Distance of every pair i < j in ``atoms`` over its distance in ``seed``."""
    _, d = get_distances(atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    _, d0 = get_distances(seed.positions, cell=seed.cell, pbc=seed.pbc)
    upper = np.triu_indices(len(atoms), 1)
    return d[upper] / d0[upper]


def compressed_frames(
    seed: Atoms,
    teacher: Teacher,
    n_frames: int,
    rng: np.random.Generator,
    *,
    reference: Atoms | None = None,
    min_factor: float = 0.5,
    max_factor: float = 0.9,
    nonbonded: bool = True,
    max_tries: int = 100,
    progress: Callable[[int], None] | None = None,
) -> list[Atoms]:
    """``n_frames`` labelled copies of ``seed`` with one intramolecular pair compressed (see module doc).

    ``reference``: the frame whose bonding the teacher keeps and that defines bonded pairs (default
    ``seed``); distances are compressed relative to ``seed``. Raises ``ValueError`` for a seed
    without a pair of bonded atoms or a bad factor range.
    """
    if not 0 < min_factor <= max_factor:
        raise ValueError(f"compressed: need 0 < min_factor <= max_factor (got {min_factor}, {max_factor})")
    reference = seed if reference is None else reference
    bonded, others = contact_pairs(reference)
    if not bonded:
        raise ValueError(f"compressed: seed {seed.get_chemical_formula()} has no bonded pair to compress")
    groups = [bonded] + ([others] if nonbonded and others else [])
    bound = bind(teacher, reference)
    provenance = teacher.info
    config_type = f"compressed_{min_factor:g}-{max_factor:g}"

    def draw() -> np.ndarray:
        for _ in range(max_tries):
            pairs = groups[rng.integers(len(groups))]
            i, j = pairs[rng.integers(len(pairs))]
            target = rng.uniform(min_factor, max_factor) * seed.get_distance(i, j, mic=True)
            moved = at_distance(seed, i, j, target)
            if compression_ratios(moved, seed).min() >= min_factor * (1 - 1e-9):
                return moved.positions
        raise RuntimeError(f"compressed: {max_tries} draws of {seed.get_chemical_formula()} pushed "
                           f"another pair below {min_factor} x its seed distance")

    return draw_frames(
        seed, draw, n_frames,
        lambda positions: label_positions(bound, seed, positions, config_type, provenance),
        factor=0.0,  # the pair compression is the point; the ratio check above bounds it
        progress=progress,
    )

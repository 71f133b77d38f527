"""Random Gaussian displacement sampling."""

from __future__ import annotations

from typing import Callable

import numpy as np
from ase import Atoms

from ffpt.sampling.labelling import OVERLAP, bind, draw_frames, label_positions
from ffpt.teachers.base import Teacher


def random_frames(
    seed: Atoms,
    teacher: Teacher,
    sigma: float,
    n_frames: int,
    rng: np.random.Generator,
    *,
    reference: Atoms | None = None,
    overlap: float = OVERLAP,
    progress: Callable[[int], None] | None = None,
) -> list[Atoms]:
    """``n_frames`` copies of ``seed`` with every Cartesian coordinate moved by N(0, ``sigma``^2) (A), labelled.

    Draws with two atoms closer than ``overlap`` x their covalent-radius sum are redrawn.
    """
    if sigma < 0 or n_frames < 0:
        raise ValueError(f"random: need sigma >= 0 and n_frames >= 0 (got {sigma}, {n_frames})")
    bound = bind(teacher, seed if reference is None else reference)
    config_type = f"random_s{sigma:g}"
    provenance = teacher.info
    return draw_frames(
        seed,
        lambda: seed.positions + rng.normal(scale=sigma, size=seed.positions.shape),
        n_frames,
        lambda positions: label_positions(bound, seed, positions, config_type, provenance),
        overlap,
        progress,
    )

"""Structure descriptors for comparing frames (pure functions, no model).

:func:`inverse_distances` is a "bag of bonds": for every element pair, the sorted inverse interatomic
distances (1/A). It does not change under translation, rotation or a permutation of like atoms, and
two frames of one composition are near-duplicates when their descriptors are close. Frames of
different compositions are never comparable (:func:`descriptor_distance` is infinite).
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.geometry import get_distances


def inverse_distances(atoms: Atoms) -> tuple[str, np.ndarray]:
    """(composition key, descriptor): sorted 1/r_ij (1/A) of each element pair, pairs in a fixed order;
    minimum-image distances in periodic cells."""
    symbols = np.array(atoms.get_chemical_symbols())
    _, d = get_distances(atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    i, j = np.triu_indices(len(atoms), k=1)
    pair = np.array(["-".join(sorted(p)) for p in zip(symbols[i], symbols[j])])
    inv = 1.0 / np.maximum(d[i, j], 1e-6)
    parts = [np.sort(inv[pair == name])[::-1] for name in sorted(set(pair.tolist()))]
    key = "".join(sorted(symbols.tolist())) + ("|pbc" if atoms.pbc.any() else "")
    return key, np.concatenate(parts) if parts else np.zeros(0)


def descriptor_distance(a: tuple[str, np.ndarray], b: tuple[str, np.ndarray]) -> float:
    """Euclidean distance of two :func:`inverse_distances` descriptors (1/A); infinite across compositions."""
    if a[0] != b[0] or a[1].shape != b[1].shape:
        return float("inf")
    return float(np.linalg.norm(a[1] - b[1]))

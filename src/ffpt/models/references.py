"""Per-element reference energies and the atomic energy scale, fitted to labelled frames."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from ase import Atoms

from ffpt.data.frames import energy_of, forces_of


def element_counts(frames: Sequence[Atoms], elements: Sequence[int]) -> np.ndarray:
    """(n_frames, n_elements) matrix of how many atoms of each element each frame has."""
    column = {z: k for k, z in enumerate(elements)}
    counts = np.zeros((len(frames), len(elements)))
    for f, atoms in enumerate(frames):
        for z in atoms.numbers:
            counts[f, column[int(z)]] += 1
    return counts


def fit_references(counts: np.ndarray, energies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares per-element energies (eV) with energies ~ counts @ refs.

    Returns (refs, present): elements absent from every frame get 0 and ``present`` False.
    Minimum-norm solution when element counts are collinear (e.g. only water).
    """
    present = counts.sum(axis=0) > 0
    refs = np.zeros(counts.shape[1])
    refs[present] = np.linalg.lstsq(counts[:, present], energies, rcond=None)[0]
    return refs, present


def force_rms(frames: Sequence[Atoms]) -> float:
    """Root mean square force component (eV/A) of the frames: the natural energy scale per atom."""
    f = np.concatenate([forces_of(a).ravel() for a in frames])
    return float(np.sqrt(np.mean(f**2))) if f.size else 1.0


def frame_energies(frames: Sequence[Atoms]) -> np.ndarray:
    return np.array([energy_of(a) for a in frames])

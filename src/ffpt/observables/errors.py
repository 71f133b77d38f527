"""Errors of model predictions against labelled frames (pure: no plots, see :mod:`ffpt.analysis.errors`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from ase import Atoms

from ffpt.data.frames import energy_of, forces_of
from ffpt.units import KCAL_PER_MOL


@dataclass(frozen=True)
class ErrorTable:
    """Errors of predictions: energies per atom in meV/atom, forces in meV/A (and kcal/mol)."""

    n_frames: int
    energy_mae_mev_per_atom: float
    energy_rmse_mev_per_atom: float
    forces_mae_mev_per_a: float
    forces_rmse_mev_per_a: float
    energy_mae_kcal_per_mol: float
    forces_mae_kcal_per_mol_per_a: float

    def as_dict(self) -> dict:
        return asdict(self)


def error_table(frames: Sequence[Atoms], energies: np.ndarray, forces: Sequence[np.ndarray]) -> ErrorTable:
    n_atoms = np.array([len(a) for a in frames])
    de = np.asarray(energies) - np.array([energy_of(a) for a in frames])
    df = np.concatenate([(f - forces_of(a)).ravel() for a, f in zip(frames, forces)])
    return ErrorTable(
        n_frames=len(frames),
        energy_mae_mev_per_atom=float(1e3 * np.mean(np.abs(de / n_atoms))),
        energy_rmse_mev_per_atom=float(1e3 * np.sqrt(np.mean((de / n_atoms) ** 2))),
        forces_mae_mev_per_a=float(1e3 * np.mean(np.abs(df))),
        forces_rmse_mev_per_a=float(1e3 * np.sqrt(np.mean(df**2))),
        energy_mae_kcal_per_mol=float(np.mean(np.abs(de)) / KCAL_PER_MOL),
        forces_mae_kcal_per_mol_per_a=float(np.mean(np.abs(df)) / KCAL_PER_MOL),
    )


def frame_errors(frames: Sequence[Atoms], energies: np.ndarray, forces: Sequence[np.ndarray]) -> dict[str, list[float]]:
    """Each frame's force MAE (meV/A, over its atoms' components) and absolute energy error per atom
    (meV/atom): what paired comparisons of two models on the same frames need."""
    return {
        "forces_mae_mev_per_a": [float(1e3 * np.mean(np.abs(f - forces_of(a)))) for a, f in zip(frames, forces)],
        "energy_abs_error_mev_per_atom": [float(1e3 * abs(e - energy_of(a)) / len(a))
                                          for a, e in zip(frames, np.asarray(energies))],
    }

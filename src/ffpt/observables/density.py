"""Mass density of periodic frames and its equilibrium average over NPT runs.

Units: g/cm^3 from atomic masses (amu) and the cell volume (A^3); times in fs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from ase import Atoms, units
from scipy import stats

G_CM3_PER_AMU_A3 = units._amu * 1e3 / 1e-24  # 1 amu/A^3 = 1.6605 g/cm^3


def mass_density(atoms: Atoms) -> float:
    """Mass density (g/cm^3) of a frame periodic in all three directions."""
    if not atoms.pbc.all():
        raise ValueError("mass density needs a cell periodic in all three directions")
    return float(atoms.get_masses().sum() / atoms.get_volume() * G_CM3_PER_AMU_A3)


@dataclass(frozen=True)
class RunDensity:
    """One NPT run: its saved frames' times (fs) and densities (g/cm^3)."""

    time_fs: list[float]
    density: list[float]

    @classmethod
    def of(cls, frames: list[Atoms]) -> RunDensity:
        return cls([float(f.info["time_fs"]) for f in frames], [mass_density(f) for f in frames])

    def equilibrium_mean(self, from_fs: float) -> float | None:
        """Mean density of the frames at ``from_fs`` or later (None when the run ended before)."""
        kept = [d for t, d in zip(self.time_fs, self.density) if t >= from_fs]
        return float(np.mean(kept)) if kept else None


@dataclass(frozen=True)
class DensitySummary:
    """Equilibrium density of an arm: each run's mean after ``from_fs``, their mean and the 95 %
    Student-t interval over runs (runs are independent; frames within a run are not)."""

    from_fs: float
    run_means: list[float]
    n_ended_before: int  # runs that stopped (failed) before ``from_fs``: no equilibrium density
    mean: float | None
    ci95: list[float] | None

    def as_dict(self) -> dict:
        return asdict(self)


def summarize_density(runs: list[RunDensity], from_fs: float) -> DensitySummary:
    """Equilibrium density over ``runs``, each averaged from ``from_fs`` on."""
    means = [m for run in runs if (m := run.equilibrium_mean(from_fs)) is not None]
    mean = float(np.mean(means)) if means else None
    ci95 = None
    if len(means) > 1:
        half = stats.t.ppf(0.975, len(means) - 1) * stats.sem(means)
        ci95 = [mean - half, mean + half]
    return DensitySummary(from_fs, means, len(runs) - len(means), mean, ci95)

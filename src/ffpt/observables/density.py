"""Mass density of periodic frames, its equilibrium average over NPT runs and whether it has plateaued.

Units: g/cm^3 from atomic masses (amu) and the cell volume (A^3); times in fs, drifts in g/cm^3 per ps.

Plateau test (:meth:`RunDensity.plateau`): the analysed window of a run is cut into ``n_blocks``
blocks of consecutive frames; a straight line through the block means against the blocks' mean times
gives the drift and its Student-t 95 % interval (``n_blocks - 2`` degrees of freedom). The run has
plateaued when that whole interval lies within +-``tolerance``: the drift is shown to be small, not
merely not shown to be large (a short noisy run does not pass). Block means are independent only when
blocks are much longer than the density's correlation time, which the intervals assume.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from ase import Atoms, units
from scipy import stats

G_CM3_PER_AMU_A3 = units._amu * 1e3 / 1e-24  # 1 amu/A^3 = 1.6605 g/cm^3
PLATEAU_TOLERANCE = 0.01  # g/cm^3 per ps: the largest drift a plateaued density may have
N_BLOCKS = 5  # blocks of the analysed window (block averaging)


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

    def plateau(self, from_fs: float, tolerance: float = PLATEAU_TOLERANCE,
                n_blocks: int = N_BLOCKS) -> Plateau | None:
        """The plateau test (module docstring) of the frames at ``from_fs`` or later; ``None`` when
        fewer than ``n_blocks`` frames are left (``n_blocks`` >= 3, ``tolerance`` g/cm^3 per ps)."""
        if n_blocks < 3 or not tolerance > 0:
            raise ValueError(f"plateau test: need n_blocks >= 3 and tolerance > 0 (got {n_blocks}, {tolerance})")
        time = np.asarray(self.time_fs, dtype=float)
        keep = time >= from_fs
        time, density = time[keep], np.asarray(self.density, dtype=float)[keep]
        if len(time) < n_blocks:
            return None
        blocks = np.array_split(np.arange(len(time)), n_blocks)
        block_ps = np.array([time[b].mean() for b in blocks]) / 1000
        means = np.array([density[b].mean() for b in blocks])
        mean = float(means.mean())
        half = float(stats.t.ppf(0.975, n_blocks - 1) * means.std(ddof=1) / np.sqrt(n_blocks))
        fit = stats.linregress(block_ps, means)
        slope_half = float(stats.t.ppf(0.975, n_blocks - 2) * fit.stderr)
        slope_ci95 = [float(fit.slope) - slope_half, float(fit.slope) + slope_half]
        return Plateau(from_fs, len(time), n_blocks, mean, [mean - half, mean + half], float(fit.slope),
                       slope_ci95, tolerance, bool(max(abs(v) for v in slope_ci95) <= tolerance))


@dataclass(frozen=True)
class Plateau:
    """One run's plateau test (module docstring) over its ``n_frames`` frames from ``from_fs`` on:
    the mean density and its block-averaged 95 % t interval (g/cm^3), the drift (g/cm^3 per ps) with
    its 95 % interval, and ``plateau``: that interval lies within +-``tolerance``."""

    from_fs: float
    n_frames: int
    n_blocks: int
    mean: float
    ci95: list[float]
    drift: float
    drift_ci95: list[float]
    tolerance: float
    plateau: bool


@dataclass(frozen=True)
class DensitySummary:
    """Equilibrium density of an arm: each run's mean after ``from_fs``, their mean and the 95 %
    Student-t interval over runs (runs are independent; frames within a run are not).

    Plateau: ``run_plateaus`` holds each run's own test (runs with at least ``n_blocks`` frames after
    ``from_fs``); ``drift`` is the mean of their drifts (g/cm^3 per ps) with its t interval over runs
    (one run: that run's own interval), and ``plateau`` says whether that interval lies within
    +-``plateau_tolerance`` (``None``: no run to test)."""

    from_fs: float
    run_means: list[float]
    n_ended_before: int  # runs that stopped (failed) before ``from_fs``: no equilibrium density
    mean: float | None
    ci95: list[float] | None
    plateau_tolerance: float
    run_plateaus: list[Plateau]
    runs_plateaued: int  # runs whose own test passes
    drift: float | None
    drift_ci95: list[float] | None
    plateau: bool | None

    def as_dict(self) -> dict:
        return asdict(self)


def _t_interval(values: list[float]) -> tuple[float | None, list[float] | None]:
    """Mean of ``values`` and its 95 % Student-t interval (``None`` for fewer than two values)."""
    if not values:
        return None, None
    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, None
    half = float(stats.t.ppf(0.975, len(values) - 1) * stats.sem(values))
    return mean, [mean - half, mean + half]


def summarize_density(runs: list[RunDensity], from_fs: float, tolerance: float = PLATEAU_TOLERANCE,
                      n_blocks: int = N_BLOCKS) -> DensitySummary:
    """Equilibrium density over ``runs``, each averaged from ``from_fs`` on, with the plateau test
    (``tolerance`` g/cm^3 per ps, ``n_blocks`` blocks per run)."""
    means = [m for run in runs if (m := run.equilibrium_mean(from_fs)) is not None]
    mean, ci95 = _t_interval(means)
    tests = [p for run in runs if (p := run.plateau(from_fs, tolerance, n_blocks)) is not None]
    drift, drift_ci95 = _t_interval([p.drift for p in tests])
    if len(tests) == 1:
        drift_ci95 = tests[0].drift_ci95
    plateau = None if drift_ci95 is None else bool(max(abs(v) for v in drift_ci95) <= tolerance)
    return DensitySummary(from_fs, means, len(runs) - len(means), mean, ci95, tolerance, tests,
                          sum(p.plateau for p in tests), drift, drift_ci95, plateau)

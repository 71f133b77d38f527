"""Survival (time-to-failure) statistics of MD runs: Kaplan-Meier curve, median, plot.

A run that stayed stable to its end is right-censored at its simulated time, so runs of
different lengths combine correctly (scipy.stats.ecdf on censored data).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class SurvivalCurve:
    """Fraction of runs still stable after ``time_fs`` (step function, starts at (0, 1))."""

    time_fs: np.ndarray
    fraction_stable: np.ndarray
    median_fs: float | None  # first time the fraction drops to <= 0.5; None if it never does
    n_runs: int
    n_failed: int

    def at(self, t_fs: float) -> float:
        """Fraction stable at time ``t_fs`` (fs)."""
        k = np.searchsorted(self.time_fs, t_fs, side="right") - 1
        return float(self.fraction_stable[max(k, 0)])

    def as_dict(self) -> dict:
        return {
            "time_fs": self.time_fs.tolist(),
            "fraction_stable": self.fraction_stable.tolist(),
            "median_fs": self.median_fs,
            "n_runs": self.n_runs,
            "n_failed": self.n_failed,
        }


def survival_curve(times_fs: Sequence[float], failed: Sequence[bool]) -> SurvivalCurve:
    """Kaplan-Meier survival from per-run times (fs): failure times, or the end of stable runs."""
    from scipy.stats import CensoredData, ecdf

    times = np.asarray(times_fs, dtype=float)
    failed = np.asarray(failed, dtype=bool)
    if times.ndim != 1 or times.shape != failed.shape or len(times) == 0:
        raise ValueError(f"need equal, non-empty lists of times and flags (got {times.shape} and {failed.shape})")
    if np.any(times < 0) or not np.all(np.isfinite(times)):
        raise ValueError("times must be finite and >= 0 fs")
    sf = ecdf(CensoredData(uncensored=times[failed], right=times[~failed])).sf
    t = np.concatenate([[0.0], sf.quantiles])
    s = np.concatenate([[1.0], sf.probabilities])
    below = np.flatnonzero(s <= 0.5)
    median = float(t[below[0]]) if below.size else None
    return SurvivalCurve(t, s, median, len(times), int(failed.sum()))


def plot_survival(curves: dict[str, SurvivalCurve], path: str | os.PathLike, title: str | None = None) -> Path:
    """Fraction of stable runs versus time (ps), one step line per label; PNG."""
    from ffpt.analysis.plotting import pyplot, save_figure

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, curve in curves.items():
        ax.step(curve.time_fs / 1000.0, curve.fraction_stable, where="post",
                label=f"{label} ({curve.n_runs - curve.n_failed}/{curve.n_runs} stable)")
    ax.set_xlabel("time (ps)")
    ax.set_ylabel("fraction stable")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return save_figure(fig, path)

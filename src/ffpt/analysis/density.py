"""Plot of the mass density of NPT runs against time (the densities: :mod:`ffpt.observables.density`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ffpt.observables.density import RunDensity


def plot_density(runs_by_arm: dict[str, list[RunDensity]], path: str | os.PathLike, title: str,
                 from_fs: float, reference: float | None = None, reference_label: str = "reference") -> Path:
    """Density (g/cm^3) against time (ps): every run a thin line, each arm's equilibrium mean (from
    ``from_fs`` on) a dashed line, the averaging window shaded, ``reference`` drawn grey."""
    from ffpt.analysis.plotting import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.axvspan(from_fs / 1000, max((r.time_fs[-1] for runs in runs_by_arm.values() for r in runs if r.time_fs),
                                   default=from_fs) / 1000, color="0.93", label="averaged")
    for k, (arm, runs) in enumerate(runs_by_arm.items()):
        color = f"C{k}"
        for i, run in enumerate(runs):
            ax.plot(np.asarray(run.time_fs) / 1000, run.density, color=color, lw=0.7, alpha=0.6,
                    label=f"{arm} ({len(runs)} runs)" if i == 0 else None)
        means = [m for r in runs if (m := r.equilibrium_mean(from_fs)) is not None]
        if means:
            ax.axhline(float(np.mean(means)), color=color, ls="--", lw=1.5, label=f"{arm} mean {np.mean(means):.3f}")
    if reference is not None:
        ax.axhline(reference, color="0.3", lw=1.5, label=f"{reference_label} {reference:.3f}")
    ax.set_xlabel("time (ps)")
    ax.set_ylabel("density (g/cm$^3$)")
    ax.legend(fontsize="small")
    return save_figure(fig, path, title)

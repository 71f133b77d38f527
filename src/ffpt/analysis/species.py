"""Plot of chemical species along a trajectory (the species themselves: :mod:`ffpt.observables.species`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ffpt.observables.species import SpeciesTimeline


def plot_species(timeline: SpeciesTimeline, path: str | os.PathLike, *, title: str | None = None,
                 unphysical: np.ndarray | None = None) -> Path:
    """PNG of species fractions vs time (ps); frames flagged ``unphysical`` are shaded."""
    from ffpt.analysis.plotting import pyplot, save_figure

    plt = pyplot()

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t = timeline.time / 1000.0
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for k, name in enumerate(timeline.names):
        ax.plot(t, timeline.fractions[:, k], lw=1.2, label=name)
    if unphysical is not None and np.any(unphysical):
        ax.fill_between(t, 0, 1, where=np.asarray(unphysical), color="red", alpha=0.15, step="mid",
                        label="unphysical")
    ax.set_xlabel("time (ps)")
    ax.set_ylabel("fraction of molecules")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7, ncol=2)
    return save_figure(fig, path, title)

"""Plots of partial radial distribution functions (the RDFs themselves: :mod:`ffpt.observables.rdf`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from ase.data import atomic_numbers

from ffpt.observables.rdf import RDF

CLIP_RATIO = 4.0  # a first peak this many times taller than everything beyond it is clipped


def clipped_height(curves: list[np.ndarray]) -> float | None:
    """y-limit that shows the peaks beyond the first one when the first (a bond: O-H at 1 A, 60 high)
    would flatten them (the hydrogen-bond peak at 1.8 A, 1.5 high): 1.3 x the tallest point past the
    first minimum after the first peak, over all curves; ``None`` when the first peak is not
    ``CLIP_RATIO`` times taller."""
    peak, rest = 0.0, 0.0
    for g in curves:
        g = np.asarray(g, dtype=float)
        top = int(np.argmax(g))
        after = top + 1
        while after < len(g) - 1 and g[after + 1] <= g[after]:
            after += 1
        peak = max(peak, float(g[top]))
        rest = max(rest, float(g[after:].max()) if after < len(g) else 0.0)
    return 1.3 * rest if rest > 0 and peak > CLIP_RATIO * rest else None


def plot_rdf(rdfs: dict[str, RDF], path: str | os.PathLike, title: str | None = None) -> Path:
    """One panel per element pair, one line per labelled RDF; a first peak that would flatten the
    others (a bond) is clipped (:func:`clipped_height`) and its height written in the panel; PNG."""
    from ffpt.analysis.plotting import pyplot, save_figure

    plt = pyplot()

    names = sorted(
        {name for rdf in rdfs.values() for name in rdf.g},
        key=lambda n: [-atomic_numbers[s] for s in n.split("-")],
    )
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        curves = [(label, rdf) for label, rdf in rdfs.items() if name in rdf.g]
        for label, rdf in curves:
            ax.plot(rdf.r, rdf.g[name], label=label)
        top = clipped_height([rdf.g[name] for _, rdf in curves])
        if top is not None:
            peak = max(float(np.max(rdf.g[name])) for _, rdf in curves)
            ax.set_ylim(0.0, top)
            ax.text(0.98, 0.95, f"first peak {peak:.0f}, clipped", transform=ax.transAxes, ha="right",
                    va="top", fontsize="small")
        ax.set_xlabel("r (Å)")
        ax.set_ylabel(f"g$_{{{name}}}$(r)")
        ax.axhline(1.0, color="grey", lw=0.5)
    axes[0][0].legend(fontsize="small")
    return save_figure(fig, path, title)

"""Plots of partial radial distribution functions (the RDFs themselves: :mod:`ffpt.observables.rdf`)."""

from __future__ import annotations

import os
from pathlib import Path

from ase.data import atomic_numbers

from ffpt.observables.rdf import RDF


def plot_rdf(rdfs: dict[str, RDF], path: str | os.PathLike, title: str | None = None) -> Path:
    """One panel per element pair, one line per labelled RDF; PNG."""
    from ffpt.analysis.plotting import pyplot, save_figure

    plt = pyplot()

    names = sorted(
        {name for rdf in rdfs.values() for name in rdf.g},
        key=lambda n: [-atomic_numbers[s] for s in n.split("-")],
    )
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        for label, rdf in rdfs.items():
            if name in rdf.g:
                ax.plot(rdf.r, rdf.g[name], label=label)
        ax.set_xlabel("r (Å)")
        ax.set_ylabel(f"g$_{{{name}}}$(r)")
        ax.axhline(1.0, color="grey", lw=0.5)
    axes[0][0].legend(fontsize="small")
    return save_figure(fig, path, title)

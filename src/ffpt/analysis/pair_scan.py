"""Plot pair-energy scans (:mod:`ffpt.observables.pair_scan`): energy and radial force against
distance, several calculators on one panel each.

Calculators differ in their energy zero (a force field's strain energy, a model's energy relative
to free atoms), so each curve is drawn relative to its own value at the largest distance scanned.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath
from typing import Literal, Sequence

import numpy as np

from ffpt.analysis.plotting import pyplot, save_figure
from ffpt.observables.pair_scan import PairScan
from ffpt.units import KCAL_PER_MOL

UNITS = {"eV": 1.0, "kcal/mol": KCAL_PER_MOL}  # eV per unit


def legend_labels(names: Sequence[str]) -> list[str]:
    """Calculator names for a legend: model paths lose the leading and trailing folders they all share
    (``runs/x/ffpt-ft_n100/model/model.pt`` and ``runs/x/scratch_n100/model/model.pt`` become
    ``ffpt-ft_n100`` and ``scratch_n100``); teacher names and a lone path stay as they are."""
    paths = [PurePath(name).parts for name in names if len(PurePath(name).parts) > 1]
    if len(paths) < 2:
        return list(names)
    lead = len(os.path.commonprefix(paths))
    tail = len(os.path.commonprefix([parts[::-1] for parts in paths]))
    labels = []
    for name in names:
        parts = PurePath(name).parts
        if len(parts) > 1:
            middle = parts[lead:len(parts) - tail]
            name = "/".join(middle) if middle else parts[-1]
        labels.append(name)
    return labels


def plot_pair_scans(
    scans: Sequence[PairScan],
    path: str | os.PathLike,
    title: str,
    units: Literal["eV", "kcal/mol"] = "eV",
    energy_limit: float | None = None,
) -> Path:
    """Two panels (energy, radial force) of every scan against distance (A), written as PNG to ``path``.

    ``energy_limit``: clip the energy axis at this many ``units`` above the curves' zero (the
    repulsive wall can be orders of magnitude above the well); default: no clipping.
    """
    scale = UNITS[units]
    plt = pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.0, 6.5), sharex=True)
    for scan, label in zip(scans, legend_labels([scan.name for scan in scans])):
        energy = (scan.energies - scan.energies[np.argmax(scan.distances)]) / scale
        top.plot(scan.distances, energy, marker=".", label=label)
        bottom.plot(scan.distances, scan.radial_forces / scale, marker=".", label=label)
    top.axhline(0.0, color="grey", lw=0.5)
    bottom.axhline(0.0, color="grey", lw=0.5)
    if energy_limit is not None:
        top.set_ylim(top=energy_limit)
    top.set_ylabel(f"E(r) - E(r_max) ({units})")
    bottom.set_ylabel(f"radial force ({units}/Å), > 0 repels")
    bottom.set_xlabel("pair distance r (Å)")
    top.legend(fontsize="small")
    return save_figure(fig, path, title=title)

"""Parity plots of a model against labelled frames (the error table: :mod:`ffpt.observables.errors`)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms

from ffpt.data.frames import energy_of, forces_of
from ffpt.observables.errors import error_table


def parity_plot(
    frames: Sequence[Atoms], energies: np.ndarray, forces: Sequence[np.ndarray], path: str | Path, title: str = ""
) -> Path:
    """Two panels: energy per atom (eV/atom) and force components (eV/A), predicted vs reference."""
    from ffpt.analysis.plotting import pyplot, save_figure

    plt = pyplot()

    n_atoms = np.array([len(a) for a in frames])
    e_ref = np.array([energy_of(a) for a in frames]) / n_atoms
    e_pred = np.asarray(energies) / n_atoms
    shift = e_ref.mean()  # energies per atom relative to the reference mean, meV/atom
    e_ref, e_pred = 1e3 * (e_ref - shift), 1e3 * (e_pred - shift)
    f_ref = np.concatenate([forces_of(a).ravel() for a in frames])
    f_pred = np.concatenate([np.ravel(f) for f in forces])
    table = error_table(frames, energies, forces)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    energy_title = f"MAE {table.energy_mae_mev_per_atom:.1f} meV/atom (zero at {shift:.3f} eV/atom)"
    for ax, ref, pred, label, panel_title in (
        (axes[0], e_ref, e_pred, "energy per atom (meV/atom)", energy_title),
        (axes[1], f_ref, f_pred, "force component (eV/Å)", f"MAE {table.forces_mae_mev_per_a:.1f} meV/Å"),
    ):
        lo, hi = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
        ax.plot([lo, hi], [lo, hi], color="0.6", lw=1)
        ax.scatter(ref, pred, s=4, alpha=0.5)
        ax.set_xlabel(f"reference {label}")
        ax.set_ylabel(f"predicted {label}")
        ax.set_title(panel_title)
    return save_figure(fig, path, title)

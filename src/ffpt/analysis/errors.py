"""Parity plots of models against labelled frames (the error table: :mod:`ffpt.observables.errors`)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from ase import Atoms

from ffpt.data.frames import energy_of, forces_of
from ffpt.observables.errors import error_table

HEXBIN_ABOVE = 3000  # points per panel above which a density (hexbin) replaces the scatter


def _panel(ax, ref: np.ndarray, pred: np.ndarray, unit: str, what: str, mae: float, rmse: float, err_unit: str,
           color: str, name: str) -> None:
    """One parity panel: the diagonal, points (or their density), n, MAE and RMSE in the title."""
    from matplotlib.colors import LogNorm

    lo, hi = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
    pad = 0.03 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.6", lw=1, zorder=0)
    if len(ref) > HEXBIN_ABOVE:
        ax.hexbin(ref, pred, gridsize=60, norm=LogNorm(), cmap="viridis", mincnt=1)
    else:
        ax.scatter(ref, pred, s=6, alpha=0.6, color=color, linewidths=0)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_aspect("equal")
    ax.set_xlabel(f"reference {what} ({unit})")
    ax.set_ylabel(f"predicted {what} ({unit})")
    ax.set_title(f"{name}: n = {len(ref)}, MAE {mae:.1f}, RMSE {rmse:.1f} {err_unit}", fontsize="small",
                 color=color)


def parity_plot_arms(frames: Sequence[Atoms], predictions: Mapping[str, tuple[np.ndarray, Sequence[np.ndarray]]],
                     path: str | Path, title: str = "") -> Path:
    """One row per model (e.g. the two arms): energy per atom (meV/atom, relative to the reference
    mean) and force components (eV/A), predicted vs reference, on the same axes for every row."""
    from ffpt.analysis.plotting import pyplot, save_figure

    plt = pyplot()
    n_atoms = np.array([len(a) for a in frames])
    e_ref = np.array([energy_of(a) for a in frames]) / n_atoms
    shift = e_ref.mean()
    f_ref = np.concatenate([forces_of(a).ravel() for a in frames])
    fig, axes = plt.subplots(len(predictions), 2, figsize=(9, 4.2 * len(predictions)), squeeze=False)
    for row, (k, (name, (energies, forces))) in zip(axes, enumerate(predictions.items())):
        table = error_table(frames, energies, forces)
        e_pred = np.asarray(energies) / n_atoms
        f_pred = np.concatenate([np.ravel(f) for f in forces])
        color = f"C{k}"
        _panel(row[0], 1e3 * (e_ref - shift), 1e3 * (e_pred - shift), "meV/atom", "energy",
               table.energy_mae_mev_per_atom, table.energy_rmse_mev_per_atom, "meV/atom", color, name)
        _panel(row[1], f_ref, f_pred, "eV/Å", "force component", table.forces_mae_mev_per_a,
               table.forces_rmse_mev_per_a, "meV/Å", color, name)
    caption = f"energy zero: reference mean {shift:.3f} eV/atom"
    return save_figure(fig, path, f"{title}\n{caption}" if title else caption)


def parity_plot(
    frames: Sequence[Atoms], energies: np.ndarray, forces: Sequence[np.ndarray], path: str | Path, title: str = ""
) -> Path:
    """Two panels: energy per atom (meV/atom) and force components (eV/A), predicted vs reference."""
    return parity_plot_arms(frames, {title or "model": (energies, forces)}, path, title)

"""Periodic boxes at other mass densities, for sampling a liquid over a density range.

A box is rescaled rigidly: its cell is scaled isotropically and every molecule (made whole across
the boundary) is translated so that its centre of mass keeps its fractional coordinates. No bond,
angle or intramolecular distance changes; only the distances between molecules do. Densities are in
g/cm^3 (:func:`ffpt.observables.density.mass_density`).
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from ffpt.data.molecules import molecules
from ffpt.observables.density import mass_density

DENSITY_KEY = "density_g_cm3"  # info key of a frame sampled at a rescaled density (g/cm^3)


def rescale_to_density(atoms: Atoms, density_g_cm3: float, reference: Atoms | None = None) -> Atoms:
    """A copy of the periodic ``atoms`` at mass density ``density_g_cm3`` (g/cm^3).

    The cell is scaled by ``(rho / density_g_cm3)^(1/3)``; each molecule (bonding of ``reference``,
    default ``atoms``; same atom order) is made whole and moved rigidly with its centre of mass, whose
    fractional coordinates are kept (wrapped into the cell). ``info`` is copied and gets
    ``density_g_cm3``. Raises ``ValueError`` for a frame not periodic in all three directions or a
    density that is not positive.
    """
    if not atoms.pbc.all():
        raise ValueError("rescaling to a density needs a cell periodic in all three directions")
    if not density_g_cm3 > 0:
        raise ValueError(f"density must be positive (got {density_g_cm3} g/cm^3)")
    scale = (mass_density(atoms) / density_g_cm3) ** (1 / 3)
    cell = atoms.cell.array * scale
    masses = atoms.get_masses()
    positions = np.empty_like(atoms.positions)
    for molecule in molecules(atoms if reference is None else reference):
        index = list(molecule.indices)
        whole = molecule.positions(atoms)
        centre = masses[index] @ whole / masses[index].sum()
        fractional = np.linalg.solve(atoms.cell.array.T, centre) % 1.0
        positions[index] = whole - centre + fractional @ cell
    out = Atoms(numbers=atoms.numbers, positions=positions, cell=cell, pbc=True)
    out.info.update(atoms.info)
    out.info[DENSITY_KEY] = float(density_g_cm3)
    return out


def frames_per_density(n_frames: int, n_densities: int) -> list[int]:
    """``n_frames`` split as evenly as possible over ``n_densities`` (the first ones get the remainder)."""
    base, extra = divmod(n_frames, n_densities)
    return [base + (k < extra) for k in range(n_densities)]


def nearest_density(frames: list[Atoms], density_g_cm3: float) -> list[Atoms]:
    """The frames sampled at the tagged density (``density_g_cm3`` info) nearest ``density_g_cm3``;
    all ``frames`` when none is tagged (a sample at one density)."""
    tagged = [f for f in frames if DENSITY_KEY in f.info]
    if not tagged:
        return frames
    nearest = min({float(f.info[DENSITY_KEY]) for f in tagged}, key=lambda d: abs(d - density_g_cm3))
    return [f for f in tagged if float(f.info[DENSITY_KEY]) == nearest]

"""Mass density of periodic frames (g/cm^3) and the equilibrium density of NPT runs."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from scipy import stats

from ffpt.observables.density import RunDensity, mass_density, summarize_density

AMU_G = 1.66053906660e-24  # g (CODATA 2018)


def water_box(density_g_cm3: float, n: int = 32) -> Atoms:
    """``n`` water molecules in a cube whose side gives ``density_g_cm3`` (H2O = 18.015 amu)."""
    side_cm = (n * 18.015 * AMU_G / density_g_cm3) ** (1 / 3)
    atoms = Atoms()
    for k in range(n):
        w = molecule("H2O")
        w.translate([3.0 * (k % 4), 3.0 * (k // 4 % 4), 3.0 * (k // 16)])
        atoms += w
    atoms.set_cell([side_cm * 1e8] * 3)
    atoms.pbc = True
    return atoms


def test_liquid_water_box_has_its_density():
    assert mass_density(water_box(0.997)) == pytest.approx(0.997, rel=1e-4)
    box = water_box(0.997)
    box.set_cell(box.cell * 2 ** (1 / 3), scale_atoms=True)  # twice the volume: half the density
    assert mass_density(box) == pytest.approx(0.997 / 2, rel=1e-4)


def test_density_needs_a_3d_cell():
    slab = water_box(1.0)
    slab.pbc = [True, True, False]
    with pytest.raises(ValueError, match="periodic in all three"):
        mass_density(slab)


def test_equilibrium_density_is_the_mean_over_runs_with_a_t_interval():
    runs = [RunDensity([0, 100, 200, 300], [0.80, 0.95, 1.00, 1.02]),
            RunDensity([0, 100, 200, 300], [0.85, 0.97, 0.98, 0.96]),
            RunDensity([0, 100, 200, 300], [0.90, 1.01, 1.03, 1.01]),
            RunDensity([0, 100], [0.90, 0.50])]  # failed at 100 fs: no equilibrium density
    summary = summarize_density(runs, from_fs=200)
    assert summary.run_means == pytest.approx([1.01, 0.97, 1.02])
    assert summary.n_ended_before == 1
    assert summary.mean == pytest.approx(1.0)
    low, high = stats.t.interval(0.95, 2, loc=1.0, scale=stats.sem([1.01, 0.97, 1.02]))
    assert summary.ci95 == pytest.approx([low, high])
    assert summarize_density(runs[:1], from_fs=200).ci95 is None  # one run: no spread to give
    assert summarize_density(runs[3:], from_fs=200).mean is None

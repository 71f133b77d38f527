"""The flexible-TIP3P box teacher: a classical sampler of liquid water with intermolecular terms."""

from __future__ import annotations

import numpy as np
import pytest
from ase.io import read

from ffpt import teachers
from ffpt.errors import UserError
from ffpt.teachers.topology import TypingError
from helpers_physics import finite_difference_forces
from test_teachers_forcefield import water, water_box


def test_forces_are_minus_energy_gradient_across_the_boundary():
    box = water_box(n_side=2, spacing=3.3, seed=2)  # molecules straddle the cell boundary
    teacher = teachers.get("tip3p", platform="Reference", cutoff=3.2)  # double precision for the FD
    label = teacher.label(box)
    assert np.abs(label.forces).max() > 0.1
    np.testing.assert_allclose(label.forces, finite_difference_forces(teacher, box, h=1e-4), atol=2e-3)


def test_box_has_intermolecular_energy_and_is_translation_invariant():
    box = read("experiments/structures/water_32.extxyz")
    tip3p = teachers.get("tip3p", platform="Reference")
    label = tip3p.label(box)
    intramolecular_only = teachers.get("spcfw", ignore_cell=True).label(box)
    assert abs(label.energy - intramolecular_only.energy) > 1.0  # eV: 32 hydrogen-bonded molecules
    moved = box.copy()
    moved.positions += [1.3, -2.1, 0.4]
    moved.wrap()
    moved_label = tip3p.label(moved)
    assert moved_label.energy == pytest.approx(label.energy, abs=1e-3)  # PME accuracy
    np.testing.assert_allclose(moved_label.forces, label.forces, atol=5e-3)
    np.testing.assert_allclose(label.forces.sum(axis=0), 0.0, atol=5e-3)


def test_refuses_non_periodic_frames_and_other_molecules():
    with pytest.raises(TypingError, match="needs a periodic box"):
        teachers.get("tip3p").label(water())
    box = water_box()
    box[0].symbol = "N"  # molecule 0 becomes NH2
    with pytest.raises(TypingError, match=r"tip3p: frame .*molecule H2N .*not a water"):
        teachers.get("tip3p").label(box)


def upright(atoms):
    """Copy of ``atoms`` rotated so its cell is lower-triangular (the form OpenMM takes)."""
    cell, rotation = atoms.cell.standard_form()
    turned = atoms.copy()
    turned.positions = atoms.positions @ rotation.T
    turned.cell = cell
    return turned


def test_stress_is_the_strain_derivative_of_the_energy():
    """The stress option (eV/A^3, Voigt) against symmetric strains applied through ASE, in double precision,
    on a sheared box; a sharp cutoff is refused (its stress would jump when a pair crosses it)."""
    box = read("experiments/structures/water_32.extxyz")
    box.set_cell([[9.9, 0.0, 0.0], [0.7, 9.8, 0.0], [-0.5, 0.4, 10.0]], scale_atoms=True)
    options = dict(platform="Reference", cutoff=4.5, switch_width=0.5, ewald_tolerance=1e-6)
    stress = teachers.get("tip3p", stress=True, **options).label(box).stress
    energy = teachers.get("tip3p", **options)
    assert stress.shape == (6,) and np.abs(stress[3:]).max() > 1e-4  # eV/A^3: shear stress is not zero
    h = 1e-3
    for voigt, (i, j) in enumerate([(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]):
        strain = np.zeros((3, 3))
        strain[i, j] = strain[j, i] = h if i == j else h / 2
        e = [energy.label(upright(strained(box, sign * strain))).energy for sign in (1, -1)]
        assert (e[0] - e[1]) / (2 * h) / box.get_volume() == pytest.approx(stress[voigt], abs=2e-6)
    with pytest.raises(UserError, match="switch_width"):
        teachers.get("tip3p", stress=True)
    assert "stress" not in teachers.get("tip3p").implemented_properties  # no stress unless asked for


def strained(atoms, strain):
    """Copy of ``atoms`` with cell and positions deformed by ``1 + strain`` (symmetric, dimensionless)."""
    out = atoms.copy()
    out.set_cell(atoms.cell.array @ (np.eye(3) + strain), scale_atoms=True)
    return out

"""Small helpers shared by the physics tests."""

import numpy as np


def energy_forces(calc, atoms):
    """Energy (eV) and forces (eV/A) of a copy of ``atoms`` with ``calc`` attached."""
    atoms = atoms.copy()
    atoms.calc = calc
    return atoms.get_potential_energy(), atoms.get_forces()


def finite_difference_forces(calc, atoms, h=1e-5):
    """-dE/dr (eV/A) by central differences of step ``h`` (A), shape (n_atoms, 3)."""
    fd = np.zeros((len(atoms), 3))
    for i in range(len(atoms)):
        for k in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[i, k] += h
            minus.positions[i, k] -= h
            fd[i, k] = -(energy_forces(calc, plus)[0] - energy_forces(calc, minus)[0]) / (2 * h)
    return fd


def finite_difference_stress(calc, box, h=1e-6):
    """(1/V) dE/d(strain) (eV/A^3) by central differences of symmetric strains of size ``h``, (3, 3)."""
    fd = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            e = []
            for sign in (1, -1):
                eps = np.zeros((3, 3))
                eps[a, b] += sign * h / 2
                eps[b, a] += sign * h / 2
                strained = box.copy()
                strained.set_cell(box.cell.array @ (np.eye(3) + eps), scale_atoms=True)
                e.append(energy_forces(calc, strained)[0])
            fd[a, b] = (e[0] - e[1]) / (2 * h) / box.get_volume()
    return fd

"""Small helpers shared by the physics tests."""


def energy_forces(calc, atoms):
    """Energy (eV) and forces (eV/A) of a copy of ``atoms`` with ``calc`` attached."""
    atoms = atoms.copy()
    atoms.calc = calc
    return atoms.get_potential_energy(), atoms.get_forces()

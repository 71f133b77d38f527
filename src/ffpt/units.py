"""Unit conversions used at the edges of ffpt. Inside: eV, Angstrom, fs, K."""

from ase import units

KCAL_PER_MOL = units.kcal / units.mol  # eV per (kcal/mol)
HARTREE = units.Hartree  # eV per hartree
MEV = 1e-3  # eV per meV
KJ_PER_MOL = units.kJ / units.mol  # eV per (kJ/mol)
NM_PER_A = 0.1  # nm per Angstrom (OpenMM, PLUMED)


"""Molecule perception from covalent connectivity, and isolation of molecules.

Two atoms are bonded when their distance is below ``scale * (r_cov,i + r_cov,j)`` (ASE's
covalent radii, A). Periodic cells are handled with the minimum-image bonds of ASE's neighbour list.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.data import covalent_radii
from ase.neighborlist import neighbor_list
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

BOND_SCALE = 1.3


def _bond_list(atoms: Atoms, scale: float):
    cutoffs = scale * covalent_radii[atoms.numbers]
    return neighbor_list("ijD", atoms, cutoffs)


def bonds(atoms: Atoms, scale: float = BOND_SCALE) -> np.ndarray:
    """Bonded pairs (i < j), shape (n_bonds, 2), sorted."""
    i, j, _ = _bond_list(atoms, scale)
    keep = i < j
    pairs = np.stack([i[keep], j[keep]], axis=1)
    pairs = np.unique(pairs, axis=0) if len(pairs) else pairs.reshape(0, 2)
    return pairs.astype(int)


def molecule_indices(atoms: Atoms, scale: float = BOND_SCALE) -> list[np.ndarray]:
    """Atom indices of each molecule (connected component), ordered by first atom."""
    n = len(atoms)
    i, j, _ = _bond_list(atoms, scale)
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    groups: dict[int, list[int]] = {}
    for atom, label in enumerate(labels):
        groups.setdefault(int(label), []).append(atom)
    return [np.array(g, dtype=int) for g in sorted(groups.values(), key=lambda g: g[0])]


def species_formulas(atoms: Atoms, scale: float = BOND_SCALE) -> list[tuple[str, np.ndarray]]:
    """Hill formula (e.g. ``"HO2"``) and atom indices of every molecule, ordered by first atom."""
    from ase.formula import Formula

    symbols = atoms.symbols
    return [(Formula.from_list(symbols[idx]).format("hill"), idx) for idx in molecule_indices(atoms, scale)]


def unwrapped_positions(atoms: Atoms, scale: float = BOND_SCALE) -> np.ndarray:
    """Positions with every molecule made whole across periodic boundaries (A)."""
    positions = atoms.positions.copy()
    if not atoms.pbc.any():
        return positions
    i, j, D = _bond_list(atoms, scale)
    neighbours: dict[int, list[tuple[int, np.ndarray]]] = {}
    for a, b, d in zip(i, j, D):
        neighbours.setdefault(int(a), []).append((int(b), d))
    placed = np.zeros(len(atoms), dtype=bool)
    for start in range(len(atoms)):
        if placed[start]:
            continue
        placed[start] = True
        stack = [start]
        while stack:
            a = stack.pop()
            for b, d in neighbours.get(a, []):
                if not placed[b]:
                    positions[b] = positions[a] + d
                    placed[b] = True
                    stack.append(b)
    return positions


def isolate_molecules(atoms: Atoms, scale: float = BOND_SCALE) -> list[Atoms]:
    """One non-periodic frame per molecule, made whole across boundaries.

    Each frame carries ``info["parent_atoms"]`` (indices into ``atoms``); the charge of the
    parent frame is not distributed (isolated molecules are taken as neutral), and the spin is
    left for the labeller to decide.
    """
    positions = unwrapped_positions(atoms, scale)
    frames = []
    for idx in molecule_indices(atoms, scale):
        mol = Atoms(numbers=atoms.numbers[idx], positions=positions[idx])
        mol.info["parent_atoms"] = idx.copy()
        frames.append(mol)
    return frames

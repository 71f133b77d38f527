"""Molecule perception from covalent connectivity: the one implementation in ffpt.

Two atoms are bonded when their distance is below ``scale * (r_cov,i + r_cov,j)`` (ASE's
covalent radii, A). Periodic cells use the minimum-image bonds of ASE's neighbour list. A
:class:`Molecule` is a connected component of the bond graph; :func:`molecules` perceives them
from a frame, :func:`molecules_from_bonds` builds them from given bonds (e.g. a reference frame's),
and :meth:`Molecule.positions` makes a molecule whole across periodic boundaries.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from ase import Atoms
from ase.data import covalent_radii
from ase.geometry import find_mic
from ase.neighborlist import neighbor_list
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ffpt.data.frames import DataError

BOND_SCALE = 1.3


def bonds(atoms: Atoms, scale: float = BOND_SCALE) -> np.ndarray:
    """Bonded pairs (i < j), shape (n_bonds, 2), sorted."""
    i, j = neighbor_list("ij", atoms, scale * covalent_radii[atoms.numbers])
    keep = i < j
    pairs = np.stack([i[keep], j[keep]], axis=1)
    pairs = np.unique(pairs, axis=0) if len(pairs) else pairs.reshape(0, 2)
    return pairs.astype(int)


@dataclass(frozen=True)
class Molecule:
    """One molecule of a frame.

    ``indices``: its atoms in the frame; ``numbers``: their atomic numbers; ``bonds``: bonded
    pairs (i < j) in local indices (positions in ``indices``).
    """

    indices: tuple[int, ...]
    numbers: tuple[int, ...]
    bonds: tuple[tuple[int, int], ...]

    @property
    def key(self) -> tuple:
        """Hashable identity of the molecule's graph (elements and bonds, local order)."""
        return (self.numbers, self.bonds)

    @property
    def formula(self) -> str:
        return Atoms(numbers=self.numbers).get_chemical_formula()

    @cached_property
    def _tree(self) -> tuple[np.ndarray, np.ndarray]:
        """(child, parent) pairs of a breadth-first spanning tree, in visiting order."""
        neighbours: dict[int, list[int]] = {k: [] for k in range(len(self.numbers))}
        for i, j in self.bonds:
            neighbours[i].append(j)
            neighbours[j].append(i)
        seen = {0}
        queue = deque([0])
        children, parents = [], []
        while queue:
            a = queue.popleft()
            for b in neighbours[a]:
                if b not in seen:
                    seen.add(b)
                    queue.append(b)
                    children.append(b)
                    parents.append(a)
        return np.array(children, dtype=int), np.array(parents, dtype=int)

    def positions(self, atoms: Atoms) -> np.ndarray:
        """Positions of the molecule's atoms (A), made whole across periodic boundaries."""
        positions = atoms.positions[list(self.indices)]
        if not atoms.pbc.any() or len(positions) == 1:
            return positions
        children, parents = self._tree
        steps, _ = find_mic(positions[children] - positions[parents], atoms.cell, atoms.pbc)
        whole = positions.copy()
        for child, parent, step in zip(children, parents, steps):
            whole[child] = whole[parent] + step
        return whole


def molecules_from_bonds(numbers, pairs) -> tuple[Molecule, ...]:
    """Molecules (connected components, ordered by first atom) of atoms ``numbers`` bonded by ``pairs``
    (frame indices)."""
    numbers = tuple(int(z) for z in numbers)
    n = len(numbers)
    pairs = sorted({(int(min(i, j)), int(max(i, j))) for i, j in pairs if i != j})
    for i, j in pairs:
        if j >= n or i < 0:
            raise DataError(f"bond ({i}, {j}) names an atom outside the frame of {n} atoms")
    graph = coo_matrix((np.ones(len(pairs)), ([i for i, _ in pairs], [j for _, j in pairs])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    groups: dict[int, list[int]] = {}
    for atom, label in enumerate(labels):
        groups.setdefault(int(label), []).append(atom)
    members = sorted(groups.values(), key=lambda g: g[0])
    local = {atom: (m, k) for m, group in enumerate(members) for k, atom in enumerate(group)}
    mol_bonds: list[list[tuple[int, int]]] = [[] for _ in members]
    for i, j in pairs:
        m, a = local[i]
        mol_bonds[m].append((a, local[j][1]))
    return tuple(
        Molecule(tuple(group), tuple(numbers[a] for a in group), tuple(sorted(b)))
        for group, b in zip(members, mol_bonds)
    )


def molecules(atoms: Atoms, scale: float = BOND_SCALE) -> tuple[Molecule, ...]:
    """Covalent molecules of ``atoms`` (PBC aware), ordered by first atom."""
    return molecules_from_bonds(atoms.numbers, bonds(atoms, scale))


def molecule_indices(atoms: Atoms, scale: float = BOND_SCALE) -> list[np.ndarray]:
    """Atom indices of each molecule (connected component), ordered by first atom."""
    return [np.array(m.indices, dtype=int) for m in molecules(atoms, scale)]


def hill_formula(formula: str, where: str | None = None) -> str:
    """Canonical Hill formula of a formula string (``"OH" -> "HO"``); a bad one is a DataError."""
    from ase.formula import Formula

    try:
        return Formula(formula).format("hill")
    except ValueError as exc:
        raise DataError(f"{where + ': ' if where else ''}bad chemical formula '{formula}' ({exc})") from None


def species_formulas(atoms: Atoms, scale: float = BOND_SCALE) -> list[tuple[str, np.ndarray]]:
    """Hill formula (e.g. ``"HO2"``) and atom indices of every molecule, ordered by first atom."""
    from ase.formula import Formula

    symbols = atoms.symbols
    return [(Formula.from_list(symbols[idx]).format("hill"), idx) for idx in molecule_indices(atoms, scale)]



def isolate_molecules(atoms: Atoms, scale: float = BOND_SCALE) -> list[Atoms]:
    """One non-periodic frame per molecule, made whole across boundaries.

    Each frame carries ``info["parent_atoms"]`` (indices into ``atoms``); the charge of the
    parent frame is not distributed (isolated molecules are taken as neutral), and the spin is
    left for the labeller to decide.
    """
    frames = []
    for m in molecules(atoms, scale):
        idx = np.array(m.indices, dtype=int)
        mol = Atoms(numbers=atoms.numbers[idx], positions=m.positions(atoms))
        mol.info["parent_atoms"] = idx
        frames.append(mol)
    return frames

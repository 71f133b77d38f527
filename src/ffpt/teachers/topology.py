"""Molecular topology of a frame, and the per-molecule evaluation scheme of classical teachers.

A :class:`Topology` splits a frame into molecules (connected components of the covalent bond
graph) and keeps each molecule's bonds. It is perceived from the frame itself or taken from a
reference frame with the same atoms, so that a reactive geometry keeps its reference bonding.

:class:`MoleculeTeacher` evaluates each molecule alone and sums the results: a classical teacher
built on it has no intermolecular term by construction. A lone atom has zero energy and force.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.geometry import find_mic
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ffpt.data.frames import DataError
from ffpt.data.molecules import BOND_SCALE, bonds as perceive_bonds
from ffpt.teachers.base import Label, LabelFailure, Teacher


class TypingError(LabelFailure):
    """A molecule the force field cannot type; the message names the frame, atoms and reason."""


def describe_frame(atoms: Atoms) -> str:
    """Short name of a frame for error messages: formula plus any name it carries."""
    text = f"frame {atoms.get_chemical_formula()}"
    for key in ("name", "seed_name", "config_type"):
        if key in atoms.info:
            text += f" ({key}={atoms.info[key]})"
    return text


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


@dataclass(frozen=True)
class Topology:
    """Molecules and bonds of a frame with atomic numbers ``numbers``."""

    numbers: tuple[int, ...]
    molecules: tuple[Molecule, ...]

    @classmethod
    def from_bonds(cls, numbers, bonds) -> "Topology":
        """Topology from atomic numbers and bonded pairs (frame indices)."""
        numbers = tuple(int(z) for z in numbers)
        n = len(numbers)
        pairs = sorted({(int(min(i, j)), int(max(i, j))) for i, j in bonds if i != j})
        for i, j in pairs:
            if j >= n or i < 0:
                raise DataError(f"bond ({i}, {j}) names an atom outside the frame of {n} atoms")
        rows = [i for i, _ in pairs]
        cols = [j for _, j in pairs]
        graph = coo_matrix((np.ones(len(pairs)), (rows, cols)), shape=(n, n))
        _, labels = connected_components(graph, directed=False)
        groups: dict[int, list[int]] = {}
        for atom, label in enumerate(labels):
            groups.setdefault(int(label), []).append(atom)
        members = sorted(groups.values(), key=lambda g: g[0])
        local = {atom: (m, k) for m, group in enumerate(members) for k, atom in enumerate(group)}
        mol_bonds: list[list[tuple[int, int]]] = [[] for _ in members]
        for i, j in pairs:
            m, a = local[i]
            _, b = local[j]
            mol_bonds[m].append((a, b))
        molecules = tuple(
            Molecule(tuple(group), tuple(numbers[a] for a in group), tuple(sorted(b)))
            for group, b in zip(members, mol_bonds)
        )
        return cls(numbers, molecules)

    @classmethod
    def perceive(cls, atoms: Atoms, scale: float = BOND_SCALE) -> "Topology":
        """Covalent topology of ``atoms`` (bond when d < scale * (r_cov,i + r_cov,j), PBC aware)."""
        return cls.from_bonds(atoms.numbers, perceive_bonds(atoms, scale))

    @property
    def bonds(self) -> list[tuple[int, int]]:
        """All bonded pairs in frame indices, sorted."""
        return sorted(
            (m.indices[a], m.indices[b]) for m in self.molecules for a, b in m.bonds
        )

    def check(self, atoms: Atoms) -> None:
        """Raise :class:`DataError` unless ``atoms`` has the same elements in the same order."""
        if len(atoms) != len(self.numbers):
            raise DataError(
                f"{describe_frame(atoms)}: has {len(atoms)} atoms, the topology reference has {len(self.numbers)}"
            )
        differ = np.flatnonzero(atoms.numbers != np.asarray(self.numbers))
        if differ.size:
            k = int(differ[0])
            raise DataError(
                f"{describe_frame(atoms)}, atom {k}: element {atoms.get_chemical_symbols()[k]} differs "
                f"from the topology reference (atomic number {self.numbers[k]})"
            )


TopologySource = Atoms | Topology | str | os.PathLike


def as_topology(source: TopologySource, scale: float = BOND_SCALE) -> Topology:
    """Topology from a reference frame, a structure file (first frame) or a :class:`Topology`."""
    if isinstance(source, Topology):
        return source
    if isinstance(source, (str, os.PathLike)):
        import ase.io

        path = Path(source)
        if not path.exists():
            raise DataError(f"{path}: topology reference file not found")
        try:
            source = ase.io.read(path, index=0)
        except Exception as exc:  # ase raises many types for malformed files
            raise DataError(f"{path}: cannot read topology reference ({exc})") from exc
    if not isinstance(source, Atoms):
        raise TypeError(f"topology must be Atoms, Topology or a file path, not {type(source).__name__}")
    return Topology.perceive(source, scale)


def check_spin(atoms: Atoms) -> None:
    """Raise :class:`DataError` if ``info["spin"]`` (2S+1) contradicts the electron count's parity."""
    if "spin" not in atoms.info:
        return
    multiplicity = int(atoms.info["spin"])
    electrons = int(atoms.numbers.sum()) - int(atoms.info.get("charge", 0))
    if multiplicity < 1 or (multiplicity - 1) % 2 != electrons % 2:
        raise DataError(
            f"{describe_frame(atoms)}: spin multiplicity {multiplicity} is impossible with {electrons} electrons"
        )


class MoleculeTeacher(Teacher):
    """Base of classical teachers: perceive molecules, evaluate each alone, sum.

    ``topology``: reference bonding (frame, file or :class:`Topology`) used for every frame
    instead of perceiving each frame's own; ``bond_scale``: covalent-radius factor of perception.
    Subclasses implement :meth:`molecule_label` and cache their backend per molecular graph.
    """

    caches: tuple[str, ...] = ()  # attributes holding backend objects: rebuilt, not pickled

    def __init__(self, topology: TopologySource | None = None, bond_scale: float = BOND_SCALE, **kwargs):
        super().__init__(**kwargs)
        self.bond_scale = float(bond_scale)
        self.topology = None if topology is None else as_topology(topology, self.bond_scale)

    def __getstate__(self) -> dict:
        """Picklable state (for worker processes): backend caches are left behind and rebuilt."""
        state = self.__dict__.copy()
        state.update({name: {} for name in self.caches})
        return state

    def check_state(self, atoms: Atoms, tol: float = 1e-15) -> list[str]:
        """Changes since the last calculation (exact comparison: ASE's tolerant one dominates MD time).

        Only elements, positions, cell and periodicity enter these teachers' labels.
        """
        old = self.atoms
        if old is None or len(old) != len(atoms):
            return ["numbers", "positions", "cell", "pbc"]
        pairs = (
            ("positions", old.positions, atoms.positions),
            ("numbers", old.numbers, atoms.numbers),
            ("cell", old.cell.array, atoms.cell.array),
            ("pbc", old.pbc, atoms.pbc),
        )
        return [name for name, a, b in pairs if not (a == b).all()]

    def molecule_label(self, molecule: Molecule, positions: np.ndarray, charge: int, atoms: Atoms) -> Label:
        """Energy (eV) and forces (eV/A) of one molecule of >= 2 atoms at ``positions`` (A)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def with_topology(self, topology: TopologySource) -> "MoleculeTeacher":
        """The same teacher (sharing its backend cache) with bonding fixed to ``topology``."""
        clone = type(self).__new__(type(self))
        clone.__dict__.update(
            {k: v for k, v in self.__dict__.items() if k not in ("atoms", "results")}
        )
        clone.atoms = None
        clone.results = {}
        clone.topology = as_topology(topology, self.bond_scale)
        return clone

    def frame_topology(self, atoms: Atoms) -> Topology:
        """The fixed reference topology (checked against ``atoms``) or the frame's own."""
        if self.topology is None:
            return Topology.perceive(atoms, self.bond_scale)
        self.topology.check(atoms)
        return self.topology

    def compute(self, atoms: Atoms) -> Label:
        check_spin(atoms)
        topology = self.frame_topology(atoms)
        charge = int(atoms.info.get("charge", 0))
        polyatomic = [m for m in topology.molecules if len(m.indices) > 1]
        if charge != 0 and len(topology.molecules) > 1:
            raise TypingError(
                f"{self.info.name}: {describe_frame(atoms)}: charge {charge} cannot be assigned to one of "
                f"its {len(topology.molecules)} molecules; label charged molecules one per frame"
            )
        energy = 0.0
        forces = np.zeros((len(atoms), 3))
        for molecule in polyatomic:
            label = self.molecule_label(molecule, molecule.positions(atoms), charge, atoms)
            energy += label.energy
            forces[list(molecule.indices)] = label.forces
        return Label(energy=energy, forces=forces)

    def _topology_option(self) -> list[list[int]] | None:
        return None if self.topology is None else [list(b) for b in self.topology.bonds]

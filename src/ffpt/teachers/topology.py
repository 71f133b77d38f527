"""Molecular topology of a frame, and the per-molecule evaluation scheme of classical teachers.

A :class:`Topology` is a frame's atomic numbers and its molecules (:class:`ffpt.data.molecules.Molecule`,
from :mod:`ffpt.data.molecules`, ffpt's one molecule perception). It is perceived from the frame itself
or taken from a reference frame with the same atoms, so that a reactive geometry keeps its reference
bonding.

:class:`MoleculeTeacher` evaluates each molecule alone and sums the results: a classical teacher
built on it has no intermolecular term by construction. A lone atom has zero energy and force.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from ffpt.data.frames import DataError, describe_frame
from ffpt.data.molecules import BOND_SCALE, Molecule, molecules, molecules_from_bonds
from ffpt.teachers.base import Label, LabelFailure, Teacher, electronic_state

__all__ = ["Molecule", "MoleculeTeacher", "Topology", "TypingError", "as_topology"]


class TypingError(LabelFailure):
    """A molecule the force field cannot type; the message names the frame, atoms and reason."""


@dataclass(frozen=True)
class Topology:
    """Molecules and bonds of a frame with atomic numbers ``numbers``."""

    numbers: tuple[int, ...]
    molecules: tuple[Molecule, ...]

    @classmethod
    def from_bonds(cls, numbers, bonds) -> "Topology":
        """Topology from atomic numbers and bonded pairs (frame indices)."""
        numbers = tuple(int(z) for z in numbers)
        return cls(numbers, molecules_from_bonds(numbers, bonds))

    @classmethod
    def perceive(cls, atoms: Atoms, scale: float = BOND_SCALE) -> "Topology":
        """Covalent topology of ``atoms`` (bond when d < scale * (r_cov,i + r_cov,j), PBC aware)."""
        return cls(tuple(int(z) for z in atoms.numbers), molecules(atoms, scale))

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


class MoleculeTeacher(Teacher):
    """Base of classical teachers: perceive molecules, evaluate each alone, sum.

    ``topology``: reference bonding (frame, file or :class:`Topology`) used for every frame
    instead of perceiving each frame's own; ``bond_scale``: covalent-radius factor of perception.
    Subclasses implement :meth:`molecule_label` and cache their backend per molecular graph.

    A teacher of isolated molecules (``periodic`` False) refuses a periodic frame
    (:meth:`check_cell`): it would label each molecule alone, without the images and neighbours
    the cell implies. ``ignore_cell=True`` says that is meant: the cell then only joins the
    molecules cut by its boundary.
    """

    caches: tuple[str, ...] = ()  # attributes holding backend objects: rebuilt, not pickled
    periodic = False  # True: the teacher models the periodic box itself (TIP3P)

    def __init__(self, topology: TopologySource | None = None, bond_scale: float = BOND_SCALE,
                 ignore_cell: bool = False):
        super().__init__()  # no **kwargs: ASE's Calculator would accept a misspelt option silently
        self.bond_scale = float(bond_scale)
        self.topology = None if topology is None else as_topology(topology, self.bond_scale)
        if not isinstance(ignore_cell, bool):
            raise ValueError(f"ignore_cell must be true or false, got {ignore_cell!r}")
        self.ignore_cell = ignore_cell

    def check_cell(self, atoms: Atoms) -> None:
        """Refuse a periodic frame (a :class:`DataError` naming it) unless the teacher models the box
        or ``ignore_cell`` was given."""
        if self.periodic or self.ignore_cell or not atoms.pbc.any():
            return
        raise DataError(
            f"{self.info.name}: {describe_frame(atoms)}: periodic frame (pbc {atoms.pbc.tolist()}); this teacher "
            "labels each molecule alone, without periodic images or neighbours: cut the molecules out, or "
            "give --teacher-option ignore_cell=true (config key teacher_options.ignore_cell) to label them so"
        )

    def _cell_option(self) -> dict:
        """``{"ignore_cell": True}`` when given (absent by default, so that labels keep their cache keys)."""
        return {"ignore_cell": True} if self.ignore_cell else {}

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
        self.check_cell(atoms)
        charge, _ = electronic_state(atoms)
        topology = self.frame_topology(atoms)
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

"""The teacher interface: anything that labels frames with energy (eV) and forces (eV/A), and the
stress (eV/A^3) of fully periodic frames where the teacher has one.

A teacher is also an ASE calculator, so any teacher can drive MD. Subclasses implement
:meth:`Teacher.compute` and set :attr:`Teacher.provenance`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from ffpt.data.frames import charge_of, default_multiplicity, spin_of


@dataclass(frozen=True)
class TeacherInfo:
    """What a teacher is: travels into datasets and model files as provenance."""

    name: str  # registry name, e.g. "mmff94", "pyscf"
    level: str  # level of theory, e.g. "MMFF94 (intramolecular)", "wB97X-V/cc-pVTZ"
    version: str  # version of the backend package
    options: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Label:
    """Energy (eV) and forces (eV/A, shape (n_atoms, 3)) of one frame; ``stress`` (eV/A^3, ASE Voigt
    order xx, yy, zz, yz, xz, xy) for a frame periodic in all three directions, if the teacher gives one."""

    energy: float
    forces: np.ndarray
    stress: np.ndarray | None = None


class LabelFailure(RuntimeError):
    """A frame this teacher could not label (e.g. SCF not converged); recorded, never a label."""


class Teacher(Calculator):
    """Base class: ``label(atoms) -> Label`` plus the ASE calculator interface."""

    implemented_properties = ["energy", "forces"]

    @property
    def info(self) -> TeacherInfo:  # pragma: no cover - abstract
        raise NotImplementedError

    def compute(self, atoms: Atoms) -> Label:  # pragma: no cover - abstract
        raise NotImplementedError

    def label(self, atoms: Atoms) -> Label:
        """Label one frame; raises :class:`LabelFailure` if it cannot."""
        return self.compute(atoms)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        result = self.label(self.atoms)
        self.results = {"energy": float(result.energy), "forces": np.asarray(result.forces, dtype=float)}
        if result.stress is not None:
            self.results["stress"] = np.asarray(result.stress, dtype=float)


def electronic_state(atoms: Atoms) -> tuple[int, int]:
    """``(charge, multiplicity)`` of a frame from ``info`` (multiplicity default: the lowest for its
    electron count); :class:`~ffpt.data.frames.DataError` naming the frame if they are inconsistent."""
    return charge_of(atoms), spin_of(atoms, default=default_multiplicity(atoms))

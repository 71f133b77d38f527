"""GFN2-xTB teacher (tblite): molecules and periodic cells, energies in eV, forces in eV/A.

Charge and spin come from ``atoms.info`` as for every teacher (``uhf`` = multiplicity - 1).
Periodic frames (all three directions) also give the stress (eV/A^3, ASE Voigt order) from
tblite's virial. tblite's own printout is silenced. An SCC that does not converge raises
:class:`~ffpt.teachers.base.LabelFailure`.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import ClassVar

import numpy as np
from ase import Atoms
from ase.units import Bohr, Hartree, kB
from tblite.exceptions import TBLiteRuntimeError, TBLiteValueError
from tblite.interface import Calculator

from ffpt.teachers.base import Label, LabelFailure, Teacher, TeacherInfo, electronic_state


def _silent(_message: str) -> None:
    """tblite logger that drops its printout."""


class GFN2Teacher(Teacher):
    """GFN2-xTB single points with tblite.

    Options: ``accuracy`` (tblite's numerical accuracy factor, lower is tighter),
    ``max_iter`` (SCC cycles), ``electronic_temperature`` (K, Fermi smearing).
    """

    implemented_properties: ClassVar[list[str]] = ["energy", "forces", "stress"]

    def __init__(self, *, accuracy: float = 1.0, max_iter: int = 250, electronic_temperature: float = 300.0):
        super().__init__()
        self.options = {
            "accuracy": float(accuracy),
            "max_iter": int(max_iter),
            "electronic_temperature": float(electronic_temperature),
        }

    @property
    def info(self) -> TeacherInfo:
        return TeacherInfo(name="gfn2", level="GFN2-xTB", version=version("tblite"), options=dict(self.options))

    def singlepoint(self, atoms: Atoms):
        """tblite result of a frame (atomic units): energy, gradient, virial."""
        charge, multiplicity = electronic_state(atoms)
        pbc = np.asarray(atoms.pbc, dtype=bool)
        if pbc.any() and not pbc.all():
            raise LabelFailure(f"the gfn2 teacher needs pbc all True or all False, got {pbc.tolist()}")
        try:
            calc = Calculator(
                "GFN2-xTB",
                atoms.numbers,
                atoms.positions / Bohr,
                charge=float(charge),
                uhf=multiplicity - 1,
                lattice=atoms.cell.array / Bohr if pbc.all() else None,
                periodic=pbc if pbc.all() else None,
                logger=_silent,
                color=False,
            )
            calc.set("verbosity", 0)
            calc.set("accuracy", self.options["accuracy"])
            calc.set("max-iter", self.options["max_iter"])
            calc.set("temperature", self.options["electronic_temperature"] * kB / Hartree)
            return calc.singlepoint()
        except (TBLiteRuntimeError, TBLiteValueError) as exc:
            raise LabelFailure(f"tblite GFN2-xTB failed: {exc}") from exc

    def compute(self, atoms: Atoms) -> Label:
        """Energy, forces and, for a fully periodic frame, the stress: tblite's virial (Hartree) / V."""
        result = self.singlepoint(atoms)
        stress = None
        if atoms.pbc.all():
            stress = (result["virial"] * Hartree / atoms.get_volume()).flat[[0, 4, 8, 5, 2, 1]]
        return Label(energy=float(result["energy"]) * Hartree, forces=-result["gradient"] * (Hartree / Bohr),
                     stress=stress)

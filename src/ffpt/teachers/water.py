"""SPC/Fw flexible water, intramolecular terms only, evaluated with OpenMM.

Wu, Tepper & Voth, J. Chem. Phys. 124, 024503 (2006):
E = k_b/2 (r_OH - r0)^2 per O-H bond + k_theta/2 (theta_HOH - theta0)^2 per molecule, with
k_b = 1059.162 kcal/mol/A^2, r0 = 1.012 A, k_theta = 75.90 kcal/mol/rad^2, theta0 = 113.24 deg.
The OpenMM System holds every water molecule of a frame and no non-bonded force, so the frame's
energy is the sum over its isolated molecules. Any non-water molecule is an error naming it.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from ase import Atoms

from ffpt.data.frames import describe_frame
from ffpt.teachers.base import Label, TeacherInfo
from ffpt.teachers.topology import Molecule, MoleculeTeacher, Topology, TypingError
from ffpt.units import KJ_PER_MOL, NM_PER_A

KB_KCAL = 1059.162  # kcal/mol/A^2
R0 = 1.012  # A
KTHETA_KCAL = 75.90  # kcal/mol/rad^2
THETA0_DEG = 113.24  # degrees

_KJ_PER_KCAL = 4.184


@lru_cache(maxsize=256)
def _water_order(numbers: tuple[int, ...], bonds: tuple[tuple[int, int], ...]) -> tuple[int, int, int] | None:
    if sorted(numbers) != [1, 1, 8] or len(bonds) != 2:
        return None
    o = numbers.index(8)
    hs = [k for k in range(3) if k != o]
    if set(bonds) != {tuple(sorted((o, h))) for h in hs}:
        return None
    return (o, hs[0], hs[1])


def water_atoms(molecule: Molecule) -> tuple[int, int, int] | None:
    """Local (O, H, H) indices if ``molecule`` is one water molecule, else ``None``."""
    return _water_order(molecule.numbers, molecule.bonds)


def water_order(atoms: Atoms, topology: Topology, teacher: str) -> tuple[list[int], np.ndarray]:
    """Frame indices of every molecule's (O, H, H) and those atoms' positions with molecules made
    whole (A), molecule after molecule; any molecule that is not a water is an error naming it."""
    order, positions = [], []
    for molecule in topology.molecules:
        local = water_atoms(molecule)
        if local is None:
            raise TypingError(
                f"{teacher}: {describe_frame(atoms)}: molecule {molecule.formula} (atoms {list(molecule.indices)}, "
                f"bonds {[list(b) for b in molecule.bonds]}) is not a water molecule (O bonded to two H)"
            )
        order.extend(molecule.indices[k] for k in local)
        positions.append(molecule.positions(atoms)[list(local)])
    return order, np.concatenate(positions)


def openmm_label(context, positions: np.ndarray, order: list[int], n_atoms: int) -> Label:
    """Energy and forces (eV, eV/A) of an OpenMM ``context`` at ``positions`` (A, in ``order`` of the
    frame's ``n_atoms``); forces go back to the frame's atom order."""
    from openmm.unit import kilojoule_per_mole, nanometer

    context.setPositions(positions * NM_PER_A)  # plain arrays are read in nm
    state = context.getState(getEnergy=True, getForces=True)
    energy = state.getPotentialEnergy().value_in_unit(kilojoule_per_mole) * KJ_PER_MOL
    forces_nm = state.getForces(asNumpy=True).value_in_unit(kilojoule_per_mole / nanometer)
    forces = np.zeros((n_atoms, 3))
    forces[order] = forces_nm * KJ_PER_MOL * NM_PER_A
    return Label(energy=float(energy), forces=forces)


class SPCFwTeacher(MoleculeTeacher):
    """SPC/Fw intramolecular water teacher. ``platform``: OpenMM platform ("Reference": double precision)."""

    caches = ("_contexts",)

    def __init__(self, platform: str = "Reference", **kwargs):
        self.platform = platform
        self._contexts: dict[int, object] = {}  # OpenMM Context per number of molecules
        super().__init__(**kwargs)

    @property
    def info(self) -> TeacherInfo:
        import openmm

        return TeacherInfo(
            name="spcfw",
            level="SPC/Fw (Wu, Tepper & Voth 2006), intramolecular, per isolated molecule (OpenMM)",
            version=openmm.__version__,
            options={"platform": self.platform, "bond_scale": self.bond_scale, "topology": self._topology_option(),
                     **self._cell_option()},
        )

    def _context(self, n_waters: int):
        """Cached OpenMM Context of ``n_waters`` molecules ordered (O, H, H), (O, H, H), ..."""
        if n_waters not in self._contexts:
            import openmm

            system = openmm.System()
            bond = openmm.HarmonicBondForce()
            angle = openmm.HarmonicAngleForce()
            k_bond = KB_KCAL * _KJ_PER_KCAL / NM_PER_A**2  # kJ/mol/nm^2
            k_angle = KTHETA_KCAL * _KJ_PER_KCAL  # kJ/mol/rad^2
            for m in range(n_waters):
                o, h1, h2 = 3 * m, 3 * m + 1, 3 * m + 2
                for _ in range(3):
                    system.addParticle(1.0)  # masses are irrelevant for single points
                bond.addBond(o, h1, R0 * NM_PER_A, k_bond)
                bond.addBond(o, h2, R0 * NM_PER_A, k_bond)
                angle.addAngle(h1, o, h2, np.deg2rad(THETA0_DEG), k_angle)
            system.addForce(bond)
            system.addForce(angle)
            platform = openmm.Platform.getPlatformByName(self.platform)
            self._contexts[n_waters] = openmm.Context(system, openmm.VerletIntegrator(0.001), platform)
        return self._contexts[n_waters]

    def compute(self, atoms: Atoms) -> Label:
        self.check_cell(atoms)
        topology = self.frame_topology(atoms)
        order, positions = water_order(atoms, topology, "spcfw")
        return openmm_label(self._context(len(topology.molecules)), positions, order, len(atoms))


def spcfw(**options) -> SPCFwTeacher:
    """SPC/Fw water teacher (intramolecular bonds and angle only)."""
    return SPCFwTeacher(**options)

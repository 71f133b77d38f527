"""Flexible TIP3P water with all intermolecular terms (PME), evaluated with OpenMM: a box sampler.

Unlike the pre-training teachers, which see one isolated molecule at a time, this one labels the
whole (periodic) box: Coulomb by PME, Lennard-Jones within ``cutoff`` (default: 9 A, or just under
half the narrowest cell width), bonds and angle from OpenMM's bundled ``tip3p.xml`` made flexible.
It is cheap (ms per 96-atom box), so classical MD with it samples liquid configurations for the
expensive ab initio labels. Every molecule must be a water; molecules split by the cell boundary
are made whole before OpenMM sees them.

With ``stress=True`` a label also carries the stress (eV/A^3, ASE Voigt order), the strain derivative
of the energy by central differences (:func:`strain_stress`, 12 more energies per frame), so the
teacher can drive NPT MD. That derivative is only as smooth as the energy: it needs the
Lennard-Jones term switched off smoothly (``switch_width``) and a tight PME error
(``ewald_tolerance`` about 1e-5); with a hard cutoff a pair crossing it makes the stress jump.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from ase import Atoms

from ffpt.data.frames import describe_frame
from ffpt.config import ConfigError
from ffpt.teachers.base import Label, TeacherInfo, electronic_state
from ffpt.teachers.topology import MoleculeTeacher, TypingError
from ffpt.teachers.water import openmm_label, water_order
from ffpt.units import KJ_PER_MOL, NM_PER_A

VOIGT_PAIRS = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))  # ASE's Voigt order xx, yy, zz, yz, xz, xy
STRAIN_STEP = 1e-3  # dimensionless strain of the central differences of the stress
EWALD_TOLERANCE = 5e-4  # OpenMM's default PME error tolerance


def strain_stress(energy: Callable[[np.ndarray, np.ndarray], float], positions: np.ndarray, cell: np.ndarray,
                  h: float = STRAIN_STEP) -> np.ndarray:
    """Stress (eV/A^3, Voigt) ``(1/V) dE/dD_ab`` by central differences of ``energy(positions, cell)``
    (eV; positions and cell rows in A) under deformations ``D = 1 + h e_a e_b^T``, a <= b.

    Positions and cell rows move as ``r -> D r``. For an energy unchanged by rotations this equals the
    symmetric strain derivative (ASE's stress); a <= b keeps a lower-triangular cell lower-triangular,
    the form OpenMM takes box vectors in.
    """
    stress = np.empty(6)
    for k, (a, b) in enumerate(VOIGT_PAIRS):
        step = np.zeros((3, 3))
        step[a, b] = h
        plus, minus = np.eye(3) + step, np.eye(3) - step
        stress[k] = energy(positions @ plus.T, cell @ plus.T) - energy(positions @ minus.T, cell @ minus.T)
    return stress / (2 * h * abs(np.linalg.det(cell)))


class TIP3PBoxTeacher(MoleculeTeacher):
    """Flexible TIP3P for whole periodic water boxes. ``platform``: OpenMM platform name; ``cutoff``
    (A): Lennard-Jones and PME real-space cutoff; ``switch_width`` (A): Lennard-Jones switched to zero
    over this last stretch before the cutoff (None: cut off sharply); ``ewald_tolerance``: OpenMM's
    PME error tolerance; ``stress``: labels carry the stress (eV/A^3, needs ``switch_width``)."""

    caches = ("_contexts",)
    periodic = True

    def __init__(self, cutoff: float | None = None, platform: str = "CPU", switch_width: float | None = None,
                 ewald_tolerance: float = EWALD_TOLERANCE, stress: bool = False, **kwargs):
        if stress and switch_width is None:
            raise ConfigError("tip3p: option 'stress' needs 'switch_width' (A): a sharp cutoff makes the stress jump")
        self.cutoff = cutoff
        self.platform = platform
        self.switch_width = switch_width
        self.ewald_tolerance = float(ewald_tolerance)
        self.stress = bool(stress)
        self._contexts: dict[tuple, object] = {}
        super().__init__(**kwargs)
        self.implemented_properties = ["energy", "forces", "stress"] if stress else ["energy", "forces"]

    @property
    def info(self) -> TeacherInfo:
        import openmm

        return TeacherInfo(
            name="tip3p",
            level="flexible TIP3P (OpenMM tip3p.xml), PME, whole box incl. intermolecular terms",
            version=openmm.__version__,
            options={"cutoff": self.cutoff, "platform": self.platform, "topology": self._topology_option(),
                     **self._smoothing_options()},
        )

    def _smoothing_options(self) -> dict:
        """The options that make the energy smooth or add the stress, where they differ from their
        defaults (so labels of the default teacher keep their cache keys)."""
        given = {"switch_width": self.switch_width, "ewald_tolerance": self.ewald_tolerance, "stress": self.stress}
        defaults = {"switch_width": None, "ewald_tolerance": EWALD_TOLERANCE, "stress": False}
        return {key: value for key, value in given.items() if value != defaults[key]}

    def _cutoff_nm(self, atoms: Atoms) -> float:
        widths = atoms.cell.volume / np.linalg.norm(np.cross(atoms.cell[[1, 2, 0]], atoms.cell[[2, 0, 1]]), axis=1)
        limit = 0.5 * widths.min() - 1e-3
        cutoff = 9.0 if self.cutoff is None else float(self.cutoff)
        if self.cutoff is not None and cutoff > limit:
            raise TypingError(f"tip3p: {describe_frame(atoms)}: cutoff {cutoff} A exceeds half the cell width")
        return min(cutoff, limit) * NM_PER_A

    def _context(self, n_waters: int, atoms: Atoms):
        """Cached OpenMM Context of ``n_waters`` molecules ordered (O, H, H), (O, H, H), ..."""
        cutoff = self._cutoff_nm(atoms)
        key = (n_waters, round(cutoff, 6))
        if key not in self._contexts:
            import openmm
            from openmm import app, unit

            topology = app.Topology()
            chain = topology.addChain()
            for _ in range(n_waters):
                residue = topology.addResidue("HOH", chain)
                o = topology.addAtom("O", app.element.oxygen, residue)
                for name in ("H1", "H2"):
                    topology.addBond(o, topology.addAtom(name, app.element.hydrogen, residue))
            topology.setPeriodicBoxVectors(atoms.cell.array * NM_PER_A * unit.nanometer)
            switch = {} if self.switch_width is None else {
                "switchDistance": (cutoff - self.switch_width * NM_PER_A) * unit.nanometer}
            system = app.ForceField("tip3p.xml").createSystem(
                topology, nonbondedMethod=app.PME, nonbondedCutoff=cutoff * unit.nanometer,
                rigidWater=False, constraints=None, ewaldErrorTolerance=self.ewald_tolerance, **switch,
            )
            platform = openmm.Platform.getPlatformByName(self.platform)
            properties = {"Threads": "1"} if self.platform == "CPU" else {}
            self._contexts[key] = openmm.Context(system, openmm.VerletIntegrator(1e-3), platform, properties)
        return self._contexts[key]

    def compute(self, atoms: Atoms) -> Label:
        if not atoms.pbc.all():
            raise TypingError(f"tip3p: {describe_frame(atoms)}: needs a periodic box (pbc in all directions)")
        electronic_state(atoms)
        topology = self.frame_topology(atoms)
        order, positions = water_order(atoms, topology, "tip3p")
        context = self._context(len(topology.molecules), atoms)
        context.setPeriodicBoxVectors(*(atoms.cell.array * NM_PER_A))
        label = openmm_label(context, positions, order, len(atoms))
        if not self.stress:
            return label
        stress = strain_stress(lambda r, cell: _energy(context, r, cell), positions, atoms.cell.array)
        context.setPeriodicBoxVectors(*(atoms.cell.array * NM_PER_A))
        return Label(label.energy, label.forces, stress)


def _energy(context, positions: np.ndarray, cell: np.ndarray) -> float:
    """Energy (eV) of an OpenMM ``context`` at ``positions`` in the box ``cell`` (rows; both A)."""
    from openmm.unit import kilojoule_per_mole

    context.setPeriodicBoxVectors(*(cell * NM_PER_A))
    context.setPositions(positions * NM_PER_A)
    return context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(kilojoule_per_mole) * KJ_PER_MOL


def tip3p(**options) -> TIP3PBoxTeacher:
    """Flexible TIP3P box teacher (intra- and intermolecular terms; a sampler for liquid water)."""
    return TIP3PBoxTeacher(**options)

"""Flexible TIP3P water with all intermolecular terms (PME), evaluated with OpenMM: a box sampler.

Unlike the pre-training teachers, which see one isolated molecule at a time, this one labels the
whole (periodic) box: Coulomb by PME, Lennard-Jones within ``cutoff`` (default: 9 A, or just under
half the narrowest cell width), bonds and angle from OpenMM's bundled ``tip3p.xml`` made flexible.
It is cheap (ms per 96-atom box), so classical MD with it samples liquid configurations for the
expensive ab initio labels. Every molecule must be a water; molecules split by the cell boundary
are made whole before OpenMM sees them.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from ffpt.data.frames import describe_frame
from ffpt.teachers.base import Label, TeacherInfo, electronic_state
from ffpt.teachers.topology import MoleculeTeacher, TypingError
from ffpt.teachers.water import openmm_label, water_order
from ffpt.units import NM_PER_A


class TIP3PBoxTeacher(MoleculeTeacher):
    """Flexible TIP3P for whole periodic water boxes. ``platform``: OpenMM platform name."""

    caches = ("_contexts",)

    def __init__(self, cutoff: float | None = None, platform: str = "CPU", **kwargs):
        self.cutoff = cutoff
        self.platform = platform
        self._contexts: dict[tuple, object] = {}
        super().__init__(**kwargs)

    @property
    def info(self) -> TeacherInfo:
        import openmm

        return TeacherInfo(
            name="tip3p",
            level="flexible TIP3P (OpenMM tip3p.xml), PME, whole box incl. intermolecular terms",
            version=openmm.__version__,
            options={"cutoff": self.cutoff, "platform": self.platform, "topology": self._topology_option()},
        )

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
            system = app.ForceField("tip3p.xml").createSystem(
                topology, nonbondedMethod=app.PME, nonbondedCutoff=cutoff * unit.nanometer,
                rigidWater=False, constraints=None,
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
        return openmm_label(context, positions, order, len(atoms))


def tip3p(**options) -> TIP3PBoxTeacher:
    """Flexible TIP3P box teacher (intra- and intermolecular terms; a sampler for liquid water)."""
    return TIP3PBoxTeacher(**options)

"""Normal-mode sampling: Boltzmann-distributed displacements along the force field's normal modes.

The Hessian is taken by central finite differences of the teacher's forces at the seed's
force-field minimum. Modes are found per molecule (classical teachers have no intermolecular
term, so the Hessian is block-diagonal) after projecting out each molecule's rigid translations
and rotations. At temperature T, normal coordinate k of mass-weighted eigenvalue lambda_k is drawn
from N(0, k_B T / lambda_k): the classical harmonic Boltzmann distribution, whose mean energy is
k_B T / 2 per mode. Modes of negative curvature use |lambda_k|; modes with |lambda_k| below
``MIN_CURVATURE`` (eV/A^2/amu, about 1.6 cm^-1) are left unexcited.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from ase import Atoms, units
from ase.optimize import BFGS

from ffpt import keys
from ffpt.sampling.labelling import OVERLAP, bind, draw_frames, label_positions
from ffpt.teachers.base import Teacher
from ffpt.teachers.topology import Topology

MIN_CURVATURE = 1e-5  # eV/A^2/amu


@dataclass(frozen=True)
class NormalModes:
    """Vibrational modes of a frame at a minimum.

    ``minimum``: the geometry (A); ``reference``: the frame whose bonding was kept;
    ``curvatures``: mass-weighted Hessian eigenvalues, eV/A^2/amu, shape (n_modes,);
    ``displacements``: Cartesian displacement (A) per unit normal coordinate (A amu^1/2),
    shape (n_modes, n_atoms, 3).
    """

    minimum: Atoms
    reference: Atoms
    curvatures: np.ndarray
    displacements: np.ndarray

    @property
    def wavenumbers(self) -> np.ndarray:
        """Harmonic wavenumbers, cm^-1 (negative for negative curvature)."""
        omega = np.sqrt(np.abs(self.curvatures) * units._e / (units._amu * 1e-20))  # rad/s
        return np.sign(self.curvatures) * omega / (2 * np.pi * units._c * 100)


def minimize(seed: Atoms, teacher: Teacher, fmax: float = 1e-3, steps: int = 2000) -> Atoms:
    """Force-field minimum near ``seed`` (BFGS to ``fmax`` eV/A); raises if not converged."""
    atoms = seed.copy()
    atoms.calc = teacher
    if not BFGS(atoms, logfile=None).run(fmax=fmax, steps=steps):
        raise RuntimeError(
            f"normal modes: {seed.info.get(keys.SEED_NAME, seed.get_chemical_formula())}: "
            f"force-field minimisation did not reach fmax={fmax} eV/A in {steps} steps"
        )
    atoms.calc = None
    return atoms


def hessian(atoms: Atoms, teacher: Teacher, delta: float = 0.005) -> np.ndarray:
    """Symmetric Hessian (eV/A^2), shape (3N, 3N), by central differences of forces with step ``delta`` (A)."""
    n = len(atoms)
    h = np.zeros((3 * n, 3 * n))
    probe = atoms.copy()
    for a in range(n):
        for c in range(3):
            column = []
            for sign in (1.0, -1.0):
                probe.positions = atoms.positions
                probe.positions[a, c] += sign * delta
                column.append(teacher.label(probe).forces.ravel())
            h[:, 3 * a + c] = -(column[0] - column[1]) / (2 * delta)
    return 0.5 * (h + h.T)


def _internal_basis(positions: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Orthonormal basis (3n, 3n - n_rigid) of mass-weighted motions free of rigid translation/rotation."""
    sqrt_m = np.sqrt(masses)
    centred = positions - (masses[:, None] * positions).sum(0) / masses.sum()
    rigid = []
    for axis in np.eye(3):
        rigid.append((sqrt_m[:, None] * axis).ravel())
        rigid.append((sqrt_m[:, None] * np.cross(axis, centred)).ravel())
    u, s, _ = np.linalg.svd(np.array(rigid).T, full_matrices=True)
    rank = int(np.sum(s > 1e-8 * s.max()))
    return u[:, rank:]


def normal_modes(
    seed: Atoms,
    teacher: Teacher,
    *,
    reference: Atoms | None = None,
    optimize: bool = True,
    delta: float = 0.005,
    fmax: float = 1e-3,
) -> NormalModes:
    """Normal modes of ``seed`` (at its force-field minimum if ``optimize``), molecule by molecule.

    The teacher keeps the bonding of ``reference`` (default: ``seed``), whose molecules are used.
    """
    reference = seed if reference is None else reference
    teacher = bind(teacher, reference)
    minimum = minimize(seed, teacher, fmax) if optimize else seed.copy()
    h = hessian(minimum, teacher, delta)
    masses = minimum.get_masses()
    topology = getattr(teacher, "topology", None) or Topology.perceive(reference)
    curvatures, displacements = [], []
    for molecule in topology.molecules:
        if len(molecule.indices) < 2:
            continue
        idx = np.array(molecule.indices)
        coords = (3 * idx[:, None] + np.arange(3)).ravel()
        m = masses[idx]
        inv_sqrt_m = np.repeat(1 / np.sqrt(m), 3)
        weighted = h[np.ix_(coords, coords)] * np.outer(inv_sqrt_m, inv_sqrt_m)
        basis = _internal_basis(molecule.positions(minimum), m)
        values, vectors = np.linalg.eigh(basis.T @ weighted @ basis)
        for value, vector in zip(values, (basis @ vectors).T):
            full = np.zeros((len(minimum), 3))
            full[idx] = (inv_sqrt_m * vector).reshape(-1, 3)
            curvatures.append(value)
            displacements.append(full)
    shape = (len(curvatures), len(minimum), 3)
    return NormalModes(minimum, reference, np.array(curvatures), np.array(displacements).reshape(shape))


def normal_mode_frames(
    modes: NormalModes,
    teacher: Teacher,
    temperature: float,
    n_frames: int,
    rng: np.random.Generator,
    *,
    overlap: float = OVERLAP,
    progress: Callable[[int], None] | None = None,
) -> list[Atoms]:
    """``n_frames`` labelled frames displaced along ``modes`` with Boltzmann amplitudes at ``temperature`` (K).

    Draws with two atoms closer than ``overlap`` x their covalent-radius sum are redrawn.
    """
    if temperature < 0 or n_frames < 0:
        raise ValueError(f"normal modes: need temperature >= 0 and n_frames >= 0 (got {temperature}, {n_frames})")
    active = np.abs(modes.curvatures) >= MIN_CURVATURE
    widths = np.zeros_like(modes.curvatures)
    widths[active] = np.sqrt(units.kB * temperature / np.abs(modes.curvatures[active]))  # A amu^1/2
    bound = bind(teacher, modes.reference)
    config_type = f"nm_T{temperature:g}"
    provenance = teacher.info
    minimum = modes.minimum
    return draw_frames(
        minimum,
        lambda: minimum.positions + np.tensordot(widths * rng.standard_normal(len(widths)), modes.displacements, axes=1),
        n_frames,
        lambda positions: label_positions(bound, minimum, positions, config_type, provenance),
        overlap,
        progress,
    )

"""Force-field molecular dynamics (Langevin, NVT) sampling at one temperature, on the MD engine."""

from __future__ import annotations

from typing import Callable

import numpy as np
from ase import Atoms

from ffpt.keys import SEED_NAME
from ffpt.sampling.labelling import OVERLAP, bind, draw_frames, labelled_frame
from ffpt.dynamics.engine import Dynamics, Integrator
from ffpt.teachers.base import Teacher


def md_frames(
    seed: Atoms,
    teacher: Teacher,
    temperature: float,
    n_frames: int,
    rng: np.random.Generator,
    *,
    reference: Atoms | None = None,
    stride: int = 10,
    timestep: float = 0.5,
    friction: float = 0.01,
    equilibration: int = 100,
    overlap: float = OVERLAP,
    progress: Callable[[int], None] | None = None,
) -> list[Atoms]:
    """``n_frames`` labelled frames, one every ``stride`` Langevin steps after ``equilibration`` steps.

    ``temperature`` K, ``timestep`` fs, ``friction`` 1/fs. Velocities start from a Maxwell-Boltzmann
    distribution at ``temperature`` with no net momentum or rotation; the centre of mass stays
    fixed. The teacher keeps the bonding of ``reference`` (default: ``seed``) and is the MD
    calculator, so labels cost nothing extra. Frames where atoms come closer than ``overlap`` x
    their covalent-radius sum (molecules of one frame do not repel each other) are not recorded.
    A teacher error propagates (no frames are invented).
    """
    if n_frames < 0 or stride < 1 or equilibration < 0:
        raise ValueError(
            f"md: need n_frames >= 0, stride >= 1, equilibration >= 0 (got {n_frames}, {stride}, {equilibration})"
        )
    atoms = seed.copy()
    atoms.calc = bind(teacher, seed if reference is None else reference)
    integrator = Integrator("langevin", timestep_fs=timestep, temperature_K=temperature, friction_per_fs=friction)
    dynamics = Dynamics(atoms, integrator, rng)
    dynamics.initialize()
    dynamics.run(equilibration)
    config_type = f"md_T{temperature:g}"
    provenance = teacher.info

    def advance() -> np.ndarray:
        dynamics.run(dynamics.step + stride)
        return atoms.positions.copy()

    def label(positions: np.ndarray) -> Atoms:
        energy = atoms.get_potential_energy()
        forces = atoms.get_forces(apply_constraint=False)
        if not (np.isfinite(energy) and np.all(np.isfinite(forces))):
            where = seed.info.get(SEED_NAME, seed.get_chemical_formula())
            raise FloatingPointError(f"md: {where} at {temperature:g} K: non-finite label")
        return labelled_frame(seed, positions, energy, forces, config_type, provenance)

    return draw_frames(seed, advance, n_frames, label, overlap, progress)

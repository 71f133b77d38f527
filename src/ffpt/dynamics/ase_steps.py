"""ASE's velocity Verlet, Langevin and Bussi steps, operation for operation, without ASE's per-call copies.

ASE's ``step`` copies positions, momenta and masses on every ``get_*`` call, re-derives the centre
of mass through :class:`ase.constraints.FixCom` and checks array shapes on every ``set_*``; for a
small molecule that costs more than the model. :func:`lean_step` returns a step function that does
the same floating-point operations in the same order on the atoms' own arrays, draws the same numbers
from the integrator's generator and asks the calculator for forces the same two times (ASE's first
request of a step is answered from the calculator's cache), so positions and momenta equal ASE's
bit for bit (tests). It applies to :class:`~ase.md.verlet.VelocityVerlet`,
:class:`~ase.md.langevin.Langevin` (``fixcm=False``) and :class:`~ase.md.bussi.Bussi` on atoms
without constraints or with one whole-system ``FixCom``; anything else steps through ASE.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from ase import Atoms
from ase.constraints import FixCom
from ase.md.bussi import Bussi
from ase.md.langevin import Langevin
from ase.md.verlet import VelocityVerlet


class _Arrays:
    """The atoms' position and momentum arrays, updated in place as ``Atoms.set_positions`` and
    ``Atoms.set_momenta`` update them, with ``FixCom``'s corrections when the atoms carry it."""

    def __init__(self, atoms: Atoms):
        self.atoms = atoms
        self.masses = atoms.get_masses()  # (N,), amu, as ASE's get_masses() returns them
        self.column = self.masses[:, None]
        self.total_mass = self.masses.sum()  # FixCom sums the same masses on every call
        self.fix_com = bool(atoms.constraints)  # only FixCom gets here (see lean_step)

    @property
    def positions(self) -> np.ndarray:
        return self.atoms.arrays["positions"]

    @property
    def momenta(self) -> np.ndarray:
        return self.atoms.arrays["momenta"]

    def set_positions(self, new: np.ndarray) -> None:
        """``atoms.set_positions(new)`` (``new`` is a fresh array and may be changed)."""
        if self.fix_com:  # FixCom.adjust_positions: keep the old centre of mass
            masses = self.masses
            old_cm = masses @ self.positions / self.total_mass
            new_cm = masses @ new / self.total_mass
            new += old_cm - new_cm
        self.positions[:] = new

    def set_momenta(self, new: np.ndarray, apply_constraint: bool = True) -> None:
        """``atoms.set_momenta(new, apply_constraint)`` (``new`` is a fresh array and may be changed)."""
        if apply_constraint and self.fix_com:  # FixCom.adjust_momenta: zero centre-of-mass velocity
            velocity_com = new.sum(axis=0) / self.total_mass
            new -= self.column * velocity_com
        self.momenta[:] = new


def _verlet(dyn: VelocityVerlet, arrays: _Arrays) -> Callable[[], None]:
    atoms = dyn.atoms

    def step() -> None:  # VelocityVerlet.step
        forces = atoms.get_forces(md=True)
        p = arrays.momenta.copy()
        p += 0.5 * dyn.dt * forces
        masses = arrays.column
        r = arrays.positions.copy()
        arrays.set_positions(r + dyn.dt * p / masses)
        if arrays.fix_com:
            p = (arrays.positions - r) * masses / dyn.dt
        arrays.set_momenta(p, apply_constraint=False)
        forces = atoms.get_forces(md=True)
        arrays.set_momenta(arrays.momenta + 0.5 * dyn.dt * forces)

    return step


def _bussi(dyn: Bussi, arrays: _Arrays) -> Callable[[], None]:
    verlet = _verlet(dyn, arrays)
    atoms = dyn.atoms

    def step() -> None:  # Bussi.step: scale_velocities, then the velocity-Verlet step
        kinetic_energy = atoms.get_kinetic_energy()
        alpha = dyn.calculate_alpha(kinetic_energy)
        arrays.set_momenta(alpha * arrays.momenta)
        dyn.transferred_energy += (alpha**2 - 1.0) * kinetic_energy
        verlet()

    return step


def _langevin(dyn: Langevin, arrays: _Arrays) -> Callable[[], None]:
    atoms = dyn.atoms
    shape = (2, len(atoms), 3)  # xi and eta in one draw: the generator fills arrays element by element

    def step() -> None:  # Langevin.step with fix_com False (FixCom, if any, acts as a constraint)
        forces = atoms.get_forces(md=True)
        v = arrays.momenta / arrays.column
        xi, eta = dyn.rng.standard_normal(size=shape)
        rnd_pos = dyn.c5 * eta
        rnd_vel = dyn.c3 * xi - dyn.c4 * eta
        v += dyn.c1 * forces / dyn.masses - dyn.c2 * v + rnd_vel
        x = arrays.positions.copy()
        arrays.set_positions(x + dyn.dt * v + rnd_pos)
        v = (arrays.positions - x - rnd_pos) / dyn.dt
        forces = atoms.get_forces(md=True)
        v += dyn.c1 * forces / dyn.masses - dyn.c2 * v + rnd_vel
        arrays.set_momenta(v * dyn.masses)
        dyn.v, dyn.rnd_pos, dyn.rnd_vel = v, rnd_pos, rnd_vel  # as ASE leaves them

    return step


def lean_step(dyn) -> Callable[[], None]:
    """A function doing ``dyn.step()`` (return value aside) with fewer copies, or ``dyn.step`` itself
    where the lean path does not apply (another integrator, ``fixcm=True``, other constraints, an
    atoms object with custom ``get_forces``)."""
    atoms = dyn.atoms
    plain = type(atoms) is Atoms and "momenta" in atoms.arrays
    constraints_ok = all(type(c) is FixCom and c.index == slice(None) for c in atoms.constraints)
    if not (plain and constraints_ok and len(atoms.constraints) <= 1):
        return dyn.step
    arrays = _Arrays(atoms)
    kind = type(dyn)
    if kind is VelocityVerlet:
        return _verlet(dyn, arrays)
    if kind is Bussi:
        return _bussi(dyn, arrays)
    if kind is Langevin and not dyn.fix_com:
        return _langevin(dyn, arrays)
    return dyn.step

"""Well-tempered metadynamics on top of any ASE calculator.

:class:`MetadynamicsCalculator` wraps a base calculator and adds the bias
``V(s, t) = sum_k w_k exp(-sum_d (s_d - s_d(t_k))^2 / (2 sigma_d^2))`` (eV) on collective
variables ``s`` (see :mod:`ffpt.simulate.cvs`), plus optional walls. Hills are deposited every
``pace`` MD steps with the well-tempered height ``w = w0 exp(-V(s, t) / (kB dT))``,
``dT = T (gamma - 1)``, so that at long times ``F(s) = -gamma/(gamma - 1) V(s, t) + const``.
Bias forces are ``-sum_d dV/ds_d ds_d/dr`` from analytic CV gradients.

:func:`run_metadynamics` runs ASE Langevin dynamics with the bias, writes PLUMED-style
``HILLS`` and ``COLVAR`` files and an extxyz trajectory, checkpoints, and resumes after a kill
exactly where the last checkpoint left off (same trajectory as an uninterrupted run).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator, all_changes

from ffpt.fileio import atomic_path, atomic_write_text
from ffpt.simulate.cvs import CollectiveVariable
from ffpt.simulate.hills import (
    FS_PER_PS,
    KJ_PER_MOL,
    Hills,
    format_hill,
    read_hills,
    write_hills,
)


@dataclass(frozen=True)
class Wall:
    """PLUMED ``UPPER_WALLS``/``LOWER_WALLS``: ``kappa ((s - at) / eps)^exponent`` beyond ``at``.

    ``kappa`` in eV, ``at`` and ``eps`` in the CV's unit.
    """

    cv: CollectiveVariable
    at: float
    kappa: float
    exponent: int = 2
    eps: float = 1.0
    upper: bool = True

    def energy_and_forces(self, atoms: Atoms) -> tuple[float, np.ndarray]:
        s, grad = self.cv.compute(atoms)
        x = (s - self.at) / self.eps
        if (self.upper and x <= 0) or (not self.upper and x >= 0):
            return 0.0, np.zeros((len(atoms), 3))
        energy = self.kappa * x**self.exponent
        dEds = self.kappa * self.exponent * x ** (self.exponent - 1) / self.eps
        return float(energy), -dEds * grad


class MetadynamicsCalculator(Calculator):
    """Base calculator + well-tempered metadynamics bias (+ walls).

    Parameters: ``cvs`` list of CVs; ``sigma`` Gaussian widths (one per CV, CV units);
    ``height`` initial hill height w0 (eV); ``pace`` MD steps between hills; ``biasfactor`` gamma > 1;
    ``temperature`` (K); ``hills_file`` PLUMED HILLS file to append to (None: keep in memory);
    ``restart``: continue the bias stored in an existing ``hills_file``; ``walls``: extra restraints.
    """

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(
        self,
        base_calculator: Calculator,
        cvs: Sequence[CollectiveVariable],
        sigma: Sequence[float],
        height: float,
        pace: int,
        biasfactor: float,
        temperature: float,
        hills_file: str | os.PathLike | None = None,
        *,
        restart: bool = False,
        walls: Sequence[Wall] = (),
    ):
        super().__init__()
        self.base = base_calculator
        self.cvs = list(cvs)
        if not self.cvs:
            raise ValueError("metadynamics needs at least one collective variable")
        self.sigma = np.asarray(sigma, float).reshape(-1)
        if len(self.sigma) != len(self.cvs):
            raise ValueError(f"{len(self.cvs)} CVs but {len(self.sigma)} sigma values")
        if np.any(self.sigma <= 0):
            raise ValueError(f"sigma must be positive, got {self.sigma.tolist()}")
        if height <= 0 or pace < 1 or temperature <= 0:
            raise ValueError(f"need height > 0, pace >= 1, temperature > 0 (got {height}, {pace}, {temperature})")
        self.height = float(height)
        self.pace = int(pace)
        self.temperature = float(temperature)
        self.walls = list(walls)
        names = tuple(cv.name for cv in self.cvs)
        if len(set(names)) != len(names):
            raise ValueError(f"CV names must be unique, got {names}")
        scales = [cv.plumed_scale for cv in self.cvs]
        self.hills_file = None if hills_file is None else Path(hills_file)
        if self.hills_file is not None and self.hills_file.exists() and restart:
            self.hills = read_hills(self.hills_file, scales)
            if self.hills.names != names:
                raise ValueError(f"{self.hills_file}: CVs {self.hills.names} differ from {names}")
            if not np.isclose(self.hills.biasfactor, biasfactor, rtol=1e-6):
                raise ValueError(f"{self.hills_file}: biasf {self.hills.biasfactor} differs from {biasfactor}")
        elif self.hills_file is not None and self.hills_file.exists():
            raise FileExistsError(f"{self.hills_file} exists; pass restart=True to continue its bias")
        else:
            self.hills = Hills(names, biasfactor, scales)
            if self.hills_file is not None:
                write_hills(self.hills_file, self.hills)
        self.cv_values = np.full(len(self.cvs), np.nan)  # at the last calculation
        self.bias_energy = 0.0  # metadynamics bias at the last calculation, eV
        self.wall_energy = 0.0  # wall energy at the last calculation, eV
        self.base_energy = float("nan")  # unbiased energy at the last calculation, eV
        self._base_results: tuple[float, np.ndarray] | None = None

    @property
    def delta_t(self) -> float:
        """dT = T (gamma - 1), K."""
        return self.temperature * (self.hills.biasfactor - 1.0)

    def collective_variables(self, atoms: Atoms) -> tuple[np.ndarray, np.ndarray]:
        """CV values (d,) and gradients (d, n_atoms, 3) of ``atoms``."""
        values, grads = zip(*(cv.compute(atoms) for cv in self.cvs))
        return np.array(values), np.stack(grads)

    def _bias_terms(self, atoms: Atoms) -> tuple[np.ndarray, float, np.ndarray]:
        s, grads = self.collective_variables(atoms)
        v, dv = self.hills.evaluate(s)
        return s, v, -np.einsum("d,dnk->nk", dv, grads)

    def bias(self, atoms: Atoms) -> tuple[float, np.ndarray]:
        """Metadynamics bias energy (eV) and forces (eV/A) at ``atoms``, walls excluded."""
        _, v, forces = self._bias_terms(atoms)
        return v, forces

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if isinstance(self.base, Calculator):  # this wrapper already caches: skip the base's cache check
            self.base.calculate(self.atoms, ["energy", "forces"], system_changes)
            energy, forces = self.base.results["energy"], self.base.results["forces"]
        else:
            energy, forces = self.base.get_potential_energy(self.atoms), self.base.get_forces(self.atoms)
        self._base_results = (float(energy), np.array(forces, dtype=float))
        self._update_bias_results()

    def _update_bias_results(self) -> None:
        energy, forces = self._base_results
        s, v, bias_forces = self._bias_terms(self.atoms)
        total_forces = forces + bias_forces
        wall_energy = 0.0
        for wall in self.walls:
            e, f = wall.energy_and_forces(self.atoms)
            wall_energy += e
            total_forces += f
        self.cv_values, self.bias_energy, self.wall_energy = s, v, wall_energy
        self.base_energy = energy
        total = energy + v + wall_energy
        self.results = {"energy": total, "free_energy": total, "forces": total_forces}

    def deposit(self, atoms: Atoms, time: float) -> float:
        """Add a hill at the CVs of ``atoms`` at ``time`` (fs); returns its height (eV)."""
        s, _ = self.collective_variables(atoms)
        v, _ = self.hills.evaluate(s)
        w = self.height * np.exp(-v / (units.kB * self.delta_t))
        self.hills.add(time, s, self.sigma, w)
        if self.hills_file is not None:
            with open(self.hills_file, "a") as fh:
                fh.write(format_hill(self.hills, len(self.hills) - 1))
        if self._base_results is not None and self.atoms is not None and not self.check_state(atoms):
            self._update_bias_results()  # same positions: only the bias part changes
        else:
            self.reset()
        return float(w)

    def attach(self, dyn, first_step: int = 0) -> None:
        """Deposit from an ASE dynamics every ``pace`` steps; step numbers continue from ``first_step``."""

        def observer():
            step = first_step + dyn.nsteps
            if step % self.pace == 0:
                self.deposit(dyn.atoms, step * dyn.dt / units.fs)

        dyn.attach(observer, interval=1)


@dataclass(frozen=True)
class MetadParameters:
    """Run settings. Units: fs, K, 1/fs, eV; sigma in CV units."""

    steps: int
    temperature: float
    sigma: tuple[float, ...]
    height: float
    pace: int = 100
    biasfactor: float = 10.0
    timestep: float = 0.5
    friction: float = 0.01
    seed: int = 0
    colvar_stride: int = 10
    trajectory_stride: int = 100  # 0: no trajectory
    checkpoint_every: int = 1000


@dataclass(frozen=True)
class MetadResult:
    """Where a run wrote its output and the final hills."""

    out_dir: Path
    hills_file: Path
    colvar_file: Path
    trajectory_file: Path | None
    hills: Hills
    steps: int


@dataclass(frozen=True)
class Colvar:
    """COLVAR rows in ffpt units: time (fs), CV values (n, d), bias and wall energies (eV)."""

    names: tuple[str, ...]
    time: np.ndarray
    values: np.ndarray
    bias: np.ndarray
    wall: np.ndarray


def _colvar_header(names) -> str:
    return f"#! FIELDS time {' '.join(names)} metad.bias walls.bias\n"


def read_colvar(path: str | os.PathLike, scales=None) -> Colvar:
    """Read a COLVAR file written by :func:`run_metadynamics` (PLUMED units) into ffpt units."""
    path = Path(path)
    fields, rows = None, []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        words = line.split()
        if not words:
            continue
        if words[:2] == ["#!", "FIELDS"]:
            fields = words[2:]
        elif not words[0].startswith("#"):
            if fields is None or len(words) != len(fields):
                raise ValueError(f"{path}:{lineno}: row does not match the '#! FIELDS' header")
            try:
                rows.append([float(w) for w in words])
            except ValueError as exc:
                raise ValueError(f"{path}:{lineno}: not a number ({exc})") from None
    if fields is None or fields[0] != "time" or fields[-2:] != ["metad.bias", "walls.bias"]:
        raise ValueError(f"{path}: not a ffpt COLVAR file (header {fields})")
    data = np.asarray(rows, float).reshape(-1, len(fields))
    names = tuple(fields[1:-2])
    scales = np.ones(len(names)) if scales is None else np.asarray(scales, float)
    return Colvar(names, data[:, 0] * FS_PER_PS, data[:, 1:-2] / scales,
                  data[:, -2] * KJ_PER_MOL, data[:, -1] * KJ_PER_MOL)


def _save_checkpoint(path: Path, step: int, atoms: Atoms, hills: Hills) -> None:
    """Step, positions, momenta and the exact hills (HILLS text is rounded), atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, step=step, numbers=atoms.numbers, positions=atoms.positions, momenta=atoms.get_momenta(),
                 hill_time=hills.time, hill_center=hills.center, hill_sigma=hills.sigma,
                 hill_height=hills.height)


def _truncate_outputs(out: Path, step: int, time: float, hills: Hills, traj: Path | None) -> None:
    """Rewrite what a killed run wrote after its last checkpoint (``step``, ``time`` fs)."""
    write_hills(out / "HILLS", hills)
    colvar = out / "COLVAR"
    lines = colvar.read_text().splitlines(keepends=True)
    keep = [ln for ln in lines if ln.startswith("#") or (ln.endswith("\n") and ln.strip() and
            float(ln.split()[0]) * FS_PER_PS <= time + 1e-6)]
    atomic_write_text(colvar, "".join(keep))
    if traj is not None and traj.exists():
        import ase.io

        frames = [a for a in ase.io.read(traj, ":", format="extxyz") if a.info["step"] <= step]
        tmp = traj.with_suffix(".tmp.xyz")
        ase.io.write(tmp, frames, format="extxyz")
        os.replace(tmp, traj)


def run_metadynamics(
    atoms: Atoms,
    calculator: Calculator,
    cvs: Sequence[CollectiveVariable],
    params: MetadParameters,
    out_dir: str | os.PathLike,
    *,
    walls: Sequence[Wall] = (),
    progress: bool = True,
) -> MetadResult:
    """Langevin MD (ASE) with a well-tempered metadynamics bias; resumes from ``out_dir``.

    Writes ``HILLS`` and ``COLVAR`` (PLUMED formats, see :mod:`ffpt.simulate.hills`),
    ``trajectory.xyz`` and ``checkpoint.npz`` (every ``checkpoint_every`` steps, atomically).
    The Langevin noise of each checkpoint segment is seeded by ``(seed, first step)``, so a
    resumed run reproduces an uninterrupted one.
    """
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import thermalize_momenta
    from tqdm import tqdm

    p = params
    if p.steps < 0 or p.checkpoint_every < 1 or p.colvar_stride < 1 or p.trajectory_stride < 0:
        raise ValueError(f"invalid run settings: {p}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atoms = atoms.copy()
    scales = [cv.plumed_scale for cv in cvs]
    checkpoint = out / "checkpoint.npz"
    traj = out / "trajectory.xyz" if p.trajectory_stride else None
    step = 0
    if checkpoint.exists():
        state = np.load(checkpoint)
        if not np.array_equal(state["numbers"], atoms.numbers):
            raise ValueError(f"{checkpoint}: atoms differ from the starting structure")
        step = int(state["step"])
        atoms.positions = state["positions"]
        atoms.set_momenta(state["momenta"])
        saved = Hills(tuple(cv.name for cv in cvs), p.biasfactor, scales, state["hill_time"],
                      state["hill_center"], state["hill_sigma"], state["hill_height"])
        _truncate_outputs(out, step, step * p.timestep, saved, traj)
    else:
        for name in ("HILLS", "COLVAR"):
            (out / name).unlink(missing_ok=True)
        if traj is not None:
            traj.unlink(missing_ok=True)
        thermalize_momenta(atoms, p.temperature, rng=np.random.default_rng(p.seed))
        atomic_write_text(out / "COLVAR", _colvar_header([cv.name for cv in cvs]))
    calc = MetadynamicsCalculator(
        calculator, cvs, p.sigma, p.height, p.pace, p.biasfactor, p.temperature,
        out / "HILLS", restart=step > 0, walls=walls,
    )
    if step > 0:
        calc.hills = saved  # full precision; the HILLS text just read back is rounded
    atoms.calc = calc

    def record(global_step: int) -> None:
        time = global_step * p.timestep
        if global_step % p.colvar_stride == 0:
            row = [time / FS_PER_PS, *(calc.cv_values * scales), calc.bias_energy / KJ_PER_MOL,
                   calc.wall_energy / KJ_PER_MOL]
            with open(out / "COLVAR", "a") as fh:
                fh.write(" ".join(f"{v:.10g}" for v in row) + "\n")
        if traj is not None and global_step % p.trajectory_stride == 0:
            import ase.io

            frame = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
            frame.info.update(step=global_step, time=time, bias=calc.bias_energy,
                              energy=calc.base_energy, **dict(zip(calc.hills.names, calc.cv_values)))
            ase.io.write(traj, frame, format="extxyz", append=True)
        if global_step % p.pace == 0:
            calc.deposit(atoms, time)

    bar = tqdm(total=p.steps, initial=step, desc="metad", unit="step", disable=not progress)
    while step < p.steps:
        first = step
        n = min(p.checkpoint_every, p.steps - step)
        dyn = Langevin(atoms, timestep=p.timestep * units.fs, temperature_K=p.temperature,
                       friction=p.friction / units.fs, fixcm=False,
                       rng=np.random.default_rng([p.seed, first]))

        def observer(dyn=dyn, first=first):
            if dyn.nsteps == 0 and first > 0:
                return  # recorded at the end of the previous segment
            record(first + dyn.nsteps)
            bar.update(1 if dyn.nsteps else 0)

        dyn.attach(observer, interval=1)
        dyn.run(n)
        step = first + n
        _save_checkpoint(checkpoint, step, atoms, calc.hills)
    bar.close()
    return MetadResult(out, out / "HILLS", out / "COLVAR", traj, calc.hills, step)

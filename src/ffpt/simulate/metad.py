"""Well-tempered metadynamics on top of any ASE calculator.

:class:`MetadynamicsCalculator` wraps a base calculator and adds the bias
``V(s, t) = sum_k w_k exp(-sum_d (s_d - s_d(t_k))^2 / (2 sigma_d^2))`` (eV) on collective
variables ``s`` (see :mod:`ffpt.simulate.cvs`), plus optional walls. Hills are deposited every
``pace`` MD steps with the well-tempered height ``w = w0 exp(-V(s, t) / (kB dT))``,
``dT = T (gamma - 1)``, so that at long times ``F(s) = -gamma/(gamma - 1) V(s, t) + const``.
Bias forces are ``-sum_d dV/ds_d ds_d/dr`` from analytic CV gradients.

:func:`run_metadynamics` runs ASE Langevin dynamics with the bias on the MD engine
(:mod:`ffpt.dynamics.engine`): hill deposition and COLVAR rows are observers beside the stability
monitors and the trajectory; it checkpoints, and resumes after a kill bit-identically to an
uninterrupted run.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator, all_changes

from ffpt.fileio import atomic_write_text, located_os_error
from ffpt.keys import UNCERTAINTY_KEYS
from ffpt.simulate.config import MonitorConfig, UncertaintyConfig
from ffpt.simulate.uncertainty import is_committee, uncertainty_observers
from ffpt.simulate.cvs import CollectiveVariable
from ffpt.dynamics.engine import (
    CheckpointError,
    Integrator,
    MDResult,
    MDState,
    MonitorObserver,
    Observer,
    read_checkpoint,
    run,
)
from ffpt.simulate.hills import FS_PER_PS, KJ_PER_MOL, Hills, format_hill, read_hills, write_hills
from ffpt.simulate.monitors import build_monitors
from ffpt.dynamics.trajectory import TrajectoryWriter


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
        self._base_spread: dict = {}  # a committee base's disagreement (unbiased), passed through
        if is_committee(base_calculator):
            self.implemented_properties = [*self.implemented_properties, *UNCERTAINTY_KEYS]

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
        self._base_spread = {k: self.base.results[k] for k in UNCERTAINTY_KEYS if k in self.base.results}
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
        self.results = {"energy": total, "free_energy": total, "forces": total_forces, **self._base_spread}

    def deposit(self, atoms: Atoms, time: float) -> float:
        """Add a hill at the CVs of ``atoms`` at ``time`` (fs); returns its height (eV)."""
        s, _ = self.collective_variables(atoms)
        v, _ = self.hills.evaluate(s)
        w = self.height * np.exp(-v / (units.kB * self.delta_t))
        self.hills.add(time, s, self.sigma, w)
        if self.hills_file is not None:
            try:
                with open(self.hills_file, "a") as fh:
                    fh.write(format_hill(self.hills, len(self.hills) - 1))
            except OSError as exc:  # e.g. a full disk: name the file
                raise located_os_error(exc, self.hills_file) from None
        if self._base_results is not None and self.atoms is not None and not self.check_state(atoms):
            self._update_bias_results()  # same positions: only the bias part changes
        else:
            self.reset()
        return float(w)


@dataclass(frozen=True)
class MetadParameters:
    """Run settings. Units: fs, K, 1/fs, eV; sigma in CV units. ``checkpoint_every``, ``check_every``
    (stability monitors), ``colvar_stride`` and ``trajectory_stride`` (0: none) are in MD steps."""

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
    check_every: int = 10


@dataclass(frozen=True)
class MetadResult:
    """Where a run wrote its output and the final hills."""

    out_dir: Path
    hills_file: Path
    colvar_file: Path
    trajectory_file: Path | None
    hills: Hills
    steps: int  # steps integrated
    stability: MDResult  # as ``stability.json``: stable, or when and why a monitor stopped the run


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




class _AppendedFile(Observer):
    """A text file that rows are appended to; a resume cuts it back to the checkpoint's length."""

    def __init__(self, path: Path):
        self.path = path

    def state_dict(self) -> dict:
        return {"bytes": self.path.stat().st_size}

    def load_state_dict(self, state: dict) -> None:
        size = self.path.stat().st_size if self.path.exists() else 0
        if size < state["bytes"]:
            raise CheckpointError(f"{self.path}: {size} bytes, shorter than the checkpoint's {state['bytes']}")
        os.truncate(self.path, state["bytes"])


class ColvarWriter(_AppendedFile):
    """PLUMED COLVAR rows (time ps, CVs in PLUMED units, bias and wall energies kJ/mol) every ``stride`` steps."""

    name = "colvar"

    def __init__(self, path: Path, calc: MetadynamicsCalculator, stride: int):
        super().__init__(path)
        self.calc, self.stride, self.every = calc, stride, stride
        self.scales = np.array([cv.plumed_scale for cv in calc.cvs])

    def start(self, state: MDState) -> None:
        atomic_write_text(self.path, _colvar_header(cv.name for cv in self.calc.cvs))

    def on_step(self, state: MDState) -> None:
        if state.step % self.stride == 0:
            c = self.calc
            row = [state.time_fs / FS_PER_PS, *(c.cv_values * self.scales), c.bias_energy / KJ_PER_MOL,
                   c.wall_energy / KJ_PER_MOL]
            try:
                with open(self.path, "a") as fh:
                    fh.write(" ".join(f"{v:.10g}" for v in row) + "\n")
            except OSError as exc:  # e.g. a full disk: name the file
                raise located_os_error(exc, self.path) from None
        return None


class HillDeposition(_AppendedFile):
    """Deposits a well-tempered hill every ``pace`` steps on the bias calculator and appends it to HILLS.

    The checkpoint keeps the hills at full precision (the HILLS text is rounded).
    """

    name = "hills"

    def __init__(self, path: Path, calc: MetadynamicsCalculator):
        super().__init__(path)
        self.calc = calc
        self.every = calc.pace  # acts on these steps only

    def start(self, state: MDState) -> None:
        write_hills(self.path, self.calc.hills)
        self.calc.hills_file = self.path

    def on_step(self, state: MDState) -> None:
        if state.step % self.calc.pace == 0:
            self.calc.deposit(state.atoms, state.time_fs)
        return None

    def state_dict(self) -> dict:
        h = self.calc.hills
        return {**super().state_dict(), "time": h.time.tolist(), "center": h.center.tolist(),
                "sigma": h.sigma.tolist(), "height": h.height.tolist()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.calc.hills = hills_from_state(self.calc.hills, state)
        self.calc.hills_file = self.path


def hills_from_state(empty: Hills, state: dict) -> Hills:
    """The hills of a :class:`HillDeposition` state (names, bias factor and scales of ``empty``)."""
    return Hills(empty.names, empty.biasfactor, empty.scales, state["time"], state["center"], state["sigma"],
                 state["height"])


def run_metadynamics(
    atoms: Atoms,
    calculator: Calculator,
    cvs: Sequence[CollectiveVariable],
    params: MetadParameters,
    out_dir: str | os.PathLike,
    *,
    walls: Sequence[Wall] = (),
    monitors: MonitorConfig | None = None,
    uncertainty: UncertaintyConfig | None = None,
    config: dict | None = None,
    config_name: str = "metad_config.yaml",
    progress: bool = True,
) -> MetadResult:
    """Langevin MD (ASE, on the MD engine) with a well-tempered metadynamics bias; resumes from ``out_dir``.

    Writes ``HILLS`` and ``COLVAR`` (PLUMED formats, see :mod:`ffpt.simulate.hills`),
    ``trajectory.extxyz`` (frames with the CV values, ``metad_bias``, ``walls_bias`` and the unbiased
    ``epot_model``, eV), ``checkpoint.json`` and ``stability.json`` (see :mod:`ffpt.dynamics.engine`).
    Stability ``monitors`` (default :class:`MonitorConfig`: finite forces, atoms closer than 0.5 A)
    are checked every ``check_every`` steps; the first that fires stops the run, as in ``ffpt md``.
    With a committee calculator the members' disagreement is recorded (``uncertainty``, as in ``ffpt md``).
    ``config`` (default: the parameters and CV names) is saved as ``config_name`` and must match
    on resume (``steps`` aside).
    """
    p = params
    if p.steps < 0 or p.checkpoint_every < 1 or p.colvar_stride < 1 or p.trajectory_stride < 0 or p.check_every < 1:
        raise ValueError(f"invalid run settings: {p}")
    out = Path(out_dir)
    if (out / "checkpoint.npz").exists() and not (out / "checkpoint.json").exists():
        raise CheckpointError(f"{out / 'checkpoint.npz'}: a run of an earlier ffpt cannot be resumed (its HILLS would"
                              " be overwritten); use a new output folder")
    atoms = atoms.copy()
    calc = MetadynamicsCalculator(calculator, cvs, p.sigma, p.height, p.pace, p.biasfactor, p.temperature,
                                  walls=walls)
    chain: list[Observer] = [
        MonitorObserver(build_monitors(monitors or MonitorConfig(), atoms, calculator), p.check_every),
        *uncertainty_observers(uncertainty, calc),
        ColvarWriter(out / "COLVAR", calc, p.colvar_stride),
    ]
    traj = None
    if p.trajectory_stride:
        traj = out / "trajectory.extxyz"
        chain.append(TrajectoryWriter(traj, p.trajectory_stride, extra=lambda state: {
            **dict(zip(calc.hills.names, calc.cv_values.tolist())), "metad_bias": calc.bias_energy,
            "walls_bias": calc.wall_energy, "epot_model": calc.base_energy}))
    deposition = HillDeposition(out / "HILLS", calc)
    chain.append(deposition)
    atoms.calc = calc
    integrator = Integrator("langevin", p.timestep, p.temperature, friction_per_fs=p.friction,
                            fix_com=False, stationary=False, zero_rotation=False)
    if config is None:
        config = {**asdict(p), "cvs": [cv.name for cv in cvs],
                  "walls": [[w.cv.name, w.at, w.kappa, w.exponent, w.eps, w.upper] for w in walls],
                  "monitors": (monitors or MonitorConfig()).model_dump(mode="json")}
    stability = run(atoms, integrator, chain, out, steps=p.steps, seed=p.seed, config=config,
                    config_name=config_name, checkpoint_every=p.checkpoint_every, progress=progress, desc="metad")
    hills = calc.hills
    if deposition.calc.hills_file is None:  # a finished run returned without restoring its observers
        states = read_checkpoint(out)["observers"]
        hills = hills_from_state(calc.hills, next(v for k, v in states.items() if k.endswith(":hills")))
    return MetadResult(out, out / "HILLS", out / "COLVAR", traj, hills, stability.steps, stability)

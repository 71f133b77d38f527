"""Batched replicas: many MD runs advanced together, one evaluator call per step for all of them.

Each replica is the run :func:`ffpt.dynamics.engine.run` would make of its structure, seed and folder:
the same start (Maxwell-Boltzmann momenta from ``numpy.random.default_rng(seed)``, the same momentum
removals), the same integrator arithmetic as ASE's (velocity Verlet, ASE's Langevin scheme, Bussi's
velocity rescaling before a Verlet step; the centre of mass held by ASE's ``FixCom`` rules), its noise
drawn from its own generator in the order ASE draws it. So a replica's trajectory does not depend on
which replicas share its batch, and equals its single run to floating-point rounding (the batched model
call and the per-replica sums round differently; chaos then amplifies that over long runs).

Replicas of different structures and sizes share a batch (the evaluator sees a list of systems,
:mod:`ffpt.models.batched`). Positions, momenta and forces of the replicas still running are held in
concatenated arrays (each replica's ``Atoms`` holds views into them), so an integrator step is a few
numpy operations over the whole batch; only the noise is drawn per replica.

Per replica, as a single run: its observers (monitors, trajectory, committee spread) on the steps
they act on, its ``checkpoint.json`` (the engine's format, so either engine resumes the other's
folder), ``stability.json`` and :class:`~ffpt.dynamics.engine.MDResult`. A replica that fails (a
monitor fires, or its evaluation raises or its coordinates are no longer finite) leaves the batch;
the others go on. After a kill every replica resumes from its own checkpoint and the batch continues
bit-identically to an uninterrupted run (same machine, same batch). Ensembles: ``nve``, ``langevin``,
``bussi`` (``npt`` runs one replica at a time). Units: fs, K, eV, A.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator, PropertyNotImplementedError
from ase.constraints import FixCom

from ffpt.config import ConfigError
from ffpt.dynamics.engine import (CHECKPOINT_FILE, CHECKPOINT_FORMAT, STABILITY_FILE, Integrator, MDResult,
                                  MDState, Observer, ProgressBar, Stop, check_resumable, nonfinite_coordinates,
                                  notify, observer_stride, read_checkpoint)
from ffpt.fileio import atomic_write_json, atomic_write_text, located_os_error

BATCHED_ENSEMBLES = ("nve", "langevin", "bussi")

# evaluate(systems) -> per system a results dict (energy eV, forces eV/A, ...) or the exception it raised
Evaluate = Callable[[Sequence[Atoms]], list]


@dataclass
class ReplicaSpec:
    """One replica: start structure, seed, run folder, its observers in engine order, and its config
    (JSON-able; saved as the batch's ``config_name`` and in the checkpoint, checked on resume)."""

    atoms: Atoms
    seed: int
    out: Path
    observers: Sequence[Observer]
    config: dict


class _Bath:
    """What an observer reads of a Bussi thermostat: the energy it put in so far (eV)."""

    def __init__(self, transferred_energy: float = 0.0):
        self.transferred_energy = transferred_energy


class EvaluatedResults(Calculator):
    """A replica's results at its current positions (energy eV, forces eV/A and whatever else the
    evaluator reported) behind ASE's calculator interface, for its observers. Unlike ASE's
    ``SinglePointCalculator`` it keeps no copy of the atoms and compares none on every ``get_forces``
    (about half a millisecond each): the engine sets it right after evaluating these positions."""

    def __init__(self, results: dict):
        super().__init__()
        self.results = {name: value for name, value in results.items() if value is not None}
        self.implemented_properties = list(self.results)

    def get_property(self, name, atoms=None, allow_calculation=True):
        if name not in self.results:
            raise PropertyNotImplementedError(f"{name}: not among the evaluated results")
        value = self.results[name]
        return value.copy() if isinstance(value, np.ndarray) else value


class Replica:
    """The running state of one replica (its atoms, generator, step, stop and observers)."""

    def __init__(self, spec: ReplicaSpec, integrator: Integrator):
        self.out = Path(spec.out)
        self.config = json.loads(json.dumps(spec.config))  # as it reads back from the checkpoint
        self.atoms = spec.atoms.copy()
        self.atoms.calc = None
        self.rng = np.random.default_rng(spec.seed)
        self.observers = list(spec.observers) + [ProgressBar(0, enabled=False)]  # the engine's keys
        self.bath = _Bath() if integrator.ensemble == "bussi" else None
        self.step, self.stop, self.wall_before = 0, None, 0.0
        self.results: dict = {}
        self.saved: dict | None = None
        self.result: MDResult | None = None
        self.t0 = time.perf_counter()

    @property
    def dynamics(self) -> object:
        return self.bath if self.bath is not None else _NoBath

    def wall_s(self) -> float:
        return self.wall_before + time.perf_counter() - self.t0

    def state(self, dt: float, last: bool) -> MDState:
        """The engine's view of this replica; its atoms carry the evaluated energy and forces."""
        self.atoms.calc = EvaluatedResults(self.results)
        return MDState(self.atoms, self.step, self.step * dt, last, self.wall_s(), self.dynamics, self.stop)

    def observe(self, state: MDState) -> None:
        self.stop = notify(self.observers, state)

    def checkpoint(self, dt: float) -> dict:
        """The engine's checkpoint of this replica (:meth:`ffpt.dynamics.engine.Dynamics.checkpoint`)."""
        return {
            "format": CHECKPOINT_FORMAT, "config": self.config, "numbers": self.atoms.numbers.tolist(),
            "step": self.step, "time_fs": self.step * dt, "cell": self.atoms.cell.array.tolist(),
            "positions": self.atoms.positions.tolist(), "momenta": self.atoms.get_momenta().tolist(),
            "rng": self.rng.bit_generator.state,
            "bath_energy": None if self.bath is None else float(self.bath.transferred_energy),
            "integrator": None, "wall_s": self.wall_s(),
            "observers": {f"{k}:{o.name}": o.state_dict() for k, o in enumerate(self.observers)},
            "stop": None if self.stop is None else asdict(self.stop),
        }

    def save(self, dt: float) -> None:
        """Take the checkpoint; :func:`write_checkpoints` puts it on disk."""
        self.saved = self.checkpoint(dt)

    def restore(self, checkpoint: dict) -> None:
        """Positions, momenta, step, generator, bath energy and observer states of ``checkpoint``."""
        if checkpoint.get("cell") is not None:
            self.atoms.set_cell(np.asarray(checkpoint["cell"], dtype=float), scale_atoms=False)
        self.atoms.set_positions(np.asarray(checkpoint["positions"], dtype=float), apply_constraint=False)
        self.atoms.set_momenta(np.asarray(checkpoint["momenta"], dtype=float), apply_constraint=False)
        self.rng.bit_generator.state = checkpoint["rng"]
        self.step, self.wall_before = int(checkpoint["step"]), float(checkpoint["wall_s"])
        self.stop = Stop(**checkpoint["stop"]) if checkpoint["stop"] is not None else None
        if self.bath is not None and checkpoint.get("bath_energy") is not None:
            self.bath.transferred_energy = float(checkpoint["bath_energy"])
        states = checkpoint["observers"]
        for k, observer in enumerate(self.observers):
            observer.load_state_dict(states.get(f"{k}:{observer.name}", {}))
        self.saved = checkpoint

    def fail(self, error: Exception, dt: float) -> None:
        """A step whose evaluation raised: the engine's ``"finite"`` or ``"calculator"`` stop, marked on
        the last checkpoint (the failing step itself cannot be saved)."""
        self.step += 1
        reason = f"{type(error).__name__}: {error}"
        blow_up = nonfinite_coordinates(self.atoms)
        self.stop = (Stop("finite", f"{blow_up} (the calculator then raised {reason})") if blow_up is not None
                     else Stop("calculator", reason))
        self.saved = dict(self.saved, stop=asdict(self.stop))
        atomic_write_json(self.out / CHECKPOINT_FILE, self.saved, indent=None)

    def finish(self, dt: float) -> MDResult:
        """The replica's :class:`MDResult`, also written to its ``stability.json``."""
        for observer in self.observers:
            observer.close()
        sinks = [o for o in self.observers if o.name == "trajectory"]
        stop = self.stop
        self.result = MDResult(
            stable=stop is None, simulated_fs=self.step * dt, failed_at_fs=self.step * dt if stop else None,
            reason=stop.reason if stop else None, monitor=stop.monitor if stop else None, steps=self.step,
            timestep_fs=dt, n_frames=sinks[0].n_frames if sinks else 0, wall_s=self.wall_s(),
            trajectory=sinks[0].path.name if sinks else None,
            observed={name: summary for name, summary in ((o.name, o.summary()) for o in self.observers)
                      if summary is not None},
        )
        atomic_write_json(self.out / STABILITY_FILE, self.result.as_dict())
        return self.result


def write_checkpoints(replicas: Sequence[Replica]) -> None:
    """Each replica's checkpoint (``saved``), atomically, with one file-system sync for the group: every
    new checkpoint and the frames appended before it (trajectory writers with ``sync=False``) are on
    disk before any checkpoint is replaced (a sync costs about one ``fsync``; 64 replicas would
    otherwise pay 192 per saved step)."""
    if not replicas:
        return
    written, path = [], None
    try:
        for replica in replicas:
            path = replica.out / CHECKPOINT_FILE
            tmp = replica.out / f".{CHECKPOINT_FILE}.{os.getpid()}.tmp"
            tmp.write_text(json.dumps(replica.saved, default=str))
            written.append((tmp, path))
        os.sync()
        for tmp, path in written:
            os.replace(tmp, path)
    except OSError as exc:
        raise located_os_error(exc, path) from None
    finally:
        for tmp, _ in written:
            tmp.unlink(missing_ok=True)


class _NoBathType:
    """The dynamics an observer sees without a Bussi thermostat: no bath energy, no barostat."""


_NoBath = _NoBathType()


# --------------------------------------------------------------------------- batched integrators


class BatchArrays:
    """Positions, momenta, forces and masses of the running replicas, concatenated (N, 3); each
    replica's ``Atoms`` holds views into ``positions`` and ``momenta``."""

    def __init__(self, replicas: Sequence[Replica]):
        self.replicas = list(replicas)
        counts = np.array([len(r.atoms) for r in replicas])
        self.starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(int)
        self.bounds = list(zip(self.starts, self.starts + counts))
        self.segment = np.repeat(np.arange(len(replicas)), counts)
        self.positions = np.concatenate([r.atoms.positions for r in replicas])
        self.momenta = np.concatenate([r.atoms.get_momenta() for r in replicas])
        self.forces = np.concatenate([np.asarray(r.results["forces"], dtype=float) for r in replicas])
        self.masses = np.concatenate([r.atoms.get_masses() for r in replicas])[:, None]
        self.total_mass = np.add.reduceat(self.masses[:, 0], self.starts)[:, None]
        for r, (a, b) in zip(replicas, self.bounds):
            r.atoms.arrays["positions"] = self.positions[a:b]
            r.atoms.arrays["momenta"] = self.momenta[a:b]

    def per_replica_sum(self, values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(values, self.starts, axis=0)

    def hold_centre_of_mass(self, old: np.ndarray, new: np.ndarray) -> None:
        """ASE ``FixCom.adjust_positions``: shift ``new`` so each replica's centre of mass stays at ``old``'s."""
        old_cm = self.per_replica_sum(self.masses * old) / self.total_mass
        new_cm = self.per_replica_sum(self.masses * new) / self.total_mass
        new += (old_cm - new_cm)[self.segment]

    def zero_total_momentum(self, momenta: np.ndarray) -> None:
        """ASE ``FixCom.adjust_momenta``: remove each replica's centre-of-mass velocity."""
        velocity_com = self.per_replica_sum(momenta) / self.total_mass
        momenta -= self.masses * velocity_com[self.segment]

    def kinetic_energy(self) -> np.ndarray:
        """Kinetic energy of each replica (R,), eV."""
        return 0.5 * self.per_replica_sum((self.momenta * (self.momenta / self.masses)).sum(axis=1))


class BatchIntegrator:
    """The engine's :class:`Integrator` (``nve``, ``langevin``, ``bussi``) over a :class:`BatchArrays`.

    :meth:`step` moves every replica one time step; ``evaluate`` gives the forces at the new positions
    (one call for the batch) and its per-replica results are returned (an exception for a replica whose
    evaluation failed; that replica's arrays are then meaningless and it leaves the batch).
    """

    def __init__(self, integrator: Integrator):
        if integrator.ensemble not in BATCHED_ENSEMBLES:
            raise ConfigError(f"key 'batch': batched replicas run ensembles {', '.join(BATCHED_ENSEMBLES)}; "
                              f"'{integrator.ensemble}' runs one replica at a time (leave batch unset)")
        self.spec = integrator
        self.fix_com = integrator.uses_fix_com
        self.dt = integrator.timestep_fs * units.fs
        self.kT = integrator.temperature_K * units.kB
        self.friction = integrator.friction_per_fs / units.fs
        self.exp_term = math.exp(-self.dt / (integrator.taut_fs * units.fs))

    def step(self, arrays: BatchArrays, evaluate: Callable[[], list]) -> list:
        if self.spec.ensemble == "langevin":
            return self._langevin(arrays, evaluate)
        if self.spec.ensemble == "bussi":
            self._rescale(arrays)
        return self._verlet(arrays, evaluate)

    def _update_forces(self, arrays: BatchArrays, results: list) -> None:
        for (a, b), result in zip(arrays.bounds, results):
            arrays.forces[a:b] = result["forces"] if isinstance(result, dict) else 0.0

    def _verlet(self, arrays: BatchArrays, evaluate: Callable[[], list]) -> list:
        """ASE ``VelocityVerlet.step`` (with ``FixCom`` as RATTLE's first and second part)."""
        dt, m = self.dt, arrays.masses
        p = arrays.momenta + 0.5 * dt * arrays.forces
        r = arrays.positions.copy()
        new = r + dt * p / m
        if self.fix_com:
            arrays.hold_centre_of_mass(r, new)
            p = (new - r) * m / dt
        arrays.positions[:] = new
        arrays.momenta[:] = p
        results = evaluate()
        self._update_forces(arrays, results)
        p = arrays.momenta + 0.5 * dt * arrays.forces
        if self.fix_com:
            arrays.zero_total_momentum(p)
        arrays.momenta[:] = p
        return results

    def _rescale(self, arrays: BatchArrays) -> None:
        """ASE ``Bussi.scale_velocities`` of each replica, its two random numbers from its own generator."""
        kinetic = arrays.kinetic_energy()
        alphas = np.empty(len(arrays.replicas))
        for k, replica in enumerate(arrays.replicas):
            ndof = 3 * len(replica.atoms) - (3 if self.fix_com else 0)
            target = 0.5 * self.kT * ndof
            scaling = (1 - self.exp_term) * target / kinetic[k] / ndof
            normal = replica.rng.standard_normal()
            chi2 = 2.0 * replica.rng.standard_gamma(0.5 * (ndof - 1))
            alphas[k] = math.sqrt(self.exp_term + scaling * (chi2 + normal**2)
                                  + 2 * normal * math.sqrt(self.exp_term * scaling))
            replica.bath.transferred_energy += (alphas[k] ** 2 - 1.0) * kinetic[k]
        p = alphas[arrays.segment][:, None] * arrays.momenta
        if self.fix_com:
            arrays.zero_total_momentum(p)
        arrays.momenta[:] = p

    def _langevin(self, arrays: BatchArrays, evaluate: Callable[[], list]) -> list:
        """ASE ``Langevin.step`` (``fixcm=False``; ``FixCom`` as ASE applies it), per-atom constants
        from the masses; ``xi`` then ``eta`` drawn from each replica's generator."""
        dt, fr, m = self.dt, self.friction, arrays.masses
        sigma = np.sqrt(2 * self.kT * fr / m)
        c1 = dt / 2.0 - dt * dt * fr / 8.0
        c2 = dt * fr / 2 - dt * dt * fr * fr / 8.0
        c3 = np.sqrt(dt) * sigma / 2.0 - dt**1.5 * fr * sigma / 8.0
        c5 = dt**1.5 * sigma / (2 * np.sqrt(3))
        c4 = fr / 2.0 * c5
        xi, eta = np.empty_like(arrays.positions), np.empty_like(arrays.positions)
        for replica, (a, b) in zip(arrays.replicas, arrays.bounds):
            xi[a:b] = replica.rng.standard_normal(size=(b - a, 3))
            eta[a:b] = replica.rng.standard_normal(size=(b - a, 3))
        rnd_pos = c5 * eta
        rnd_vel = c3 * xi - c4 * eta
        v = arrays.momenta / m
        v += c1 * arrays.forces / m - c2 * v + rnd_vel
        x = arrays.positions.copy()
        new = x + dt * v + rnd_pos
        if self.fix_com:
            arrays.hold_centre_of_mass(x, new)
        arrays.positions[:] = new
        v = (new - x - rnd_pos) / dt
        results = evaluate()
        self._update_forces(arrays, results)
        v += c1 * arrays.forces / m - c2 * v + rnd_vel
        p = v * m
        if self.fix_com:
            arrays.zero_total_momentum(p)
        arrays.momenta[:] = p
        return results


# --------------------------------------------------------------------------- the batched loop


def _prepare(spec: ReplicaSpec, integrator: Integrator, steps: int, config_name: str) -> Replica | MDResult:
    """A replica ready to start or resume, or the finished result its folder already holds."""
    import yaml

    replica = Replica(spec, integrator)
    others = [type(c).__name__ for c in replica.atoms.constraints if not isinstance(c, FixCom)]
    if others:
        raise ConfigError(f"key 'batch': the structure has constraints ({', '.join(others)}); batched replicas "
                          "take none (leave batch unset)")
    replica.out.mkdir(parents=True, exist_ok=True)
    checkpoint = read_checkpoint(replica.out)
    if checkpoint is not None:
        check_resumable(replica.out, checkpoint, replica.config, replica.atoms, config_name)
        finished = checkpoint["stop"] is not None or checkpoint["step"] >= steps
        if finished and (replica.out / STABILITY_FILE).exists():
            return MDResult.from_dict(json.loads((replica.out / STABILITY_FILE).read_text()))
    atomic_write_text(replica.out / config_name, yaml.safe_dump(replica.config, sort_keys=False))
    if checkpoint is None:
        integrator.initialize_velocities(replica.atoms, replica.rng)
    if integrator.uses_fix_com and not any(isinstance(c, FixCom) for c in replica.atoms.constraints):
        replica.atoms.set_constraint(list(replica.atoms.constraints) + [FixCom()])
    if checkpoint is not None:
        replica.restore(checkpoint)
    return replica


def run_replicas(
    replicas: Sequence[ReplicaSpec],
    evaluate: Evaluate,
    integrator: Integrator,
    *,
    steps: int,
    config_name: str,
    checkpoint_every: int,
    progress: bool = True,
    desc: str | None = None,
) -> list[MDResult]:
    """Run (or resume, or return the finished results of) ``steps`` steps of every replica, together.

    ``evaluate(systems)`` gives each system's results (``energy`` eV, ``forces`` eV/A, anything else a
    calculator reports) or the exception its evaluation raised (:func:`ffpt.models.batched.evaluate_each`).
    An exception on a fresh start frame is an input error and is raised, as the single engine does.
    Returns the replicas' results in order.
    """
    if steps < 0 or checkpoint_every < 1:
        raise ValueError(f"need steps >= 0 and checkpoint_every >= 1 (got {steps}, {checkpoint_every})")
    stepper = BatchIntegrator(integrator)
    dt = integrator.timestep_fs
    prepared = [_prepare(spec, integrator, steps, config_name) for spec in replicas]
    running = [r for r in prepared if isinstance(r, Replica)]
    try:
        _advance(running, stepper, evaluate, steps, checkpoint_every, progress, desc)
    except BaseException:
        for replica in running:
            for observer in replica.observers:
                observer.close()
        raise
    finished = {id(r): r.finish(dt) for r in running}
    return [finished[id(r)] if isinstance(r, Replica) else r for r in prepared]


def _advance(running: list[Replica], stepper: BatchIntegrator, evaluate: Evaluate, steps: int,
             checkpoint_every: int, progress: bool, desc: str | None) -> None:
    """Start the fresh replicas, then step all that still run until each reaches ``steps`` or stops."""
    from tqdm.auto import tqdm

    dt = stepper.spec.timestep_fs
    fresh = [r for r in running if r.saved is None]
    _first_evaluation(running, fresh, evaluate, steps, dt)
    for replica in fresh:
        state = replica.state(dt, last=False)
        for observer in replica.observers:
            observer.start(state)
        replica.observe(state)
        replica.save(dt)
    write_checkpoints(fresh)
    strides = {id(r): [observer_stride(o) for o in r.observers if not isinstance(o, ProgressBar)] for r in running}
    active = [r for r in running if r.stop is None and r.step < steps]
    with tqdm(total=sum(steps - r.step for r in active), desc=desc, unit="replica-step", mininterval=1.0,
              disable=not progress) as bar:
        while active:
            arrays = BatchArrays(active)
            left = False
            while not left:
                results = stepper.step(arrays, lambda: evaluate([r.atoms for r in arrays.replicas]))
                saving = []
                for replica, result in zip(arrays.replicas, results):
                    if isinstance(result, Exception):
                        replica.fail(result, dt)
                        left = True
                        continue
                    replica.results = result
                    replica.step += 1
                    last = replica.step == steps
                    if last or any(replica.step % s == 0 for s in strides[id(replica)]):
                        replica.observe(replica.state(dt, last))
                    if replica.stop is not None or replica.step % checkpoint_every == 0 or last:
                        replica.save(dt)
                        saving.append(replica)
                    left = left or replica.stop is not None or last
                write_checkpoints(saving)
                bar.update(len(arrays.replicas))
            for replica in arrays.replicas:  # own copies again: the next batch arrays leave the leavers out
                replica.atoms.arrays["positions"] = replica.atoms.arrays["positions"].copy()
                replica.atoms.arrays["momenta"] = replica.atoms.arrays["momenta"].copy()
            active = [r for r in active if r.stop is None and r.step < steps]


def _first_evaluation(running: list[Replica], fresh: list[Replica], evaluate: Evaluate, steps: int,
                      dt: float) -> None:
    """Energies and forces of every replica's current frame, in one call. A fresh start frame that
    cannot be evaluated raises (an input error); a resumed replica whose frame fails stops, as its
    single run would at its next step."""
    pending = fresh + [r for r in running if r not in fresh and r.stop is None and r.step < steps]
    for replica, result in zip(pending, evaluate([r.atoms for r in pending])):
        if isinstance(result, Exception):
            if replica in fresh:
                raise result
            replica.fail(result, dt)
        else:
            replica.results = result

"""Molecular dynamics over ASE integrators, with stability monitors, checkpoints and resume.

Ensembles: ``nve`` (velocity Verlet), ``langevin`` (ASE Langevin, NVT) and ``bussi`` (canonical
velocity rescaling, NVT). Units: fs, K, eV, A.

A run directory holds ``trajectory.extxyz`` (or ``.traj``): every ``save_every`` steps a frame with
energy, forces, momenta and ``info`` keys ``step``, ``time_fs``, ``epot``, ``ekin``, ``etot`` (eV),
``temperature_K``, ``wall_s`` (and ``bath_energy``, eV put in by the Bussi thermostat, so that
``etot - bath_energy`` is conserved); ``checkpoint.json``: the state of the last saved frame (positions,
momenta, step, RNG state, monitor state), written atomically after the frame; ``md_config.yaml``;
and, once finished, ``stability.json``. A killed run called again resumes from its last saved frame
and continues exactly as the uninterrupted run would (same seed, same machine).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.calculators.singlepoint import SinglePointCalculator
from ase.constraints import FixCom

from ffpt.fileio import atomic_path, atomic_write_text
from ffpt.data import ENERGY_KEY, FORCES_KEY
from ffpt.config import ConfigError
from ffpt.simulate.config import MDConfig
from ffpt.simulate.monitors import Monitor, build_monitors

TRAJECTORY_FILES = {"extxyz": "trajectory.extxyz", "traj": "trajectory.traj"}
CHECKPOINT_FILE = "checkpoint.json"
STABILITY_FILE = "stability.json"
CONFIG_FILE = "md_config.yaml"


@dataclass(frozen=True)
class MDResult:
    """Outcome of one MD run; ``failed_at_fs`` and ``reason`` are ``None`` when stable."""

    stable: bool
    simulated_fs: float
    failed_at_fs: float | None
    reason: str | None
    monitor: str | None  # name of the monitor that fired, or "calculator"
    steps: int  # steps integrated
    timestep_fs: float
    n_frames: int
    wall_s: float
    trajectory: str

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "MDResult":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


# --------------------------------------------------------------------------- trajectory sinks


class _Sink:
    """A trajectory file that frames are appended to; ``start`` begins it anew."""

    def __init__(self, path: Path):
        self.path = path
        self.n_frames = 0

    def start(self) -> None:
        self.path.unlink(missing_ok=True)
        self.n_frames = 0


class _ExtxyzSink(_Sink):
    """Appends frames to an extxyz file; a resume truncates it to the checkpointed size."""

    def append(self, atoms: Atoms) -> None:
        import ase.io

        with open(self.path, "a") as handle:
            ase.io.write(handle, atoms, format="extxyz")
            handle.flush()
            os.fsync(handle.fileno())
        self.n_frames += 1

    def mark(self) -> dict:
        return {"frames": self.n_frames, "bytes": self.path.stat().st_size}

    def restore(self, mark: dict) -> None:
        size = self.path.stat().st_size if self.path.exists() else 0
        if size < mark["bytes"]:
            raise RuntimeError(f"{self.path}: {size} bytes, shorter than the checkpoint's {mark['bytes']}")
        os.truncate(self.path, mark["bytes"])
        self.n_frames = mark["frames"]


class _TrajSink(_Sink):
    """Appends frames to an ASE trajectory; a resume drops frames written after the checkpoint."""

    def append(self, atoms: Atoms) -> None:
        from ase.io.trajectory import Trajectory

        with Trajectory(self.path, mode="a") as traj:
            traj.write(atoms)
        self.n_frames += 1

    def mark(self) -> dict:
        return {"frames": self.n_frames}

    def restore(self, mark: dict) -> None:
        from ase.io.trajectory import Trajectory

        with Trajectory(self.path) as traj:
            frames = [traj[k] for k in range(min(len(traj), mark["frames"] + 1))]
        if len(frames) < mark["frames"]:
            raise RuntimeError(f"{self.path}: {len(frames)} frames, fewer than the checkpoint's {mark['frames']}")
        if len(frames) > mark["frames"]:
            with atomic_path(self.path) as tmp, Trajectory(tmp, mode="w") as traj:
                for atoms in frames[: mark["frames"]]:
                    traj.write(atoms)
        self.n_frames = mark["frames"]


# --------------------------------------------------------------------------- setup


def initialize_velocities(atoms: Atoms, temperature_K: float, rng: np.random.Generator, zero_rotation: bool) -> None:
    """Maxwell-Boltzmann momenta at ``temperature_K``; zero total momentum (and angular momentum
    of non-periodic systems if ``zero_rotation``)."""
    from ase.md.velocitydistribution import Stationary, ZeroRotation, thermalize_momenta

    thermalize_momenta(atoms, temperature_K, rng=rng)
    Stationary(atoms)
    if zero_rotation and not atoms.pbc.any() and len(atoms) > 2:
        ZeroRotation(atoms)


def make_integrator(atoms: Atoms, config: MDConfig, rng: np.random.Generator):
    """The ASE dynamics object of ``config.ensemble``."""
    dt = config.timestep_fs * units.fs
    if config.ensemble == "nve":
        from ase.md.verlet import VelocityVerlet

        return VelocityVerlet(atoms, timestep=dt)
    if config.ensemble == "langevin":
        from ase.md.langevin import Langevin

        return Langevin(
            atoms, timestep=dt, temperature_K=config.temperature_K,
            friction=config.friction_per_fs / units.fs, fixcm=False, rng=rng,
        )
    from ase.md.bussi import Bussi

    return Bussi(atoms, timestep=dt, temperature_K=config.temperature_K, taut=config.taut_fs * units.fs, rng=rng)


def _frame(atoms: Atoms, step: int, time_fs: float, wall_s: float, bath_energy: float | None) -> Atoms:
    """A copy of ``atoms`` for the trajectory, with energy, forces and MD observables."""
    epot = float(atoms.get_potential_energy())
    ekin = float(atoms.get_kinetic_energy())
    frame = atoms.copy()
    frame.set_constraint()
    frame.calc = SinglePointCalculator(frame, energy=epot, forces=atoms.get_forces(apply_constraint=False))
    frame.info.update(
        step=step, time_fs=time_fs, epot=epot, ekin=ekin, etot=epot + ekin,
        temperature_K=float(atoms.get_temperature()), wall_s=wall_s,
    )
    if bath_energy is not None:
        frame.info["bath_energy"] = bath_energy  # energy put in by the thermostat (eV)
    return frame


def _check(monitors: Sequence[Monitor], atoms: Atoms, time_fs: float) -> tuple[str, str] | None:
    for monitor in monitors:
        reason = monitor.check(atoms, time_fs)
        if reason is not None:
            return monitor.name, reason
    return None


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


# --------------------------------------------------------------------------- run


def run_md(
    atoms: Atoms,
    calculator: Calculator,
    config: MDConfig,
    out_dir: str | os.PathLike,
    *,
    extra_monitors: Sequence[Monitor] = (),
    progress: bool = True,
) -> MDResult:
    """Run (or resume, or return the finished result of) MD from ``atoms`` into ``out_dir``.

    Monitors from ``config.monitors`` (reference topology from ``atoms``) plus ``extra_monitors``
    are checked every ``check_every`` steps and at the last step; the first that fires stops the run.
    A calculator exception during a step also ends the run, recorded as monitor ``"calculator"``.
    """
    from tqdm.auto import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sink = (_ExtxyzSink if config.trajectory_format == "extxyz" else _TrajSink)(
        out / TRAJECTORY_FILES[config.trajectory_format]
    )
    checkpoint = _read_json(out / CHECKPOINT_FILE)
    if checkpoint is not None:
        _check_resumable(out, config, atoms, checkpoint)
        finished = checkpoint["failure"] is not None or checkpoint["step"] >= config.steps
        if finished and (out / STABILITY_FILE).exists():
            return MDResult.from_dict(json.loads((out / STABILITY_FILE).read_text()))
    atomic_write_text(out / CONFIG_FILE, _config_yaml(config))

    monitors = build_monitors(config.monitors, atoms) + list(extra_monitors)
    atoms = atoms.copy()  # keeps the structure's own constraints (e.g. rigid water bonds)
    atoms.info.pop(ENERGY_KEY, None)  # reference labels of the start frame do not describe later frames
    atoms.arrays.pop(FORCES_KEY, None)
    atoms.set_constraint(list(atoms.constraints) + ([FixCom()] if config.fix_com else []))
    atoms.calc = calculator
    rng = np.random.default_rng(config.seed)
    dt_fs = config.timestep_fs

    if checkpoint is None:
        initialize_velocities(atoms, config.temperature_K, rng, config.zero_rotation)
        start, wall_before, bath_energy, failure = 0, 0.0, 0.0, None
        sink.start()
    else:
        atoms.set_positions(np.asarray(checkpoint["positions"]), apply_constraint=False)
        atoms.set_momenta(np.asarray(checkpoint["momenta"]), apply_constraint=False)
        rng.bit_generator.state = checkpoint["rng"]
        start, wall_before = checkpoint["step"], checkpoint["wall_s"]
        bath_energy, failure = checkpoint["bath_energy"], checkpoint["failure"]
        for k, monitor in enumerate(monitors):
            monitor.load_state_dict(checkpoint["monitors"].get(f"{k}:{monitor.name}", {}))
        sink.restore(checkpoint["trajectory"])

    dyn = make_integrator(atoms, config, rng)
    if config.ensemble == "bussi":
        dyn.transferred_energy = bath_energy
    dyn.nsteps = start
    t0 = time.perf_counter()

    def wall() -> float:
        return wall_before + time.perf_counter() - t0

    def bath() -> float | None:
        return float(dyn.transferred_energy) if config.ensemble == "bussi" else None

    def save(step: int) -> None:
        frame = _frame(atoms, step, step * dt_fs, wall(), bath())
        sink.append(frame)
        state = {
            "step": step,
            "time_fs": step * dt_fs,
            "numbers": atoms.numbers.tolist(),
            "positions": atoms.positions.tolist(),
            "momenta": atoms.get_momenta().tolist(),
            "rng": rng.bit_generator.state,
            "bath_energy": bath() or 0.0,
            "wall_s": wall(),
            "trajectory": sink.mark(),
            "monitors": {f"{k}:{m.name}": m.state_dict() for k, m in enumerate(monitors)},
            "failure": failure,
        }
        atomic_write_text(out / CHECKPOINT_FILE, json.dumps(state))

    def fail(step: int, monitor: str, reason: str) -> dict:
        return {"step": step, "time_fs": step * dt_fs, "monitor": monitor, "reason": reason}

    step = start
    if start == 0:
        try:
            atoms.get_forces()
        except Exception as exc:  # a calculator that cannot evaluate the start is a failure at t = 0
            failure = fail(0, "calculator", f"{type(exc).__name__}: {exc}")
        if failure is None:
            found = _check(monitors, atoms, 0.0)
            failure = fail(0, *found) if found is not None else None
            save(0)
    with tqdm(total=config.steps, initial=start, unit="step", disable=not progress, mininterval=1.0) as bar:
        while failure is None and step < config.steps:
            step += 1
            try:
                dyn.step()
            except Exception as exc:  # an exploding model often raises (e.g. neighbour-list overflow)
                failure = fail(step, "calculator", f"{type(exc).__name__}: {exc}")
                _record_failure(out, failure)
                break
            dyn.nsteps = step
            if step % config.check_every == 0 or step == config.steps:
                found = _check(monitors, atoms, step * dt_fs)
                if found is not None:
                    failure = fail(step, *found)
            if failure is not None or step % config.save_every == 0 or step == config.steps:
                save(step)
                bar.set_postfix(T=f"{atoms.get_temperature():.0f}K", refresh=False)
            bar.update(1)

    result = MDResult(
        stable=failure is None,
        simulated_fs=(failure["time_fs"] if failure else step * dt_fs),
        failed_at_fs=failure["time_fs"] if failure else None,
        reason=failure["reason"] if failure else None,
        monitor=failure["monitor"] if failure else None,
        steps=failure["step"] if failure else step,
        timestep_fs=dt_fs,
        n_frames=sink.n_frames,
        wall_s=wall(),
        trajectory=sink.path.name,
    )
    atomic_write_text(out / STABILITY_FILE, json.dumps(result.as_dict(), indent=2))
    return result


def _record_failure(out: Path, failure: dict) -> None:
    """Mark the last checkpoint as failed (the failing step could not be saved as a frame)."""
    path = out / CHECKPOINT_FILE
    state = _read_json(path)
    if state is not None:
        state["failure"] = failure
        atomic_write_text(path, json.dumps(state))


def _config_yaml(config: MDConfig) -> str:
    import yaml

    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def _check_resumable(out: Path, config: MDConfig, atoms: Atoms, checkpoint: dict) -> None:
    """A run directory may only be resumed with the same structure and config (``steps`` aside)."""
    import yaml

    if checkpoint["numbers"] != atoms.numbers.tolist():
        raise ConfigError(f"{out}: checkpoint holds a different structure (atomic numbers differ)")
    saved_path = out / CONFIG_FILE
    if saved_path.exists():
        saved = MDConfig.model_validate(yaml.safe_load(saved_path.read_text()))
        differ = config.resume_compatible(saved)
        if differ:
            raise ConfigError(
                f"{out}: cannot resume, config differs from {saved_path.name} in {', '.join(differ)}"
                " (use a new output directory)"
            )

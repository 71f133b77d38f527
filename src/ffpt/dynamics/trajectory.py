"""Trajectory sinks of the MD engine: frames appended to ``trajectory.extxyz`` or ``trajectory.traj``.

A frame (:func:`md_frame`) holds positions, momenta, energy and forces, and ``info`` keys ``step``,
``time_fs``, ``epot``, ``ekin``, ``etot`` (eV), ``temperature_K``, ``wall_s`` (and ``bath_energy``,
eV put in by the Bussi thermostat, so that ``etot - bath_energy`` is conserved; ``volume_A3`` of
periodic cells and ``pressure_bar`` under a barostat; the cell itself is the frame's; with a committee
calculator ``energy_std`` (eV), ``forces_std_max`` and the per-atom array ``forces_std`` (eV/A)), plus any keys the
run adds (e.g. CV values and bias energies of metadynamics). On resume a file is cut back to the
frames of the checkpoint, so a kill never leaves a duplicated or torn frame.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
from ase import Atoms, units
from ase.calculators.singlepoint import SinglePointCalculator

from ffpt.fileio import atomic_path, located_os_error
from ffpt.keys import ENERGY_STD, FORCES_STD, FORCES_STD_MAX
from ffpt.dynamics.engine import CheckpointError, MDState, Observer, Stop, fsync_file

TRAJECTORY_FILES = {"extxyz": "trajectory.extxyz", "traj": "trajectory.traj"}


def md_frame(state: MDState) -> Atoms:
    """A copy of ``state.atoms`` for the trajectory, with energy, forces and MD observables."""
    atoms = state.atoms
    epot = float(atoms.get_potential_energy())
    ekin = float(atoms.get_kinetic_energy())
    frame = atoms.copy()
    frame.set_constraint()
    frame.calc = SinglePointCalculator(frame, energy=epot, forces=atoms.get_forces(apply_constraint=False))
    frame.info.update(
        step=state.step, time_fs=state.time_fs, epot=epot, ekin=ekin, etot=epot + ekin,
        temperature_K=float(2 * ekin / (atoms.get_number_of_degrees_of_freedom() * units.kB)), wall_s=state.wall_s,
    )
    if state.bath_energy is not None:
        frame.info["bath_energy"] = state.bath_energy  # energy put in by the thermostat (eV)
    if atoms.pbc.all():
        frame.info["volume_A3"] = float(atoms.get_volume())
    pressure = state.pressure_bar
    if pressure is not None:
        frame.info["pressure_bar"] = pressure
    results = atoms.calc.results
    if FORCES_STD in results:  # a committee: the members' disagreement (eV, eV/A)
        frame.info[ENERGY_STD] = float(results[ENERGY_STD])
        frame.info[FORCES_STD_MAX] = float(results[FORCES_STD_MAX])
        frame.arrays[FORCES_STD] = np.asarray(results[FORCES_STD], dtype=float)
    return frame


class TrajectoryWriter(Observer):
    """Appends a frame every ``every`` steps, at the last step and at the step a run stops.

    ``extra(state)`` may return more ``info`` keys for each frame. With ``sync`` each frame is flushed
    to disk as it is written; without, the file is one of :meth:`durable_files` and the run's
    checkpoint writer (:func:`ffpt.dynamics.engine.run`) flushes it before the checkpoint that counts
    its frames lands.
    """

    name = "trajectory"

    def __init__(self, path: str | os.PathLike, every: int, extra: Callable[[MDState], dict] | None = None,
                 sync: bool = True):
        if every < 1:
            raise ValueError(f"trajectory stride must be >= 1 step, got {every}")
        self.path = Path(path)
        self.format = "traj" if self.path.suffix == ".traj" else "extxyz"
        self.every, self.extra, self.sync = int(every), extra, sync
        self.n_frames = 0

    def durable_files(self) -> tuple[Path, ...]:
        return () if self.sync else (self.path,)

    def start(self, state: MDState) -> None:
        self.path.unlink(missing_ok=True)
        self.n_frames = 0

    def on_step(self, state: MDState) -> Stop | None:
        if state.step % self.every == 0 or state.last or state.stop is not None:
            frame = md_frame(state)
            if self.extra is not None:
                frame.info.update(self.extra(state))
            self._append(frame)
            self.n_frames += 1
        return None

    def _append(self, frame: Atoms) -> None:
        try:
            self._write(frame)
        except OSError as exc:  # e.g. a full disk: name the file (the checkpoint cuts a torn frame off)
            raise located_os_error(exc, self.path) from None

    def _write(self, frame: Atoms) -> None:
        if self.format == "extxyz":
            import ase.io

            with open(self.path, "a") as handle:
                ase.io.write(handle, frame, format="extxyz")
                if self.sync:
                    handle.flush()
                    os.fsync(handle.fileno())  # on disk before the checkpoint that counts it
        else:
            from ase.io.trajectory import Trajectory

            with Trajectory(self.path, mode="a") as traj:
                traj.write(frame)
            if self.sync:
                fsync_file(self.path)

    def state_dict(self) -> dict:
        size = self.path.stat().st_size if self.path.exists() else 0
        return {"frames": self.n_frames, "bytes": size}

    def load_state_dict(self, state: dict) -> None:
        """Cut the file back to the checkpoint's frames (an extxyz by bytes, a traj by frames)."""
        frames = state["frames"]
        if self.format == "extxyz":
            size = self.path.stat().st_size if self.path.exists() else 0
            if size < state["bytes"]:
                raise CheckpointError(f"{self.path}: {size} bytes, shorter than the checkpoint's {state['bytes']}")
            os.truncate(self.path, state["bytes"])
        else:
            from ase.io.trajectory import Trajectory

            with Trajectory(self.path) as traj:
                kept = [traj[k] for k in range(min(len(traj), frames + 1))]
            if len(kept) < frames:
                raise CheckpointError(f"{self.path}: {len(kept)} frames, fewer than the checkpoint's {frames}")
            if len(kept) > frames:
                with atomic_path(self.path) as tmp, Trajectory(tmp, mode="w") as traj:
                    for atoms in kept[:frames]:
                        traj.write(atoms)
        self.n_frames = frames

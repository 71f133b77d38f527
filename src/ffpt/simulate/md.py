"""``ffpt md``: molecular dynamics with stability monitors, checkpoints and resume, on the MD engine.

Ensembles: ``nve`` (velocity Verlet), ``langevin`` (ASE Langevin, NVT), ``bussi`` (canonical
velocity rescaling, NVT) and ``npt`` (ASE's isotropic MTK barostat, periodic cells; ``pressure_bar``,
``taup_fs``, ``taut_fs``; ``nvt_steps`` at fixed cell before the barostat starts). Units: fs, K, eV, A, bar.

A run directory holds ``trajectory.extxyz`` (or ``.traj``; frames described in
:mod:`ffpt.dynamics.trajectory`) every ``save_every`` steps; ``checkpoint.json`` (see
:mod:`ffpt.dynamics.engine`) after each saved frame; ``md_config.yaml``; and, once finished,
``stability.json``. A killed run called again resumes from its last checkpoint and continues
exactly as the uninterrupted run would (same seed, same machine).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from ase import Atoms
from ase.calculators.calculator import Calculator

from ffpt.keys import ENERGY, FORCES
from ffpt.dynamics import engine
from ffpt.simulate.config import MDConfig
from ffpt.simulate.uncertainty import uncertainty_observers
from ffpt.dynamics.engine import CHECKPOINT_FILE, STABILITY_FILE, Integrator, MDResult, MonitorObserver, Observer
from ffpt.simulate.monitors import Monitor, build_monitors
from ffpt.dynamics.trajectory import TRAJECTORY_FILES, TrajectoryWriter

CONFIG_FILE = "md_config.yaml"

__all__ = ["CHECKPOINT_FILE", "CONFIG_FILE", "STABILITY_FILE", "TRAJECTORY_FILES", "MDResult", "integrator", "run_md"]


def integrator(config: MDConfig) -> Integrator:
    """The engine integrator of an MD config."""
    return Integrator(
        ensemble=config.ensemble, timestep_fs=config.timestep_fs, temperature_K=config.temperature_K,
        friction_per_fs=config.friction_per_fs, taut_fs=config.taut_fs, pressure_bar=config.pressure_bar,
        taup_fs=config.taup_fs, nvt_steps=config.nvt_steps, fix_com=config.fix_com,
        zero_rotation=config.zero_rotation,
    )


def run_md(
    atoms: Atoms,
    calculator: Calculator,
    config: MDConfig,
    out_dir: str | os.PathLike,
    *,
    extra_monitors: Sequence[Monitor] = (),
    observers: Sequence[Observer] = (),
    progress: bool = True,
) -> MDResult:
    """Run (or resume, or return the finished result of) MD from ``atoms`` into ``out_dir``.

    Monitors from ``config.monitors`` (bond topology from ``atoms``, bond lengths by default from
    ``atoms`` relaxed with ``calculator``) plus ``extra_monitors``
    are checked every ``check_every`` steps and at the last step; the first that fires stops the run.
    With a committee calculator (or ``config.uncertainty``) the members' disagreement is recorded
    (:mod:`ffpt.simulate.uncertainty`). ``observers`` run after those, before the trajectory.
    A calculator exception during a step ends the run, recorded as monitor ``"calculator"``; one on
    the start frame (e.g. an element the model does not know) propagates: it is an input error.
    """
    atoms = atoms.copy()  # keeps the structure's own constraints (e.g. rigid water bonds)
    atoms.info.pop(ENERGY, None)  # reference labels of the start frame do not describe later frames
    atoms.arrays.pop(FORCES, None)
    monitors = build_monitors(config.monitors, atoms, calculator) + list(extra_monitors)
    atoms.calc = calculator
    out = Path(out_dir)
    chain = [
        MonitorObserver(monitors, config.check_every),
        *uncertainty_observers(config.uncertainty, calculator),
        *observers,
        TrajectoryWriter(out / TRAJECTORY_FILES[config.trajectory_format], config.save_every, sync=False),
    ]
    return engine.run(
        atoms, integrator(config), chain, out, steps=config.steps, seed=config.seed,
        config=config.model_dump(mode="json"), config_name=CONFIG_FILE, checkpoint_every=config.save_every,
        progress=progress,
    )

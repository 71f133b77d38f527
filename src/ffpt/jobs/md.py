"""Many MD runs from one structure with different seeds: time-to-failure and survival statistics.

Each seed runs in ``out_dir/seed_<seed>/`` (resumable; finished seeds are not rerun), as one task
of a :class:`concurrent.futures.Executor` (:func:`ffpt.execution.executor`: in-process, an embedded
Dask ``LocalCluster`` or a running scheduler), so seeds run concurrently on as many workers as
there are. A seed's trajectory does not depend on where or alongside what it ran. The batch writes
``batch.json`` (per-seed results, survival curve, median time-to-failure) and ``survival.png``.

With ``config.batch`` the seeds run ``batch`` at a time as batched replicas (:mod:`ffpt.dynamics.batched`):
one task per group of seeds, one model call per step for the group. Each seed's folder holds what its
single run writes (its ``md_config.yaml`` is the single run's, so either way resumes the other's folder).
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ase import Atoms
from ase.calculators.calculator import Calculator

from ffpt.analysis.survival import SurvivalCurve, plot_survival, survival_curve
from ffpt.dynamics.batched import ReplicaSpec, run_replicas
from ffpt.dynamics.trajectory import TRAJECTORY_FILES, TrajectoryWriter
from ffpt.dynamics.engine import MonitorObserver, Observer
from ffpt.execution import InlineExecutor, completed
from ffpt.fileio import atomic_write_text
from ffpt.keys import ENERGY, FORCES
from ffpt.models.batched import batch_evaluator, evaluate_each
from ffpt.simulate.config import MDConfig
from ffpt.simulate.md import CONFIG_FILE, MDResult, integrator, run_md
from ffpt.simulate.monitors import BondMonitor, RelaxedReference, build_monitors
from ffpt.simulate.uncertainty import uncertainty_observers


@dataclass(frozen=True)
class CalculatorSpec:
    """A picklable recipe for a calculator, built where it is called (in the worker): a teacher
    name with its options, or a model file on ``device`` (:func:`ffpt.simulate.calculators.resolve`)."""

    spec: str | list[str]  # a list: a committee of model files
    device: str = "cpu"
    options: dict[str, Any] = field(default_factory=dict)
    compile: bool = False  # torch.compile a model file (see resolve)

    def __call__(self) -> Calculator:
        from ffpt.simulate.calculators import resolve

        return resolve(self.spec, self.device, self.options, compile=self.compile)


@dataclass(frozen=True)
class BatchResult:
    """Per-seed outcomes and their survival curve."""

    seeds: list[int]
    results: list[MDResult]
    survival: SurvivalCurve

    @property
    def time_to_failure_fs(self) -> list[float | None]:
        """Failure time of each seed (fs), ``None`` for runs that stayed stable."""
        return [r.failed_at_fs for r in self.results]

    def as_dict(self) -> dict:
        return {
            "seeds": self.seeds,
            "time_to_failure_fs": self.time_to_failure_fs,
            "median_time_to_failure_fs": self.survival.median_fs,
            "fraction_stable_at_end": float(self.survival.fraction_stable[-1]),
            "survival": self.survival.as_dict(),
            "runs": [r.as_dict() for r in self.results],
        }


def _run_seed(structure: Atoms, calculator_factory: Callable[[], Calculator], config: MDConfig,
              out: Path) -> MDResult:
    """One seed of a batch (a task: the calculator is built here, in the worker)."""
    return run_md(structure, calculator_factory(), config, out, progress=False)


class SharedRelaxation:
    """A bond-reference relaxation (:class:`RelaxedReference`) done once per start structure and shared
    by the replicas that start from it (each single run would relax the same structure the same way)."""

    def __init__(self, relax: RelaxedReference):
        self.relax = relax
        self._done: dict[bytes, tuple] = {}

    def __call__(self, start):
        key = start.numbers.tobytes() + start.positions.tobytes() + start.cell.array.tobytes()
        if key not in self._done:
            self._done[key] = self.relax(start)
        relaxed, note = self._done[key]
        return (None if relaxed is None else relaxed.copy()), note


def replica_observers(config: MDConfig, atoms: Atoms, calculator: Calculator, out: Path,
                      relaxations: dict[int, SharedRelaxation]) -> list[Observer]:
    """The observers :func:`ffpt.simulate.md.run_md` gives a run (monitors, committee spread,
    trajectory), with bond-reference relaxations shared through ``relaxations``."""
    monitors = build_monitors(config.monitors, atoms, calculator)
    for monitor in monitors:
        if isinstance(monitor, BondMonitor) and isinstance(monitor._relax, RelaxedReference):
            shared = relaxations.setdefault(id(calculator), SharedRelaxation(monitor._relax))
            monitor._relax = shared
    return [
        MonitorObserver(monitors, config.check_every),
        *uncertainty_observers(config.uncertainty, calculator),
        TrajectoryWriter(out / TRAJECTORY_FILES[config.trajectory_format], config.save_every, sync=False),
    ]


def run_replica_group(structures: Sequence[Atoms], calculator_factory: Callable[[], Calculator],
                      configs: Sequence[MDConfig], outs: Sequence[Path], progress: bool = False) -> list[MDResult]:
    """Seeds (``configs[k].seed``, each from ``structures[k]`` into ``outs[k]``) as one batch of replicas
    (a task: the calculator is built here). The configs differ only in their seeds; each is saved as
    the single run's config (``batch`` unset)."""
    calculator = calculator_factory()
    relaxations: dict[int, SharedRelaxation] = {}
    specs = []
    for structure, config, out in zip(structures, configs, outs):
        atoms = structure.copy()
        atoms.info.pop(ENERGY, None)  # reference labels of the start frame do not describe later frames
        atoms.arrays.pop(FORCES, None)
        single = config.model_copy(update={"batch": None})
        specs.append(ReplicaSpec(atoms, config.seed, Path(out),
                                 replica_observers(config, atoms, calculator, Path(out), relaxations),
                                 single.model_dump(mode="json")))
    evaluator = batch_evaluator(calculator)
    first = configs[0]
    return run_replicas(specs, lambda systems: evaluate_each(evaluator, systems), integrator(first),
                        steps=first.steps, config_name=CONFIG_FILE, checkpoint_every=first.save_every,
                        progress=progress, desc="replicas")


def _run_group(structure: Atoms, calculator_factory: Callable[[], Calculator], configs: list[MDConfig],
               outs: list[Path]) -> list[MDResult]:
    """One group of seeds of a batch as batched replicas (a task)."""
    return run_replica_group([structure] * len(configs), calculator_factory, configs, outs)


def run_batch(
    structure: Atoms,
    calculator_factory: Callable[[], Calculator],
    seeds: Sequence[int],
    config: MDConfig,
    out_dir: str | os.PathLike,
    *,
    progress: bool = True,
    label: str | None = None,
    executor: cf.Executor | None = None,
) -> BatchResult:
    """Run ``config`` once per seed (a fresh calculator each) on ``executor`` and summarise survival.

    ``calculator_factory`` is called inside each task; give a picklable one (a
    :class:`CalculatorSpec`, a calculator class) for an executor of other processes. Without
    ``executor`` the seeds run one after another in this process. An error of one seed (e.g. an
    input error on the start frame) cancels the seeds not yet started and is raised. With
    ``config.batch`` the seeds run in groups of ``batch`` batched replicas, one task per group.
    """
    from tqdm.auto import tqdm

    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be a non-empty list of distinct integers, got {seeds}")
    out = Path(out_dir)
    pool = executor if executor is not None else InlineExecutor()
    configs = [config.model_copy(update={"seed": seed}) for seed in seeds]
    outs = [out / f"seed_{seed}" for seed in seeds]
    results: list[MDResult] = [None] * len(seeds)  # type: ignore[list-item]
    if config.batch is None:
        calls = [(structure, calculator_factory, c, o) for c, o in zip(configs, outs)]
        for index, result in tqdm(completed(pool, _run_seed, calls), total=len(calls), desc="seeds", unit="run",
                                  disable=not progress):  # the first failing seed's error is raised here
            results[index] = result
    else:
        size = config.batch
        groups = [(structure, calculator_factory, configs[k:k + size], outs[k:k + size])
                  for k in range(0, len(seeds), size)]
        for index, group in tqdm(completed(pool, _run_group, groups), total=len(groups), desc="replica groups",
                                 unit="group", disable=not progress):
            results[index * size:index * size + len(group)] = group
    curve = survival_curve([r.simulated_fs for r in results], [not r.stable for r in results])
    batch = BatchResult(seeds, results, curve)
    atomic_write_text(out / "batch.json", json.dumps(batch.as_dict(), indent=2))
    plot_survival({label or out.name: curve}, out / "survival.png")
    return batch

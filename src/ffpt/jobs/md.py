"""Many MD runs from one structure with different seeds: time-to-failure and survival statistics.

Each seed runs in ``out_dir/seed_<seed>/`` (resumable; finished seeds are not rerun), as one task
of a :class:`concurrent.futures.Executor` (:func:`ffpt.execution.executor`: in-process, an embedded
Dask ``LocalCluster`` or a running scheduler), so seeds run concurrently on as many workers as
there are. A seed's trajectory does not depend on where or alongside what it ran. The batch writes
``batch.json`` (per-seed results, survival curve, median time-to-failure) and ``survival.png``.
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
from ffpt.execution import InlineExecutor, completed
from ffpt.fileio import atomic_write_text
from ffpt.simulate.config import MDConfig
from ffpt.simulate.md import MDResult, run_md


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
    input error on the start frame) cancels the seeds not yet started and is raised.
    """
    from tqdm.auto import tqdm

    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be a non-empty list of distinct integers, got {seeds}")
    out = Path(out_dir)
    pool = executor if executor is not None else InlineExecutor()
    calls = [(structure, calculator_factory, config.model_copy(update={"seed": seed}), out / f"seed_{seed}")
             for seed in seeds]
    results: list[MDResult] = [None] * len(seeds)  # type: ignore[list-item]
    for index, result in tqdm(completed(pool, _run_seed, calls), total=len(calls), desc="seeds", unit="run",
                              disable=not progress):  # the first failing seed's error is raised here
        results[index] = result
    curve = survival_curve([r.simulated_fs for r in results], [not r.stable for r in results])
    batch = BatchResult(seeds, results, curve)
    atomic_write_text(out / "batch.json", json.dumps(batch.as_dict(), indent=2))
    plot_survival({label or out.name: curve}, out / "survival.png")
    return batch

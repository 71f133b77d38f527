"""Many MD runs from one structure with different seeds: time-to-failure and survival statistics.

Each seed runs in ``out_dir/seed_<seed>/`` (resumable; finished seeds are not rerun); the batch
writes ``batch.json`` (per-seed results, survival curve, median time-to-failure) and ``survival.png``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ase import Atoms
from ase.calculators.calculator import Calculator

from ffpt.analysis.survival import SurvivalCurve, plot_survival, survival_curve
from ffpt.simulate.config import MDConfig
from ffpt.fileio import atomic_write_text
from ffpt.simulate.md import MDResult, run_md


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


def run_batch(
    structure: Atoms,
    calculator_factory: Callable[[], Calculator],
    seeds: Sequence[int],
    config: MDConfig,
    out_dir: str | os.PathLike,
    *,
    progress: bool = True,
    label: str | None = None,
) -> BatchResult:
    """Run ``config`` once per seed (a fresh calculator each) and summarise survival."""
    from tqdm.auto import tqdm

    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be a non-empty list of distinct integers, got {seeds}")
    out = Path(out_dir)
    results = []
    for seed in tqdm(seeds, desc="seeds", unit="run", disable=not progress):
        run_config = config.model_copy(update={"seed": seed})
        results.append(run_md(structure, calculator_factory(), run_config, out / f"seed_{seed}", progress=False))
    curve = survival_curve([r.simulated_fs for r in results], [not r.stable for r in results])
    batch = BatchResult(seeds, results, curve)
    atomic_write_text(out / "batch.json", json.dumps(batch.as_dict(), indent=2))
    plot_survival({label or out.name: curve}, out / "survival.png")
    return batch

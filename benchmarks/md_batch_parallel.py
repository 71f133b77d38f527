"""MD-batch wall time with 1 and 2 workers, in one run: ``ffpt.jobs.md.run_batch`` of ``--seeds``
seeds of ethanol (MMFF94 teacher, Langevin 300 K, 0.5 fs) in process, on an embedded 1-worker Dask
LocalCluster (the engine's cost) and on a 2-worker one. Cluster start-up is timed apart from the
batch. Every mode's per-seed trajectories are checked bitwise against the in-process run.

    python benchmarks/md_batch_parallel.py --seeds 4 --steps 3000 --out benchmarks/runs/md_batch_parallel
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import ase.io
import numpy as np
from ase.build import molecule

from ffpt.execution import executor
from ffpt.jobs.md import CalculatorSpec, run_batch
from ffpt.simulate.config import MDConfig

MODES = (("in process", 1, False), ("LocalCluster, 1 worker", 1, True), ("LocalCluster, 2 workers", 2, True))


@contextmanager
def _one_worker_cluster():
    """A LocalCluster of one worker process (``executor(1)`` would run in process)."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        yield client.get_executor(pure=False)


def _open(workers: int, cluster: bool):
    return _one_worker_cluster() if cluster and workers == 1 else executor(workers)


def final_positions(out: Path, seeds) -> list[np.ndarray]:
    return [ase.io.read(out / f"seed_{s}" / "trajectory.extxyz", index=-1).positions for s in seeds]


def main(out: Path, n_seeds: int, steps: int) -> dict:
    seeds = list(range(n_seeds))
    config = MDConfig(steps=steps, timestep_fs=0.5, temperature_K=300, ensemble="langevin", friction_per_fs=0.01,
                      save_every=100, monitors={"max_bond_deviation": 0.5})
    factory = CalculatorSpec("mmff94")
    run_batch(molecule("CH3CH2OH"), factory, [0], config.model_copy(update={"steps": 10}), out / "warm-up",
              progress=False)  # imports (RDKit, matplotlib) are not charged to the first mode
    rows, reference = [], None
    for name, workers, cluster in MODES:
        folder = out / name.replace(" ", "_").replace(",", "")
        shutil.rmtree(folder, ignore_errors=True)
        t0 = time.perf_counter()
        with _open(workers, cluster) as pool:
            t1 = time.perf_counter()
            batch = run_batch(molecule("CH3CH2OH"), factory, seeds, config, folder, progress=False, executor=pool)
            t2 = time.perf_counter()
        positions = final_positions(folder, seeds)
        reference = reference or positions
        row = {"mode": name, "workers": workers, "startup_s": t1 - t0, "batch_s": t2 - t1,
               "seed_s": [r.wall_s for r in batch.results], "stable": sum(r.stable for r in batch.results),
               "bitwise_as_in_process": all(np.array_equal(a, b) for a, b in zip(positions, reference))}
        rows.append(row)
        print(json.dumps(row))
    base = rows[0]["batch_s"]
    for row in rows:
        row["speedup_vs_in_process"] = base / row["batch_s"]
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.processor()
              or platform.machine(), "cpus": os.cpu_count(), "loadavg_at_end": os.getloadavg(),
              "seeds": n_seeds, "steps": steps, "rows": rows}
    (out / "result.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/runs/md_batch_parallel"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(json.dumps(main(args.out, args.seeds, args.steps), indent=2))

"""Labelling throughput on ffpt's execution engine (Dask) with 1 and 2 workers, and its overhead per task.

Usage: OMP_NUM_THREADS=1 python benchmarks/execution_throughput.py [--out execution_throughput.json]
       [--frames 120] [--sleep-frames 40] [--sleep 0.2]

1. ``label_frames`` with GFN2-xTB (tblite) on displaced aspirin geometries (random 0.05 A
   displacements, 21 atoms), a real CPU-bound teacher: 1 worker (in this process) and an embedded
   Dask cluster of 2 single-threaded worker processes (its start timed apart).
2. The same with a sleep-based teacher (Morse labels after ``--sleep`` s): the engine's scaling with
   no competition for the CPU.
3. Overhead per task: a trivial task (``pow``) run N times directly, through ``completed`` on the
   in-process executor, and through ``completed`` on a started 2-worker Dask cluster.
Every labelling run uses a fresh cache, so every frame is computed.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
from ase.calculators.morse import MorsePotential

from ffpt.teachers import Label, Teacher, TeacherInfo


class SleepMorse(Teacher):
    """Morse labels after sleeping ``delay`` s: a teacher with a fixed per-frame cost and no CPU use."""

    def __init__(self, delay: float = 0.2):
        super().__init__()
        self.delay = float(delay)

    @property
    def info(self) -> TeacherInfo:
        return TeacherInfo(name="sleep-morse", level="Morse", version="bench", options={"delay": self.delay})

    def compute(self, atoms) -> Label:
        time.sleep(self.delay)
        probe = atoms.copy()
        probe.calc = MorsePotential()
        return Label(energy=float(probe.get_potential_energy()), forces=np.array(probe.get_forces()))


def aspirin_frames(n: int) -> list:
    from ffpt.sampling import from_smiles

    seed = from_smiles("CC(=O)Oc1ccccc1C(=O)O", seed=0).atoms
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(n):
        frame = seed.copy()
        frame.positions += rng.normal(0.0, 0.05, frame.positions.shape)
        frames.append(frame)
    return frames


def labelling(frames, teacher: str, options: dict, workers: int, workdir: Path) -> dict:
    """One run on a fresh cache; with 2 workers the cluster is started first and timed apart."""
    from ffpt.execution import executor
    from ffpt.teachers.runner import label_frames

    start = time.perf_counter()
    with executor(workers) as pool:
        started = time.perf_counter() - start
        start = time.perf_counter()
        run = label_frames(frames, teacher, options, workdir / f"{teacher.replace(':', '_')}_{workers}",
                           executor=pool, progress=False)
        seconds = time.perf_counter() - start
    assert run.n_computed == len(frames) and not run.failures
    return {"workers": workers, "frames": len(frames), "cluster_start_s": round(started, 2),
            "seconds": round(seconds, 3), "frames_per_minute": round(60 * len(frames) / seconds, 1),
            "frames_per_minute_with_start": round(60 * len(frames) / (seconds + started), 1)}


def overhead(n: int) -> dict:
    from ffpt.execution import InlineExecutor, completed, executor

    calls = [(k, 2) for k in range(n)]
    start = time.perf_counter()
    for args in calls:
        pow(*args)
    direct = (time.perf_counter() - start) / n
    start = time.perf_counter()
    assert len(list(completed(InlineExecutor(), pow, calls))) == n
    inline = (time.perf_counter() - start) / n
    start = time.perf_counter()
    with executor(workers=2) as pool:
        started = time.perf_counter() - start
        list(completed(pool, pow, calls[:20]))  # warm up connections
        start = time.perf_counter()
        assert len(list(completed(pool, pow, calls))) == n
        dask = (time.perf_counter() - start) / n
    return {"tasks": n, "direct_us": round(1e6 * direct, 3), "inline_overhead_us": round(1e6 * (inline - direct), 2),
            "dask_2_workers_overhead_ms": round(1e3 * (dask - direct), 3), "cluster_start_s": round(started, 2)}


def main() -> None:
    from ffpt.fileio import atomic_write_json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("execution_throughput.json"))
    parser.add_argument("--frames", type=int, default=400, help="GFN2-xTB aspirin frames per run")
    parser.add_argument("--sleep-frames", type=int, default=60)
    parser.add_argument("--sleep", type=float, default=0.2, help="s per frame of the sleep teacher")
    parser.add_argument("--tasks", type=int, default=500, help="trivial tasks for the overhead")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))  # workers import this module's teacher by name

    frames = aspirin_frames(args.frames)
    sleepy = aspirin_frames(args.sleep_frames)
    results: dict = {
        "command": " ".join(["python", *sys.argv]), "date": date.today().isoformat(), "machine": platform.platform(),
        "cpus": os.cpu_count(), "load_average_at_start": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        results["gfn2_aspirin"] = [labelling(frames, "gfn2", {}, w, work) for w in (1, 2)]
        results["sleep_teacher"] = [
            labelling(sleepy, "execution_throughput:SleepMorse", {"delay": args.sleep}, w, work) for w in (1, 2)
        ]
    results["overhead_per_task"] = overhead(args.tasks)
    results["load_average_at_end"] = os.getloadavg()
    atomic_write_json(args.out, results)
    for key in ("gfn2_aspirin", "sleep_teacher"):
        for row in results[key]:
            print(f"{key}: {row}")
    print(f"overhead: {results['overhead_per_task']}")


if __name__ == "__main__":
    main()

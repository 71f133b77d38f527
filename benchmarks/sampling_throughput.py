"""Throughput of cheap FF sampling (labelled single-molecule frames per minute) and FF typing coverage.

Usage: OMP_NUM_THREADS=1 python benchmarks/sampling_throughput.py [--data /work/shared/data/h2combustion]
       [--workdir /tmp/ffpt_sampling_bench] [--workers 1 2]

1. Per sampler and teacher, frames per minute for water, ethanol and aspirin (single process).
2. End to end: ``ffpt.sampling.sample`` with the default config (MD at 300/1000/3000 K, stride 10;
   normal modes at 300/1000/3000 K; random displacements 0.02/0.05/0.1 A; 100 frames each) on
   water, ethanol, aspirin and every hydrogen-combustion stationary point (split into molecules),
   including extxyz writes, with 1 and 2 worker processes.
3. UFF typing of every combustion geometry with its own, its reactant's and its product's bonding.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np


def rate(n_frames: int, seconds: float) -> float:
    return 60.0 * n_frames / seconds


def per_sampler(teacher_names: dict[str, str]) -> list[tuple[str, str, str, float]]:
    from ffpt import teachers
    from ffpt.sampling import from_smiles, md_frames, normal_mode_frames, normal_modes, random_frames

    rows = []
    for smiles, teacher_name in teacher_names.items():
        seed = from_smiles(smiles, seed=0).atoms
        teacher = teachers.get(teacher_name)
        rng = np.random.default_rng(0)
        start = time.perf_counter()
        n = len(md_frames(seed, teacher, 1000.0, 300, rng, stride=10, equilibration=0))
        rows.append((smiles, teacher_name, "md (stride 10, 1000 K)", rate(n, time.perf_counter() - start)))
        start = time.perf_counter()
        modes = normal_modes(seed, teacher)
        n = len(normal_mode_frames(modes, teacher, 1000.0, 3000, rng))
        rows.append((smiles, teacher_name, "normal modes (incl. opt + Hessian)", rate(n, time.perf_counter() - start)))
        start = time.perf_counter()
        n = len(random_frames(seed, teacher, 0.05, 3000, rng))
        rows.append((smiles, teacher_name, "random (0.05 A)", rate(n, time.perf_counter() - start)))
    return rows


def end_to_end(data: Path | None, workdir: Path, workers: int) -> tuple[int, float, dict]:
    from ffpt.data import read_frames
    from ffpt.sampling import SamplingConfig, sample

    seeds = [{"smiles": "O"}, {"smiles": "CCO"}, {"smiles": "CC(=O)Oc1ccccc1C(=O)O", "name": "aspirin"}]
    if data is not None:
        seeds.append({"combustion": str(data), "topology": "self"})
    out = workdir / f"e2e_{workers}.extxyz"
    config = SamplingConfig.model_validate({"seeds": seeds, "out": str(out), "teacher": "uff", "seed": 0})
    start = time.perf_counter()
    sample(config, progress=False, workers=workers)
    seconds = time.perf_counter() - start
    frames = read_frames(out)
    energies = {}
    for f in frames:
        energies.setdefault(f.info["config_type"], []).append(f.info["REF_energy"] / len(f))
    summary = {k: (len(v), float(np.median(v)), float(np.max(v))) for k, v in energies.items()}
    return len(frames), seconds, summary


def typing_coverage(data: Path) -> dict[str, tuple[int, int, list[str]]]:
    from ffpt import teachers
    from ffpt.sampling import from_combustion
    from ffpt.teachers import LabelFailure

    coverage = {}
    for topology in ("self", "reactant", "product"):
        seeds = from_combustion(data, topology=topology)
        failed = []
        for s in seeds:
            try:
                teachers.get("uff", topology=s.reference).label(s.atoms)
            except LabelFailure as exc:
                failed.append(f"{s.name}: {exc}")
        coverage[topology] = (len(seeds) - len(failed), len(seeds), failed)
    return coverage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/h2combustion"))
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ffpt_sampling_bench"))
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="end-to-end runs with these worker counts")
    args = parser.parse_args()
    data = args.data if (args.data / "reactions.json").exists() else None
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)

    print(f"# machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
          f"python {platform.python_version()}")
    print("\n## per sampler (frames/min, one process)")
    print("| molecule | teacher | sampler | frames/min |\n|---|---|---|---|")
    for smiles, name, sampler, r in per_sampler({"O": "spcfw", "CCO": "mmff94", "CC(=O)Oc1ccccc1C(=O)O": "mmff94"}):
        print(f"| {smiles} | {name} | {sampler} | {r:,.0f} |")

    for workers in args.workers:
        n, seconds, summary = end_to_end(data, args.workdir, workers)
        print(f"\n## end to end (uff, default config, {workers} worker(s)): {n} frames in {seconds:.1f} s"
              f" = {rate(n, seconds):,.0f} frames/min")
    print("| config_type | frames | median E/atom (eV) | max E/atom (eV) |\n|---|---|---|---|")
    for key, (count, median, top) in sorted(summary.items()):
        print(f"| {key} | {count} | {median:.3f} | {top:.3f} |")

    if data is not None:
        print("\n## UFF typing of the combustion stationary points")
        for topology, (ok, total, failed) in typing_coverage(data).items():
            print(f"- bonding from {topology}: {ok}/{total} typed")
            for line in failed:
                print(f"  - {line}")
    shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

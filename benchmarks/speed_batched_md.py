"""Replica-steps per second of MD batches: batched replicas (one model call per step) against one run
at a time, for ethanol (9 atoms) and aspirin (21 atoms) with a NewtonNet model (BENCHMARKS.md,
"Batched replicas").

    OMP_NUM_THREADS=1 python benchmarks/speed_batched_md.py --model random.pt --exported random.pt2 \\
        --out /work/runs/batched/speed --rounds 2

Each row is an ``ffpt.jobs.md.run_batch`` of R seeds (Langevin, 300 K, 0.5 fs, the default monitors (min distance, finite) and
trajectory every 10 steps) into a fresh folder: the whole job as a user runs it, start-up (bond-reference
relaxation, first evaluation) excluded by timing the steps only (wall of ``steps`` minus that of 1 step).
Rounds alternate every mode, so machine load hits all alike. The model's cost does not depend on its
weights; an untrained model (``benchmarks/speed_systems.py``'s ``model_for_speed``) serves.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from ffpt.jobs.md import CalculatorSpec, run_batch
from ffpt.sampling.seeds import from_smiles
from ffpt.simulate.config import MDConfig

SMILES = {"ethanol": "CCO", "aspirin": "CC(=O)Oc1ccccc1C(=O)O"}


def timed_batch(structure, model: str, replicas: int, batch: int | None, steps: int, out: Path) -> float:
    """Seconds ``run_batch`` takes for ``replicas`` seeds of ``steps`` steps into a fresh ``out``."""
    shutil.rmtree(out, ignore_errors=True)
    config = MDConfig(steps=steps, ensemble="langevin", temperature_K=300, timestep_fs=0.5, batch=batch)
    start = time.perf_counter()
    result = run_batch(structure, CalculatorSpec(model), list(range(replicas)), config, out, progress=False)
    wall = time.perf_counter() - start
    left = [r.steps for r in result.results if r.steps < steps]
    if left:
        raise RuntimeError(f"{len(left)} replicas stopped early ({left}): the rate would mix batch sizes")
    return wall


def rate(structure, model: str, replicas: int, batch: int | None, steps: int, out: Path) -> float:
    """Replica-steps per second of the stepping alone (a 1-step job's wall subtracted)."""
    setup = timed_batch(structure, model, replicas, batch, 1, out)
    wall = timed_batch(structure, model, replicas, batch, steps + 1, out)
    return replicas * steps / (wall - setup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="ffpt NewtonNet model file (.pt)")
    parser.add_argument("--exported", help="its exported package (.pt2), timed one run at a time")
    parser.add_argument("--out", required=True)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--single-replicas", type=int, default=4, help="seeds of the one-at-a-time rows")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    modes = [("one at a time, eager", args.model, args.single_replicas, None)]
    if args.exported:
        modes.append(("one at a time, exported", args.exported, args.single_replicas, None))
    modes += [(f"batched, R={r}", args.model, r, r) for r in (1, 8, 64)]
    rows = []
    for round_index in range(args.rounds):
        for name, smiles in SMILES.items():
            structure = from_smiles(smiles, name=name).atoms
            for mode, model, replicas, batch in modes:
                value = rate(structure, model, replicas, batch, args.steps, out / "runs" / name)
                row = {"round": round_index, "molecule": name, "atoms": len(structure), "mode": mode,
                       "replicas": replicas, "replica_steps_per_s": value}
                rows.append(row)
                print(json.dumps(row), flush=True)
    (out / "rates.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

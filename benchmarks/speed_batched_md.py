"""Replica-steps per second of MD batches: batched replicas (one model call per step) against one run
at a time, for ethanol (9 atoms) and aspirin (21 atoms) with a NewtonNet or MACE model (BENCHMARKS.md,
"Batched replicas").

    OMP_NUM_THREADS=1 python benchmarks/speed_batched_md.py --model random.pt --exported random.pt2 \\
        --out /work/runs/batched/speed --rounds 2 --steps 101 --compile

With ``--exported`` the package also runs as batches of 8 and 64 (``PackageBatch``: one package call per
2048 neighbour pairs); ``--only PREFIX ...`` keeps the modes whose names start so (e.g. ``"one at a time,
exported"`` ``"batched, R=8, exported"``). ``--random newtonnet|mace DIR`` writes the untrained model
(``random.pt``; MACE at the four-arm comparison's size, ``speed_export_mace.MACE_SIZE``) and its float32
package (``random.pt2``) into DIR first and times those:

    OMP_NUM_THREADS=1 python benchmarks/speed_batched_md.py --random mace /work/runs/batched/mace \\
        --out /work/runs/batched/mace/speed --rounds 2 --steps 101 --only "one at a time" "batched, R=8, exported" \\
        "batched, R=64, exported"

Every row runs what ``ffpt md --seeds ...`` runs (``ffpt.jobs.md``: Langevin, 300 K, 0.5 fs, a frame and a
checkpoint every 10 steps, each replica into its own folder): one at a time (``run_md`` per seed, as
without ``--batch``; the eager ``.pt`` model and its exported ``.pt2``) or as one batch of R replicas
(``--batch R``; one model call per 2048 neighbour pairs, ``ModelBatch``'s CPU default, and for
comparison one call for all 64). A clock observer times the stepping alone, from step 10 to the last
step (start-up, relaxation, first evaluation and torch.compile's first calls left out); the rates are
replica-steps per second of that wall time and of the process's CPU time (one thread:
steadier than wall time on a shared machine).
Rounds alternate every mode, so machine load hits all alike; the load average is recorded per row.

The model's cost does not depend on its weights: an untrained model (``benchmarks/speed_systems.py``'s
``model_for_speed``, NewtonNet 64 features, 3 layers, cutoff 5 A) serves. Its dynamics is not physical
(it pulls atoms together), so the only monitor is the finite check (``min_distance`` off) and every
replica runs every step; with a 5 A cutoff nearly every pair of these molecules is an edge either way.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from speed_export_mace import GENTLE, MACE_SIZE
from speed_systems import model_for_speed

from ffpt.dynamics.batched import ReplicaSpec, run_replicas
from ffpt.dynamics.engine import Observer
from ffpt.jobs.md import replica_observers
from ffpt.models import build_model, save_model
from ffpt.models.batched import ModelBatch, batch_evaluator, evaluate_each
from ffpt.models.export import export_model
from ffpt.sampling.seeds import from_smiles
from ffpt.simulate.calculators import resolve
from ffpt.simulate.config import MDConfig
from ffpt.simulate.md import CONFIG_FILE, integrator, run_md

SMILES = {"ethanol": "CCO", "aspirin": "CC(=O)Oc1ccccc1C(=O)O"}


class Clock(Observer):
    """Wall and CPU time (s) at step ``every`` and at the last step; ``every`` also tells the batch that
    it acts on no other step (batched replicas observe a replica only where an observer acts)."""

    name = "clock"

    def __init__(self, every: int = 10):
        self.every = every
        self.first = self.last = None

    def on_step(self, state):
        if state.step == self.every:
            self.first = np.array([time.perf_counter(), time.process_time()])
        if state.last:
            self.last = np.array([time.perf_counter(), time.process_time()])


def config_for(steps: int) -> MDConfig:
    return MDConfig(steps=steps, ensemble="langevin", temperature_K=300, timestep_fs=0.5,
                    monitors={"min_distance": None})


def one_at_a_time(structure, model: str, replicas: int, steps: int, out: Path) -> np.ndarray:
    """Replica-steps per second (wall, CPU) of ``replicas`` seeds run one after another (``run_md``)."""
    stepping = np.zeros(2)
    for seed in range(replicas):
        clock = Clock()
        config = config_for(steps).model_copy(update={"seed": seed})
        result = run_md(structure, resolve(model), config, out / f"seed_{seed}", observers=[clock], progress=False)
        assert result.steps == steps, result.reason
        stepping += clock.last - clock.first
    return replicas * (steps - clock.every) / stepping


def batched(structure, model: str, replicas: int, steps: int, out: Path, compile: bool = False,
            max_edges: int | None = None) -> np.ndarray:
    """Replica-steps per second of ``replicas`` seeds as one batch (what ``run_replica_group`` runs);
    ``compile``: the model through ``torch.compile`` (``ffpt md --compile``; compiled before step 1);
    ``max_edges``: neighbour pairs per model call (default: ``ModelBatch``'s)."""
    calculator = resolve(model, compile=compile)
    clocks, specs, relaxations = [], [], {}
    for seed in range(replicas):
        config = config_for(steps).model_copy(update={"seed": seed})
        folder = out / f"seed_{seed}"
        clocks.append(Clock())
        observers = [*replica_observers(config, structure, calculator, folder, relaxations), clocks[-1]]
        specs.append(ReplicaSpec(structure.copy(), seed, folder, observers, config.model_dump(mode="json")))
    evaluator = (batch_evaluator(calculator) if max_edges is None
                 else ModelBatch(calculator.model, max_edges=max_edges))
    results = run_replicas(specs, lambda systems: evaluate_each(evaluator, systems), integrator(config_for(steps)),
                           steps=steps, config_name=CONFIG_FILE, checkpoint_every=10, progress=False)
    assert all(r.steps == steps for r in results), [r.reason for r in results]
    first = np.min([c.first for c in clocks], axis=0)
    last = np.max([c.last for c in clocks], axis=0)
    return replicas * (steps - clocks[0].every) / (last - first)


def random_model(architecture: str, folder: Path) -> tuple[str, str]:
    """(model file, float32 package) of an untrained model in ``folder`` (cost does not depend on weights)."""
    folder.mkdir(parents=True, exist_ok=True)
    if architecture == "mace":
        torch.manual_seed(0)
        model = build_model("mace", elements=[1, 6, 8], **MACE_SIZE)
        model.energy_scale.fill_(GENTLE)  # gentle forces: every replica runs every step
    else:
        model = model_for_speed(architecture, None)[0]
    model = model.float()
    save_model(model, folder / "random.pt")
    export_model(model, folder / "random.pt2", torch.float32)
    return str(folder / "random.pt"), str(folder / "random.pt2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="ffpt model file (.pt)")
    parser.add_argument("--random", nargs=2, metavar=("ARCHITECTURE", "DIR"),
                        help="time an untrained newtonnet or mace model written (with its package) to DIR")
    parser.add_argument("--exported", help="its exported package (.pt2), timed one run at a time")
    parser.add_argument("--out", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=201)
    parser.add_argument("--compile", action="store_true", help="also time R=64 with torch.compile")
    parser.add_argument("--single-replicas", type=int, default=4, help="seeds of the one-at-a-time rows")
    parser.add_argument("--only", nargs="+", help="run only the modes whose names start with one of these")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.random:
        args.model, args.exported = random_model(args.random[0], Path(args.random[1]))
    if not args.model:
        parser.error("give --model or --random")
    out = Path(args.out)
    modes = [("one at a time, eager", one_at_a_time, args.model, args.single_replicas)]
    if args.exported:
        modes.append(("one at a time, exported", one_at_a_time, args.exported, args.single_replicas))
    modes += [(f"batched, R={r}", batched, args.model, r) for r in (1, 8, 64)]
    modes.append(("batched, R=64, one call per step", lambda *a: batched(*a, max_edges=10**9), args.model, 64))
    if args.compile:
        modes.append(("batched, R=64, torch.compile", lambda *a: batched(*a, compile=True), args.model, 64))
    if args.exported:
        modes += [(f"batched, R={r}, exported", batched, args.exported, r) for r in (8, 64)]
    if args.only:
        modes = [mode for mode in modes if mode[0].startswith(tuple(args.only))]
    rows = []
    for round_index in range(args.rounds):
        for name, smiles in SMILES.items():
            structure = from_smiles(smiles, name=name).atoms
            for mode, run, model, replicas in modes:
                folder = out / "runs" / name
                shutil.rmtree(folder, ignore_errors=True)
                value = run(structure, model, replicas, args.steps, folder)
                row = {"round": round_index, "molecule": name, "atoms": len(structure), "mode": mode,
                       "replicas": replicas, "replica_steps_per_s": round(float(value[0]), 1),
                       "replica_steps_per_cpu_s": round(float(value[1]), 1),
                       "load_1min": os.getloadavg()[0]}
                rows.append(row)
                print(json.dumps(row), flush=True)
                (out / "rates.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

"""Engine overhead of ``ffpt md``: its steps/s against the bare model call on the same atoms, alternated.

For ethanol and aspirin (RDKit embeddings) and each calculator (the eager ``.pt`` model file and its
``ffpt export`` package), one measurement round takes, one after the other on the same machine state:

- ``md``: the steady stepping rate of ``run_md`` (what ``ffpt md`` runs: monitors, trajectory,
  checkpoints, progress bar), timed by an observer from step ``--warmup`` to the last step;
- ``bare``: ``atoms.get_forces()`` of the same calculator in a loop over the run's saved frames (an
  ASE calculator call per step, as a plain ASE loop makes it: neighbour list, graph, model);
- ``package`` (exported only): the package alone on one prepared input (no neighbour list, no graph).

A round alternates md and bare ``--repeats`` times; engine overhead = 1 - md/bare, paired per
alternation, its median per round; the table gives the median and range over rounds, by wall clock
and by the process's CPU time (steadier on a machine shared with other jobs).
MD settings are those of the stability stage of ``experiments/ethanol.yaml`` (Langevin, 500 K, 0.5 fs,
frames every 100 steps, checks every 20, bond and minimum-distance monitors; bond references from the
start frame so that no relaxation runs) unless ``--ensemble``/``--save-every``/``--check-every`` say
otherwise. ``--batch R`` times R replicas of the exported package instead (``ffpt md --seeds 0..R-1
--batch R``: one package call per step for all; bare = the same evaluator on the R frames, neighbour
lists and graph included), per replica-step. ``--before SRC`` also times another ffpt source tree (e.g. ``git archive COMMIT src``) in
alternating worker processes, for a before/after table. One thread throughout.

    OMP_NUM_THREADS=1 python benchmarks/speed_engine.py --model runs/m/model.pt --package runs/m/model.pt2 \\
        --rounds 5 --before /tmp/before/src --out benchmarks/runs/speed_engine.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

SYSTEMS = {"ethanol": "CCO", "aspirin": "CC(=O)Oc1ccccc1C(=O)O"}  # SMILES
STEPS = {("ethanol", "eager"): 300, ("ethanol", "exported"): 1500,  # steps per measurement
         ("aspirin", "eager"): 150, ("aspirin", "exported"): 600}


def measure(args) -> dict:
    """One round in this process: per system and calculator, ``--repeats`` alternations of an md run
    and a bare loop, then the package alone; steps/s by wall clock and by this process's CPU time."""
    import ase.io
    import numpy as np
    import torch

    import ffpt
    from ffpt.dynamics.engine import Observer
    from ffpt.models.exported import flat_inputs
    from ffpt.models.graph import graph_from_atoms
    from ffpt.sampling.seeds import from_smiles
    from ffpt.simulate.config import MDConfig
    from ffpt.simulate.md import run_md

    torch.set_num_threads(1)

    def clocks() -> np.ndarray:
        return np.array([time.perf_counter(), time.process_time()])

    class Clock(Observer):
        """Wall and CPU time from step ``first`` to the last step observed."""

        name = "clock"

        def __init__(self, first: int):
            self.first, self.t0, self.t1, self.steps = first, None, None, 0
            self.every = first  # acts at step ``first`` and the last step: no call on the steps between

        def on_step(self, state):
            if state.step == self.first:
                self.t0 = clocks()
            self.t1, self.steps = clocks(), state.step - self.first
            return None

    calcs = {"eager": ffpt.load_calculator(args.model)}
    if args.package:
        calcs["exported"] = ffpt.load_calculator(args.package)
    if args.batch:
        return measure_batch(args, calcs["exported"], Clock, clocks)
    rates = {}
    for name, smiles in SYSTEMS.items():
        atoms = from_smiles(smiles, seed=0).atoms
        for label, calc in calcs.items():
            steps = max(1, int(STEPS[name, label] * args.scale))
            config = MDConfig(steps=args.warmup + steps, timestep_fs=0.5, temperature_K=args.temperature,
                              ensemble=args.ensemble, seed=args.seed, save_every=args.save_every,
                              check_every=args.check_every,
                              monitors={"max_bond_deviation": 0.5, "min_distance": 0.5, "bond_reference": "start"})
            md, bare, stable = [], [], True
            for _ in range(args.repeats):
                with tempfile.TemporaryDirectory() as out:
                    clock = Clock(args.warmup)
                    result = run_md(atoms, calc, config, out, observers=[clock], progress=True)
                    md.append(clock.steps / (clock.t1 - clock.t0))
                    stable &= result.stable
                    frames = [f.positions.copy() for f in ase.io.read(Path(out) / "trajectory.extxyz", ":")]
                moving = atoms.copy()
                moving.calc = calc
                moving.get_forces()
                start = clocks()
                for k in range(steps):
                    moving.positions[:] = frames[k % len(frames)]
                    moving.get_forces()
                bare.append(steps / (clocks() - start))
            entry = {"stable": stable, "md_steps": clock.steps, **rates_and_overhead(md, bare)}
            if label == "exported":
                graph = graph_from_atoms(atoms, calc.elements, calc.neighbors, dtype=calc.dtype)
                inputs = flat_inputs(graph)
                calc.compiled(*inputs)
                start = clocks()
                for _ in range(steps):
                    calc.compiled(*inputs)
                entry["package"], entry["package_cpu"] = (steps / (clocks() - start)).tolist()
            rates[f"{name}/{label}"] = entry
    return rates


def rates_and_overhead(md: list, bare: list) -> dict:
    """Medians of the paired (wall, CPU) rates of ``md`` and ``bare`` runs, and of the engine overhead
    1 - md/bare per pair, by wall clock and by CPU time."""
    import numpy as np

    entry = {}
    for kind, values in (("md", md), ("bare", bare)):
        entry[kind] = float(np.median([v[0] for v in values]))
        entry[f"{kind}_cpu"] = float(np.median([v[1] for v in values]))
    entry["overhead"] = float(np.median([1 - m[0] / b[0] for m, b in zip(md, bare)]))
    entry["overhead_cpu"] = float(np.median([1 - m[1] / b[1] for m, b in zip(md, bare)]))
    return entry


def measure_batch(args, calc, Clock, clocks) -> dict:
    """One round of ``--batch R``: R replicas of the package per step (``run_replicas`` with the observers
    ``ffpt md`` gives each seed) alternated with the bare evaluator on the R replicas' saved frames;
    replica-steps/s by wall clock and CPU time."""
    import ase.io
    import numpy as np

    from ffpt.dynamics.batched import ReplicaSpec, run_replicas
    from ffpt.jobs.md import replica_observers
    from ffpt.models.batched import batch_evaluator, evaluate_each
    from ffpt.sampling.seeds import from_smiles
    from ffpt.simulate.config import MDConfig
    from ffpt.simulate.md import CONFIG_FILE, integrator

    rates, r = {}, args.batch
    evaluator = batch_evaluator(calc)
    for name, smiles in SYSTEMS.items():
        atoms = from_smiles(smiles, seed=0).atoms
        steps = max(1, int(STEPS[name, "exported"] * args.scale / r))
        md, bare, stable = [], [], True
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as out:
                specs, clocks_of, relaxations = [], [], {}
                for seed in range(r):
                    config = MDConfig(steps=args.warmup + steps, timestep_fs=0.5, temperature_K=args.temperature,
                                      ensemble=args.ensemble, seed=args.seed + seed, save_every=args.save_every,
                                      check_every=args.check_every,
                                      monitors={"max_bond_deviation": 0.5, "min_distance": 0.5, "bond_reference": "start"})
                    folder = Path(out) / f"seed_{seed}"
                    clocks_of.append(Clock(args.warmup))
                    observers = [*replica_observers(config, atoms, calc, folder, relaxations), clocks_of[-1]]
                    specs.append(ReplicaSpec(atoms.copy(), config.seed, folder, observers, config.model_dump(mode="json")))
                results = run_replicas(specs, lambda systems: evaluate_each(evaluator, systems), integrator(config),
                                       steps=config.steps, config_name=CONFIG_FILE, checkpoint_every=args.save_every,
                                       progress=False)
                stable &= all(res.stable for res in results)
                t0 = np.min([c.t0 for c in clocks_of], axis=0)
                t1 = np.max([c.t1 for c in clocks_of], axis=0)
                md.append(r * steps / (t1 - t0))
                frames = [[f.positions.copy() for f in ase.io.read(Path(out) / f"seed_{k}" / "trajectory.extxyz", ":")]
                          for k in range(r)]
            systems = [atoms.copy() for _ in range(r)]
            evaluator.evaluate(systems)
            start = clocks()
            for k in range(steps):
                for system, saved in zip(systems, frames):
                    system.positions[:] = saved[k % len(saved)]
                evaluator.evaluate(systems)
            bare.append(r * steps / (clocks() - start))
        entry = {"stable": stable, "md_steps": steps, "replicas": r, **rates_and_overhead(md, bare)}
        rates[f"{name}/exported, {r} replicas"] = entry
    return rates


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "all": values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model file (.pt): the eager calculator")
    parser.add_argument("--package", help="its ffpt export package (.pt2): the exported calculator")
    parser.add_argument("--before", help="another ffpt source tree (its src folder) to time alternately")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the steps per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="md / bare alternations per round")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps at the start of each md run")
    parser.add_argument("--ensemble", default="langevin", choices=["nve", "langevin", "bussi"])
    parser.add_argument("--temperature", type=float, default=500.0)
    parser.add_argument("--save-every", type=int, default=100)
    parser.add_argument("--check-every", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, help="time this many replicas of --package per step instead")
    parser.add_argument("--measure", action="store_true", help="(internal) one round, JSON on stdout")
    parser.add_argument("--out", default="benchmarks/runs/speed_engine.json")
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args)))
        return

    here = str(Path(__file__).resolve().parents[1] / "src")
    trees = {"after": here} | ({"before": str(Path(args.before).resolve())} if args.before else {})
    worker = [a for a in sys.argv[1:] if a not in ("--before", args.before)] + ["--measure"]
    load_before = os.getloadavg()[0]
    rounds: dict[str, list[dict]] = {tree: [] for tree in trees}
    for r in range(args.rounds):
        order = list(trees) if r % 2 == 0 else list(trees)[::-1]
        for tree in order:
            env = dict(os.environ, PYTHONPATH=trees[tree], OMP_NUM_THREADS="1")
            done = subprocess.run([sys.executable, __file__, *worker], env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"{tree} round {r} failed:\n{done.stderr[-3000:]}")
            rounds[tree].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(tree, r, {k: {m: round(v, 3) for m, v in e.items() if isinstance(v, float)}
                            for k, e in rounds[tree][-1].items()}, flush=True)
    results = {}
    kinds = ("md", "bare", "package", "overhead")
    for tree, measured in rounds.items():
        for key in measured[0]:
            entries = [m[key] for m in measured]
            row = {f"{kind}{clock}": spread([e[f"{kind}{clock}"] for e in entries])
                   for kind in kinds for clock in ("", "_cpu") if f"{kind}{clock}" in entries[0]}
            row["all_stable"] = all(e["stable"] for e in entries)
            results.setdefault(key, {})[tree] = row
    record = {
        "command": "OMP_NUM_THREADS=1 python benchmarks/speed_engine.py " + " ".join(sys.argv[1:]),
        "date": datetime.now(timezone.utc).isoformat(timespec="minutes"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, 1 thread",
        "load_average_before_after": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "settings": {k: getattr(args, k) for k in ("ensemble", "temperature", "save_every", "check_every", "warmup",
                                                     "seed", "rounds", "repeats", "scale")},
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1))
    print("| system / model | tree | ffpt md steps/s (CPU) | bare calls/s (CPU) | package calls/s (CPU) | "
          "engine overhead, wall | engine overhead, CPU |")
    print("|---|---|---|---|---|---|---|")
    for key, trees_rows in results.items():
        for tree, row in trees_rows.items():
            rates = [rate_cell(row.get(k)) for k in ("md_cpu", "bare_cpu", "package_cpu")]
            shares = [share_cell(row[k]) for k in ("overhead", "overhead_cpu")]
            print(f"| {key} | {tree} | " + " | ".join(rates + shares) + " |")


def rate_cell(s: dict | None) -> str:
    return "" if s is None else f"{s['median']:.0f} ({s['min']:.0f} to {s['max']:.0f})"


def share_cell(s: dict) -> str:
    return f"{100 * s['median']:.1f} % ({100 * s['min']:.1f} to {100 * s['max']:.1f})"


if __name__ == "__main__":
    main()

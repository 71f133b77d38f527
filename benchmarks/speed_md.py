"""MD speed of the ASE calculators of ffpt's NewtonNet and ffpt's MACE backend, measured alternately.

For a 9-atom molecule, a 63-atom water cluster and a 192-atom periodic water box, runs velocity-Verlet
MD (0.5 fs, 300 K start) with each architecture in turn, ``--rounds`` times, and reports the median
steps/s, atoms*steps/s and the NewtonNet/MACE ratio. Also measures training throughput (frames/s of
forward + force loss + backward + AdamW step, batches of 16 ethanol frames). Hyper-parameters come
from trained model files (``--newtonnet-model``/``--mace-model``, e.g. from mace_accuracy.py) so the
speed is that of models of known accuracy; weights are redrawn because cost does not depend on them.

    OMP_NUM_THREADS=2 python benchmarks/speed_md.py --steps 30 --rounds 3 --out benchmarks/runs/speed_md.json
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from ase import units
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.md.verlet import VelocityVerlet
from speed_systems import model_for_speed, systems
from tqdm import tqdm

from ffpt.fileio import atomic_write_json
from ffpt.models.calculator import MLIPCalculator
from ffpt.models.graph import NeighborListBuilder, collate, graph_from_atoms
from ffpt.training.module import loss_terms

ARCHITECTURES = ("newtonnet", "mace")


def md_steps_per_second(calc, atoms, steps: int, seed: int) -> float:
    """Velocity-Verlet steps per second (0.5 fs), after 2 untimed warm-up steps."""
    atoms = atoms.copy()
    atoms.calc = calc
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(seed))
    dyn = VelocityVerlet(atoms, timestep=0.5 * units.fs)
    dyn.run(2)
    start = time.perf_counter()
    dyn.run(steps)
    return steps / (time.perf_counter() - start)


def training_frames_per_second(model, n_batches: int, batch_size: int = 16, seed: int = 0) -> float:
    """Frames/s of training steps on rattled ethanol frames (labels are noise: only cost matters)."""
    from ase.build import molecule

    rng = np.random.default_rng(seed)
    nl = NeighborListBuilder(model.cutoff)
    graphs = []
    for _ in range(batch_size):
        a = molecule("CH3CH2OH")
        a.positions += rng.normal(0, 0.05, a.positions.shape)
        g = graph_from_atoms(a, model.elements, nl)
        g.energy = torch.zeros(1)
        g.forces = torch.tensor(rng.normal(0, 1, (len(a), 3)), dtype=torch.float32)
        graphs.append(g)
    batch = collate(graphs)
    model = model.float().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        terms = loss_terms(model, batch, training=True)
        loss = terms["energy_loss"] + 10 * terms["forces_loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(n_batches):
        step()
    return n_batches * batch_size / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--newtonnet-model", help="trained NewtonNet model file whose hyper-parameters to time")
    p.add_argument("--mace-model", help="trained MACE model file whose hyper-parameters to time")
    p.add_argument("--steps", type=int, default=30, help="timed MD steps per round")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per system")
    p.add_argument("--train-batches", type=int, default=5)
    p.add_argument("--compile", action="store_true", help="also time NewtonNet through torch.compile")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/runs/speed_md.json")
    args = p.parse_args()

    calcs, hparams = {}, {}
    for arch in ARCHITECTURES:
        model, hparams[arch] = model_for_speed(arch, getattr(args, f"{arch}_model"), seed=args.seed)
        model.energy_scale.fill_(1e-3)  # untrained weights: keep the dynamics gentle, cost is unchanged
        calcs[arch] = MLIPCalculator(model, dtype=torch.float32)
    compile_seconds = None
    if args.compile:
        model, _ = model_for_speed("newtonnet", args.newtonnet_model, seed=args.seed)
        model.energy_scale.fill_(1e-3)
        calcs["newtonnet_compiled"] = MLIPCalculator(model, dtype=torch.float32, compile=True)
        probe = systems()["water box (192 atoms, periodic)"]
        start = time.perf_counter()
        forces = {k: calcs[k].get_forces(probe.copy()) for k in ("newtonnet_compiled", "newtonnet")}
        compile_seconds = time.perf_counter() - start
        np.testing.assert_allclose(forces["newtonnet_compiled"], forces["newtonnet"], atol=1e-5)
    variants = list(calcs)
    results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
               f"torch {torch.__version__}, threads {torch.get_num_threads()}",
               "date": datetime.now(timezone.utc).isoformat(timespec="minutes"), "hparams": hparams,
               "compile_seconds": compile_seconds, "md": {}, "training_frames_per_s": {}}
    for name, atoms in systems().items():
        rates = {v: [] for v in variants}
        for r in tqdm(range(args.rounds), desc=name):
            for v in variants[r % len(variants):] + variants[: r % len(variants)]:  # rotate the order too
                rates[v].append(md_steps_per_second(calcs[v], atoms, args.steps, seed=args.seed + r))
        entry = {v: {"steps_per_s": statistics.median(x), "atom_steps_per_s": statistics.median(x) * len(atoms),
                     "all_steps_per_s": x} for v, x in rates.items()}
        entry["n_atoms"] = len(atoms)
        for v in variants:
            if v != "mace":
                entry[f"ratio_{v}_over_mace"] = entry[v]["steps_per_s"] / entry["mace"]["steps_per_s"]
        results["md"][name] = entry
        atomic_write_json(Path(args.out), results)
    for arch in ARCHITECTURES:
        model, _ = model_for_speed(arch, getattr(args, f"{arch}_model"), seed=args.seed)
        results["training_frames_per_s"][arch] = training_frames_per_second(model, args.train_batches, seed=args.seed)
    atomic_write_json(Path(args.out), results)

    print(f"\n{results['machine']}, {results['date']}")
    others = [v for v in variants if v != "mace"]
    print("| system | atoms | " + " | ".join(f"{v} steps/s (atom-steps/s)" for v in variants)
          + " | " + " | ".join(f"{v}/mace" for v in others) + " |")
    print("|---" * (2 + len(variants) + len(others)) + "|")
    for name, e in results["md"].items():
        cells = [f"{e[v]['steps_per_s']:.2f} ({e[v]['atom_steps_per_s']:.0f})" for v in variants]
        cells += [f"{e[f'ratio_{v}_over_mace']:.2f}x" for v in others]
        print(f"| {name} | {e['n_atoms']} | " + " | ".join(cells) + " |")
    if compile_seconds is not None:
        print(f"torch.compile warm-up (first call, includes code generation): {compile_seconds:.0f} s")
    t = results["training_frames_per_s"]
    print(f"training (ethanol, batch 16): NewtonNet {t['newtonnet']:.0f} frames/s, MACE {t['mace']:.0f} frames/s, "
          f"ratio {t['newtonnet'] / t['mace']:.2f}x")


if __name__ == "__main__":
    main()

"""Cost of one MD step vs number of atoms for ffpt's NewtonNet on periodic liquid water (up to 3,000 atoms).

For boxes of 8 to 1,000 water molecules (24 to 3,000 atoms) at 0.997 g/cm^3, times velocity-Verlet
steps (0.5 fs; neighbour list, forces by autograd, integration) with the float32 ASE calculator and
fits time = a * N^b: b close to 1 means linear cost. Writes JSON (atomically, after each size) and a
log-log plot.

    OMP_NUM_THREADS=1 python benchmarks/speed_scaling.py --out benchmarks/runs/speed_scaling.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from ase import units
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.md.verlet import VelocityVerlet
from speed_systems import model_for_speed, water_box
from tqdm import tqdm

from ffpt.models.calculator import MLIPCalculator


def seconds_per_step(calc, atoms, steps: int, seed: int) -> float:
    atoms = atoms.copy()
    atoms.calc = calc
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(seed))
    dyn = VelocityVerlet(atoms, timestep=0.5 * units.fs)
    dyn.run(1)  # warm-up
    start = time.perf_counter()
    dyn.run(steps)
    return (time.perf_counter() - start) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="NewtonNet model file whose hyper-parameters to time (default: ffpt defaults)")
    p.add_argument("--molecules", type=int, nargs="+", default=[8, 27, 64, 125, 216, 343, 512, 1000])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--compile", action="store_true", help="run the network through torch.compile")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/runs/speed_scaling.json")
    p.add_argument("--plot", default="benchmarks/figures/speed_scaling.png")
    args = p.parse_args()

    model, hparams = model_for_speed("newtonnet", args.model, elements=(1, 8), seed=args.seed)
    model.energy_scale.fill_(1e-3)  # untrained weights: gentle dynamics, same cost
    calc = MLIPCalculator(model, dtype=torch.float32, compile=args.compile)
    calc.get_forces(water_box(8, seed=args.seed))  # untimed: code generation when compiling
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="minutes"), "hparams": hparams,
              "threads": torch.get_num_threads(), "compile": args.compile, "n_atoms": [], "seconds_per_step": []}
    for n in tqdm(args.molecules, desc="water boxes"):
        box = water_box(n, seed=args.seed)
        result["n_atoms"].append(len(box))
        result["seconds_per_step"].append(seconds_per_step(calc, box, args.steps, args.seed))
        fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(result, fh, indent=2)
        os.replace(tmp, out)
    n, t = np.array(result["n_atoms"]), np.array(result["seconds_per_step"])
    big = n >= 192  # fit the regime where fixed per-call overheads no longer dominate
    b, log_a = np.polyfit(np.log(n[big]), np.log(t[big]), 1)
    result["fit_exponent_n_ge_192"] = float(b)
    with open(out, "w") as fh:
        json.dump(result, fh, indent=2)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    ax.loglog(n, 1e3 * t, "o-", label="NewtonNet (ffpt), float32" + (", compiled" if args.compile else ""))
    ax.loglog(n[big], 1e3 * np.exp(log_a) * n[big] ** b, "--", label=f"fit N^{b:.2f}")
    ax.set_xlabel("atoms (periodic water)")
    ax.set_ylabel("ms per MD step")
    ax.legend()
    fig.tight_layout()
    Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.plot, dpi=120)
    print("| atoms | ms/step | atom-steps/s |\n|---|---|---|")
    for ni, ti in zip(n, t):
        print(f"| {ni} | {1e3 * ti:.1f} | {ni / ti:.0f} |")
    print(f"fit t ~ N^{b:.2f} for N >= 192")


if __name__ == "__main__":
    main()

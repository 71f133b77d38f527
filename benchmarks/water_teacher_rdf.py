"""The teacher's own liquid: NVT MD of the 32-molecule water box with GFN2-xTB itself, and its RDFs.

The water experiment's boxes come from flexible-TIP3P MD, so their RDFs are TIP3P's structure, not
GFN2-xTB's; this run gives the reference the arms' RDFs should be compared against (issue 30, item 1).
Langevin MD on ffpt's engine (``ffpt md``'s :func:`ffpt.simulate.md.run_md`) with ffpt's ``gfn2``
teacher (tblite, periodic; any teacher name with ``--teacher``) as the calculator, one thread. At
about 10 s per step here, 5 ps (10,000 steps at 0.5 fs) is about 28 h of one core, so the run is
resumable: it checkpoints every ``--save-every`` steps into ``OUT/seed_<seed>/``, and the same command
after a kill, or one with a larger ``--steps``, goes on from the last checkpoint (run it in chunks:
``timeout 4h ...``).
Independent seeds (``--seed``, one process each) run on separate cores.

Whatever has been run so far, every time: ``OUT/rdf.json`` (:class:`ffpt.observables.rdf.RDF` over
the saved frames of all seeds from ``--from-fs`` on: the experiment's reference RDF, e.g. for
``stability.md.monitors.reference_rdf``), ``OUT/rdf.png`` and ``OUT/summary.json`` (frames and window
used per seed, mean density, wall seconds per step of this invocation, start-up and the first
evaluation included).

    OMP_NUM_THREADS=1 python benchmarks/water_teacher_rdf.py --steps 10000 --seed 0 --out runs/water_gfn2_md
    OMP_NUM_THREADS=1 python benchmarks/water_teacher_rdf.py --steps 10000 --seed 1 --out runs/water_gfn2_md
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import ase.io
import numpy as np

from ffpt.fileio import atomic_write_json
from ffpt.observables.density import mass_density
from ffpt.observables.rdf import compute_rdf
from ffpt.simulate.calculators import resolve
from ffpt.simulate.config import MDConfig
from ffpt.simulate.md import run_md

ROOT = Path(__file__).resolve().parents[1]
BOX = ROOT / "experiments" / "structures" / "water_32_tip3p_300K.extxyz"


def run(args: argparse.Namespace) -> dict:
    """Run or resume seed ``args.seed`` to ``args.steps`` steps; wall seconds per step of this call."""
    config = MDConfig(steps=args.steps, timestep_fs=args.timestep, temperature_K=args.temperature,
                      ensemble="langevin", friction_per_fs=args.friction, seed=args.seed,
                      save_every=args.save_every, check_every=args.save_every)
    folder = args.out / f"seed_{args.seed}"
    checkpoint = folder / "checkpoint.json"
    before = json.loads(checkpoint.read_text())["step"] if checkpoint.exists() else 0
    start = time.perf_counter()
    result = run_md(ase.io.read(args.structure), resolve(args.teacher), config, folder, progress=not args.quiet)
    seconds = time.perf_counter() - start
    steps = result.steps - before
    return {"seed": args.seed, "stable": result.stable, "steps": result.steps, "steps_this_call": steps,
            "wall_s_per_step": seconds / steps if steps else None}


def reference_rdf(args: argparse.Namespace) -> dict:
    """RDF of every seed's frames from ``args.from_fs`` on: ``rdf.json``, ``rdf.png``; what went in."""
    frames, used = [], {}
    for path in sorted(args.out.glob("seed_*/trajectory.extxyz")):
        kept = [f for f in ase.io.read(path, ":") if f.info["time_fs"] >= args.from_fs]
        frames += kept
        used[path.parent.name] = {"n_frames": len(kept),
                                  "window_fs": [kept[0].info["time_fs"], kept[-1].info["time_fs"]] if kept else None}
    summary = {"teacher": args.teacher, "structure": str(args.structure), "from_fs": args.from_fs, "seeds": used,
               "n_frames": len(frames), "pairs": args.pairs}
    if frames:
        from ffpt.analysis.rdf import plot_rdf

        rdf = compute_rdf(frames, rmax=args.rmax, bins=args.bins, pairs=args.pairs)
        rdf.save(args.out / "rdf.json")
        plot_rdf({f"{args.teacher} MD ({len(frames)} frames)": rdf}, args.out / "rdf.png",
                 f"water box, {args.teacher} NVT {args.temperature:g} K")
        summary["density_g_cm3"] = float(np.mean([mass_density(f) for f in frames]))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="run folder (seed_<seed>/, rdf.json, summary.json)")
    parser.add_argument("--steps", type=int, required=True, help="total steps of the seed (0: only the RDF)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--structure", type=Path, default=BOX)
    parser.add_argument("--teacher", default="gfn2", help="teacher name (calculator of the MD)")
    parser.add_argument("--temperature", type=float, default=300.0, help="K")
    parser.add_argument("--timestep", type=float, default=0.5, help="fs")
    parser.add_argument("--friction", type=float, default=0.01, help="Langevin friction (1/fs)")
    parser.add_argument("--save-every", type=int, default=10, help="steps between saved frames and checkpoints")
    parser.add_argument("--from-fs", type=float, default=1000.0, help="RDF from this time on (fs; equilibration before)")
    parser.add_argument("--pairs", nargs="+", default=["O-O", "O-H", "H-H"])
    parser.add_argument("--rmax", type=float, default=6.0, help="A")
    parser.add_argument("--bins", type=int, default=120)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {"this_call": run(args) if args.steps > 0 else None, **reference_rdf(args)}
    atomic_write_json(args.out / "summary.json", summary)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()

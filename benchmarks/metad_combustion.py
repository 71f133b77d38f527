"""Benchmark: well-tempered metadynamics of one hydrogen-combustion channel with GFN2-xTB.

Starts from the channel's transition-state geometry, biases the channel's two coordination
numbers (``reactions.json``), keeps the fragments within upper distance walls, and reports the
2-D free-energy surface, its convergence, the free-energy barrier between the reactant and
product geometries' CV points, the static GFN2-xTB and wB97X-V barriers from the stationary
points, and the species along the run.

Usage (about 10 minutes on 2 CPU cores)::

    OMP_NUM_THREADS=1 python benchmarks/metad_combustion.py --channel 09 --steps 60000

Writes ``benchmarks/runs/metad_<channel>/`` (HILLS, COLVAR, trajectory, fes.dat, summary.json)
and ``benchmarks/figures/metad_<channel>_fes.png``; a killed run resumes when started again.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import ase.io
import numpy as np
from ase import units

from ffpt.analysis.fes import barrier, fes_convergence, fes_from_hills, plot_fes, project, write_fes
from ffpt.analysis.species import plot_species
from ffpt.observables.species import identify_outcome, species_timeline
from ffpt.simulate.cvs import Distance, channel_cvs, pair_from_label
from ffpt.simulate.metad import MetadParameters, Wall, run_metadynamics
from ffpt.systems.h2combustion import (
    GEOMETRIES, REACTIONS_FILE, load_channel, parse_reaction, read_stationary_point, stationary_energy_hartree,
    stationary_point_path,
)
from ffpt.teachers import get as get_teacher

ROOT = Path(__file__).resolve().parent
KCAL = units.kcal / units.mol


def geometry(data: Path, kind: str, channel) -> tuple:
    """Atoms of a stationary point and the wB97X-V energy on its comment line (eV, or None)."""
    atoms = read_stationary_point(data / GEOMETRIES, kind, channel)
    hartree = stationary_energy_hartree(stationary_point_path(data / GEOMETRIES, kind, channel.id))
    return atoms, (hartree * units.Hartree if hartree is not None else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/h2combustion"))
    parser.add_argument("--channel", default="09")
    parser.add_argument("--steps", type=int, default=60000)
    parser.add_argument("--temperature", type=float, default=1000.0, help="K")
    parser.add_argument("--timestep", type=float, default=0.25, help="fs")
    parser.add_argument("--friction", type=float, default=0.01, help="1/fs")
    parser.add_argument("--height", type=float, default=5.0, help="initial hill height, kJ/mol")
    parser.add_argument("--sigma", type=float, default=0.04, help="hill width (coordination number)")
    parser.add_argument("--pace", type=int, default=20)
    parser.add_argument("--biasfactor", type=float, default=30.0)
    parser.add_argument("--wall", type=float, default=3.0, help="upper wall on every CV pair distance, A")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    channel = load_channel(args.data / REACTIONS_FILE, args.channel)
    out = args.out or ROOT / "runs" / f"metad_{channel.id}"
    start, e_ts_ref = geometry(args.data, "TS", channel)
    reactant, e_r_ref = geometry(args.data, "reactant", channel)
    product, e_p_ref = geometry(args.data, "product", channel)
    cvs = channel_cvs(channel, start)
    pairs = sorted({pair_from_label(lab, start) for labels in channel.cv_labels for lab in labels})
    walls = [Wall(Distance(i, j, name=f"d{i}{j}"), at=args.wall, kappa=10.0) for i, j in pairs]
    teacher = get_teacher("gfn2")

    static = {}
    for name, atoms in (("reactant", reactant), ("TS", start), ("product", product)):
        static[name] = teacher.label(atoms).energy
    params = MetadParameters(
        steps=args.steps, temperature=args.temperature, sigma=(args.sigma,) * len(cvs),
        height=args.height * units.kJ / units.mol, pace=args.pace, biasfactor=args.biasfactor,
        timestep=args.timestep, friction=args.friction, seed=args.seed, colvar_stride=20,
        trajectory_stride=200, checkpoint_every=2000,
    )
    t0 = time.time()
    result = run_metadynamics(start, teacher, cvs, params, out, walls=walls)
    wall_time = time.time() - t0

    hills = result.hills
    ranges = [(0.0, max(1.1, float(hills.center[:, k].max() + 3 * args.sigma))) for k in range(len(cvs))]
    fes = fes_from_hills(hills, bins=121, ranges=ranges)
    history = fes_convergence(hills, n_estimates=6, bins=121, ranges=ranges)
    write_fes(out / "fes.dat", fes)
    point_r = [cv.compute(reactant)[0] for cv in cvs]
    point_p = [cv.compute(product)[0] for cv in cvs]
    barriers = [barrier(f, point_r, point_p) for f in history]
    final = barriers[-1]
    figure = ROOT / "figures" / f"metad_{channel.id}_fes.png"
    plot_fes(fes, figure, history=history[:-1], unit="kcal/mol", max_level=float(np.ceil(final.forward / KCAL + 10)),
             marks={"reactant": point_r, "product": point_p, "TS": [cv.compute(start)[0] for cv in cvs]},
             title=f"channel {channel.id}: {channel.reaction}, GFN2-xTB, {args.temperature:.0f} K, "
                   f"{hills.time[-1] / 1000:.1f} ps")
    profile = project(fes, 0, args.temperature)
    plot_fes(profile, out / f"fes_{cvs[0].name}.png", history=[project(h, 0, args.temperature) for h in history[:-1]],
             unit="kcal/mol", marks={"reactant": point_r, "product": point_p})

    frames = ase.io.read(result.trajectory_file, ":", format="extxyz")
    timeline = species_timeline(frames)
    reaction = parse_reaction(channel.reaction)
    outcome = identify_outcome(timeline, reaction)
    plot_species(timeline, out / "species.png", unphysical=timeline.unphysical(reaction.allowed),
                 title=channel.reaction)
    visited = sorted({n for n in timeline.names})
    summary = {
        "channel": channel.id, "reaction": channel.reaction, "steps": result.steps,
        "simulated_ps": result.steps * args.timestep / 1000, "hills": len(hills),
        "wall_time_s_this_call": round(wall_time, 1),
        "settings": vars(args) | {"data": str(args.data), "out": str(out)},
        "cv_reactant": point_r, "cv_product": point_p,
        "fes_barrier_kcal_mol": {
            "forward": final.forward / KCAL, "backward": final.backward / KCAL, "saddle_cv": final.saddle,
            "reactant_minimum_cv": final.start_minimum,
            "history": [(h.time / 1000, b.forward / KCAL) for h, b in zip(history, barriers)],
        },
        "static_gfn2_kcal_mol": {"TS-reactant": (static["TS"] - static["reactant"]) / KCAL,
                                 "product-reactant": (static["product"] - static["reactant"]) / KCAL},
        "static_wb97xv_kcal_mol": None if e_r_ref is None else {
            "TS-reactant": (e_ts_ref - e_r_ref) / KCAL, "product-reactant": (e_p_ref - e_r_ref) / KCAL},
        "species_seen": visited, "outcome_last_frame": outcome.label,
        "fraction_of_frames": {n: float((timeline.counts[:, k] > 0).mean()) for k, n in enumerate(timeline.names)},
        "unphysical_frames": outcome.unphysical_frames, "frames": len(frames),
        "figure": str(figure),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()

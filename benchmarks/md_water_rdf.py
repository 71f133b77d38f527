"""Liquid water (flexible TIP3P with PME via OpenMM, 64 molecules, periodic): RDFs and the RDF monitor.

1. seed 0, Langevin 300 K: reference RDF (O-O, O-H, H-H), PNG plot;
2. seed 1, 300 K, with the RDF monitor against that reference: must stay stable, and its window
   errors give the noise floor of the RDF error;
3. seed 2, 1500 K (a 'wrong model' for 300 K water: the liquid structure is lost): the RDF monitor
   must fire.

Usage: OMP_NUM_THREADS=1 python benchmarks/md_water_rdf.py [OUT_DIR]   (a few minutes on 2 cores)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read

from ffpt import teachers
from ffpt.analysis.rdf import plot_rdf
from ffpt.observables.rdf import compute_rdf
from ffpt.simulate.config import MDConfig, MonitorConfig
from ffpt.simulate.md import run_md
from ffpt.simulate.monitors import RDFMonitor

N_SIDE, DENSITY = 4, 0.997  # molecules per side, g/cm^3
RMAX, BINS = 6.0, 60
R_OH, ANGLE_HOH = 0.9572, 104.52  # TIP3P geometry (A, degrees)


def water_box(seed: int = 0) -> Atoms:
    """64 TIP3P-geometry waters on a grid with random orientations, O H H order."""
    rng = np.random.default_rng(seed)
    n = N_SIDE**3
    length = (n * 18.015 / (DENSITY * 0.602214)) ** (1 / 3)
    theta = np.radians(ANGLE_HOH) / 2
    local = np.array([[0, 0, 0], [R_OH * np.sin(theta), 0, R_OH * np.cos(theta)],
                      [-R_OH * np.sin(theta), 0, R_OH * np.cos(theta)]])
    positions = []
    spacing = length / N_SIDE
    for i in range(N_SIDE):
        for j in range(N_SIDE):
            for k in range(N_SIDE):
                q = rng.normal(size=4)
                q /= np.linalg.norm(q)
                a, b, c, d = q
                rot = np.array([[a*a+b*b-c*c-d*d, 2*(b*c-a*d), 2*(b*d+a*c)],
                                [2*(b*c+a*d), a*a-b*b+c*c-d*d, 2*(c*d-a*b)],
                                [2*(b*d-a*c), 2*(c*d+a*b), a*a-b*b-c*c+d*d]])
                positions.extend(local @ rot.T + spacing * (np.array([i, j, k]) + 0.5))
    return Atoms("OHH" * n, positions=positions, cell=[length] * 3, pbc=True)


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    base = dict(timestep_fs=0.5, ensemble="langevin", friction_per_fs=0.02, save_every=20, check_every=20,
                monitors=MonitorConfig(min_distance=0.7))
    def calc():
        return teachers.get("tip3p", cutoff=6.0)  # flexible TIP3P, PME
    start = water_box()
    # equilibrate 2 ps, then 4 ps of production at 300 K for the reference
    equil = run_md(start, calc(), MDConfig(steps=4000, temperature_K=300, seed=0, **base), out / "equil")
    liquid = read(out / "equil" / equil.trajectory, index=-1)
    ref_run = run_md(liquid, calc(), MDConfig(steps=8000, temperature_K=300, seed=0, **base), out / "ref")
    ref = compute_rdf(read(out / "ref" / ref_run.trajectory, index=":"), RMAX, BINS, ["O-O", "O-H", "H-H"])
    ref.save(out / "reference_rdf.json")

    window = 50  # 50 checks x 10 fs = 0.5 ps windows
    monitors = MonitorConfig(min_distance=0.7, reference_rdf=out / "reference_rdf.json", rdf_threshold=1.5,
                             rdf_window=window, rdf_rmax=RMAX, rdf_bins=BINS)
    results = {}
    for name, temperature, seed in [("300K_seed1", 300.0, 1), ("1500K_seed2", 1500.0, 2)]:
        config = MDConfig(steps=8000, temperature_K=temperature, seed=seed, **{**base, "monitors": monitors})
        result = run_md(liquid, calc(), config, out / name)
        frames = read(out / name / result.trajectory, index=":")
        # window errors along the run, as the monitor computes them
        probe = RDFMonitor(ref, threshold=1e9, window=window)
        errors = []
        for frame in frames[1:]:
            probe.check(frame, frame.info["time_fs"])
            if probe.last_error is not None:
                errors.append(probe.last_error)
        rdf = compute_rdf(frames, RMAX, BINS, ["O-O", "O-H", "H-H"])
        results[name] = {**result.as_dict(),
                         "window_errors_min_max": [min(errors, default=None), max(errors, default=None)],
                         "whole_run_rdf_error": rdf.error(ref)}
        plot_rdf({"reference 300 K (seed 0)": ref, name: rdf}, out / f"rdf_{name}.png", title=f"TIP3P water, {name}")
    oo = ref.g["O-O"]
    results["reference"] = {"first_O-O_peak_A": float(ref.r[np.argmax(oo)]), "first_O-O_peak_g": float(oo.max()),
                            "frames": ref.n_frames, "wall_s": ref_run.wall_s,
                            "ms_per_step": 1000 * ref_run.wall_s / 8000}
    (out / "summary.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/runs/md_water_rdf"))

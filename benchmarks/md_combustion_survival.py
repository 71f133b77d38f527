"""Hydrogen combustion: GFN2-xTB MD from each channel's transition state, with the reactive monitors.

For every channel of /work/shared/data/h2combustion (reactions.json: multiplicity), Langevin MD at
300 K (dt 0.2 fs, 200 fs) from ``geometries/TS_NN.xyz`` for several seeds, with the non-finite,
minimum-distance (0.5 A) and species monitors (allowed: H, O, OH, H2, O2, H2O, HO2, H2O2). GFN2-xTB
is a physical PES, so every run should stay stable: this measures the monitors' false-alarm rate
and exercises the batch / survival machinery; final species show where each TS relaxed to.

A foreign species must persist for PATIENCE_FS (default 0) before a run fails: with 0, transition
state complexes (HO3, H2O4, ...) count as failures.

Usage: OMP_NUM_THREADS=1 python benchmarks/md_combustion_survival.py [OUT_DIR] [N_SEEDS] [PATIENCE_FS]
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from ase.io import read

from ffpt.analysis.survival import plot_survival, survival_curve
from ffpt.jobs.md import run_batch
from ffpt.simulate.calculators import resolve
from ffpt.simulate.config import MDConfig, MonitorConfig
from ffpt.data.molecules import species_formulas
from ffpt.systems.h2combustion import COMBUSTION_SPECIES, GEOMETRIES, REACTIONS_FILE, load_channels, read_stationary_point, stationary_point_path

DATA = Path("/work/shared/data/h2combustion")
ALLOWED = sorted(COMBUSTION_SPECIES)


def main(out: Path, n_seeds: int, patience_fs: float) -> None:
    reactions = load_channels(DATA / REACTIONS_FILE)
    monitors = MonitorConfig(min_distance=0.5, allowed_species=ALLOWED, species_patience_fs=patience_fs)
    config = MDConfig(steps=1000, timestep_fs=0.2, temperature_K=300, ensemble="langevin", friction_per_fs=0.01,
                      save_every=25, check_every=5, monitors=monitors)
    summary, all_results = {}, []
    for channel, meta in reactions.items():
        if not stationary_point_path(DATA / GEOMETRIES, "TS", channel).exists():
            continue
        ts = read_stationary_point(DATA / GEOMETRIES, "TS", meta)
        batch = run_batch(ts, lambda: resolve("gfn2"), range(n_seeds), config, out / channel, progress=False,
                          label=channel)
        finals = []
        for seed, result in zip(batch.seeds, batch.results):
            last = read(out / channel / f"seed_{seed}" / result.trajectory, index=-1)
            counts = sorted(Counter(f for f, _ in species_formulas(last)).items())
            finals.append(" + ".join(f"{n} {f}" if n > 1 else f for f, n in counts))
        summary[channel] = {
            "reaction": meta["reaction"], "stable": sum(r.stable for r in batch.results), "runs": len(batch.results),
            "reasons": [r.reason for r in batch.results if not r.stable], "final_species": finals,
            "ms_per_step": sum(r.wall_s for r in batch.results) / sum(max(r.steps, 1) for r in batch.results) * 1000,
        }
        all_results += batch.results
        print(channel, json.dumps(summary[channel]))
    curve = survival_curve([r.simulated_fs for r in all_results], [not r.stable for r in all_results])
    plot_survival({"GFN2-xTB, all channels": curve}, out / "survival_all.png")
    summary["_all"] = {"runs": curve.n_runs, "failed": curve.n_failed, "median_fs": curve.median_fs,
                       "fraction_stable_at_200fs": curve.at(200.0)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary["_all"]))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/runs/md_combustion_survival"),
         int(sys.argv[2]) if len(sys.argv) > 2 else 3, float(sys.argv[3]) if len(sys.argv) > 3 else 0.0)

"""Is an arm's NPT water density its teacher's? GFN2-xTB pressure on the model's own NPT frames.

For each NPT stability folder (``stability_ARM``, runs ``seed_*``), takes every ``--every``-th saved
frame from ``--from-fs`` on (the equilibrated part), labels it with GFN2-xTB (``ffpt label``: cached,
resumable, ``--workers`` processes) and compares the teacher's pressure on those frames with the
model's (``pressure_bar`` of each frame; both with the ideal-gas term of the frame's momenta, bar).
If the model were the teacher, the teacher's mean pressure on the model's equilibrium frames would be
the target (1 bar); where it is not, its sign says which way the teacher's density lies. Two windows
(the NVT lead-in at the start density and the end of the NPT part) bracket the teacher's density.
``--until-fs`` ends the window; ``--model`` gives the model's pressure of frames saved without one
(the NVT lead-in of an NPT run).

    python benchmarks/water_npt_pressure.py runs/wat16/stability_ffpt-ft_n100_s0 \
        runs/wat16/stability_scratch_n100_s0 --from-fs 1250 --every 10 --out runs/wat16/pressure
    python benchmarks/water_npt_pressure.py runs/wat16/stability_ffpt-ft_n100_s0 \
        runs/wat16/stability_scratch_n100_s0 --model MODEL_FT --model MODEL_SCRATCH \
        --from-fs 300 --until-fs 500 --every 5 --out runs/wat16/pressure
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from ase import units
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write
from scipy import stats

from ffpt import load_calculator
from ffpt.observables.density import mass_density


def pressure_bar(atoms) -> float:
    """Pressure of the frame's calculator stress plus the ideal-gas term of its momenta (bar)."""
    return float(-np.trace(atoms.get_stress(voigt=False, include_ideal_gas=True)) / 3 / units.bar)


def teacher_pressure_bar(atoms) -> float:
    """:func:`pressure_bar` of the frame's GFN2-xTB stress (REF_stress, eV/A^3, Voigt)."""
    atoms.calc = SinglePointCalculator(atoms, stress=np.asarray(atoms.info["REF_stress"], dtype=float))
    return pressure_bar(atoms)


def window_frames(folder: Path, from_fs: float, until_fs: float, every: int) -> list:
    frames = []
    for path in sorted(folder.glob("seed_*/trajectory.extxyz")):
        run = [f for f in read(path, ":") if from_fs <= f.info["time_fs"] <= until_fs]
        for f in run[::every]:
            f.info["run"] = path.parent.name
            frames.append(f)
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="NPT stability folders (seed_*/trajectory.extxyz)")
    parser.add_argument("--from-fs", type=float, required=True, help="start of the equilibrated part (fs)")
    parser.add_argument("--until-fs", type=float, default=float("inf"), help="end of the window (fs)")
    parser.add_argument("--model", action="append", type=Path, default=[],
                        help="model file of each folder, in order: the model's pressure of frames saved "
                             "without one (the NVT lead-in)")
    parser.add_argument("--every", type=int, default=10, help="every n-th saved frame")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {}
    if args.model and len(args.model) != len(args.folders):
        sys.exit(f"--model: give one per folder ({len(args.folders)}), got {len(args.model)}")
    for k, folder in enumerate(args.folders):
        name = folder.name.removeprefix("stability_")
        frames = window_frames(folder, args.from_fs, args.until_fs, args.every)
        if not frames:
            sys.exit(f"{folder}: no saved frame between {args.from_fs:g} and {args.until_fs:g} fs")
        window = f"{args.from_fs:g}-{args.until_fs:g}fs"
        data, labelled = args.out / f"{name}_{window}_frames.extxyz", args.out / f"{name}_{window}_gfn2.extxyz"
        write(data, frames)
        subprocess.run([sys.executable, "-m", "ffpt", "label", "--data", str(data), "--teacher", "gfn2",
                        "--out", str(labelled), "--workers", str(args.workers), "--no-progress"], check=True)
        gfn2 = read(labelled, ":")
        if args.model:
            calc = load_calculator(args.model[k])
            for f, g in zip(frames, gfn2):
                f.calc = calc
                g.info["pressure_bar"] = pressure_bar(f)
        model_p = np.array([f.info["pressure_bar"] for f in gfn2])
        teacher_p = np.array([teacher_pressure_bar(f) for f in gfn2])
        diff = teacher_p - model_p
        rho = float(np.mean([mass_density(f) for f in frames]))
        half = stats.t.ppf(0.975, len(diff) - 1) * stats.sem(diff)
        summary[f"{name} {window}"] = {
            "n_frames": len(gfn2), "runs": sorted({f.info["run"] for f in frames}),
            "model_density_g_cm3": rho,
            "model_pressure_bar": {"mean": float(model_p.mean()), "sem": float(stats.sem(model_p))},
            "gfn2_pressure_bar": {"mean": float(teacher_p.mean()), "sem": float(stats.sem(teacher_p))},
            "gfn2_minus_model_bar": {"mean": float(diff.mean()), "ci95": [float(diff.mean() - half), float(diff.mean() + half)]},
        }
        s = summary[f"{name} {window}"]
        print(f"{name}: {len(gfn2)} frames, model rho {rho:.3f} g/cm3; P model {model_p.mean():+.0f} +- "
              f"{stats.sem(model_p):.0f} bar, GFN2 {teacher_p.mean():+.0f} +- {stats.sem(teacher_p):.0f} bar; "
              f"GFN2 - model {diff.mean():+.0f} [{s['gfn2_minus_model_bar']['ci95'][0]:+.0f}, "
              f"{s['gfn2_minus_model_bar']['ci95'][1]:+.0f}] bar", flush=True)
    (args.out / f"pressure_{window}.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()

"""Test errors of arms' model files on the same frames, and each FFPT-FT arm against scratch frame by frame
(mean difference, 95 % bootstrap interval, Wilcoxon p: the report's ``accuracy``), for runs whose
evaluate stage has not run yet:

    python benchmarks/accuracy_of_models.py runs/eth30/abinitio/test.extxyz --budget 30 \\
        --arm mace-ffpt-ft 'runs/eth30/mace-ffpt-ft_n30_s*/model/model.pt' \\
        --arm mace-scratch 'runs/eth30/mace-scratch_n30_s*/model/model.pt' --out accuracy_n30.json

An arm named like an experiment's (``ffpt-ft``, ``scratch``, ``mace-ffpt-ft``, ``mace-scratch``,
``mace-cli``) takes its kind from the name; each glob's files in sorted order are arm seeds 0, 1, ...
"""

from __future__ import annotations

import argparse
import glob
import json

from ffpt.data.io import read_frames
from ffpt.fileio import atomic_write_json
from ffpt.observables.errors import error_table, frame_errors
from ffpt.workflows.accuracy_report import accuracy_comparisons, accuracy_markdown
from ffpt.workflows.config import Arm
from ffpt.workflows.experiment import model_predictions


def arm_of(name: str) -> Arm:
    """The experiment's arm of that name (kind from its ending; ``mace-cli`` is MACE scratch by mace-cli)."""
    if name == "mace-cli":
        return Arm(name, "mace", "scratch", "mace-cli")
    kind = "ffpt-ft" if name.endswith("ffpt-ft") else "scratch"
    return Arm(name, "mace" if name.startswith("mace") else "newtonnet", kind)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("test", help="labelled test frames (extxyz)")
    parser.add_argument("--arm", nargs=2, action="append", metavar=("NAME", "GLOB"), required=True)
    parser.add_argument("--budget", type=int, required=True, help="the models' label budget (for the record)")
    parser.add_argument("--out", required=True, help="JSON: rows (per model) and accuracy comparisons")
    args = parser.parse_args()
    frames = read_frames(args.test)
    rows = []
    for name, pattern in args.arm:
        paths = sorted(glob.glob(pattern))
        if not paths:
            parser.error(f"--arm {name}: no model file matches {pattern}")
        for seed, path in enumerate(paths):
            energies, forces = model_predictions(path, frames)
            rows.append({"arm": name, "budget": args.budget, "seed": seed, "model": path,
                         **error_table(frames, energies, forces).as_dict(),
                         "per_frame": frame_errors(frames, energies, forces)})
            print(f"{name} seed {seed}: force MAE {rows[-1]['forces_mae_mev_per_a']:.1f} meV/A, energy MAE "
                  f"{rows[-1]['energy_mae_mev_per_atom']:.2f} meV/atom ({path})", flush=True)
    accuracy = accuracy_comparisons(rows, [arm_of(name) for name, _ in args.arm])
    print("\n".join(accuracy_markdown(accuracy)))
    atomic_write_json(args.out, {"test": args.test, "rows": rows, "accuracy": accuracy})


if __name__ == "__main__":
    main()

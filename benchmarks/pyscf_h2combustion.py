"""Does the PySCF teacher at wB97X-V/cc-pVTZ reproduce the hydrogen-combustion reference data?

Labels a few IRC frames (reactant end, highest-energy point, product end) of a few channels with
``ffpt.teachers.runner.label_frames`` (parallel workers, resumable cache), plus the free H and O
atoms, and compares with the data set (Guan et al., Sci. Data 9, 215, 2022):
forces directly (kcal/mol/A), energy differences between frames of a channel (kcal/mol), and the
absolute energies relative to free atoms (the data set's atom energies vs our own).

    OMP_NUM_THREADS=1 python benchmarks/pyscf_h2combustion.py --workers 2

Needs /work/shared/data/h2combustion (not part of the repository). Writes
``runs/benchmarks/pyscf_h2combustion/results.json`` and prints a Markdown summary.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
from ase import Atoms

from ffpt.fileio import atomic_write_json
from ffpt.teachers.runner import label_frames
from ffpt.systems.h2combustion import FREE_ATOM_ENERGY_HARTREE, REACTIONS_FILE, load_channel
from ffpt.units import HARTREE, KCAL_PER_MOL

DATA = Path("/work/shared/data/h2combustion")
HARTREE_TO_KCAL = 627.5  # the data set's own conversion (README)
DATASET_ATOM_ENERGY = FREE_ATOM_ENERGY_HARTREE  # hartree, the data set's parser
ATOM_MULTIPLICITY = {1: 2, 8: 3}


def channel_frames(data_dir: Path, name: str, per_channel: int, seed: int) -> list[Atoms]:
    """``per_channel`` frames of ``name`` (e.g. "09_irc", "02_aimd"): for IRCs both ends and the
    energy maximum first, otherwise a seeded random choice."""
    channel = name.split("_")[0]
    multiplicity = load_channel(data_dir / REACTIONS_FILE, channel).multiplicity
    npz = np.load(data_dir / "npz" / f"{name}.npz")
    n = len(npz["E"])
    if name.endswith("_irc"):
        picks = [0, int(np.argmax(npz["E"][:, 0])), n - 1][:per_channel]
    else:
        picks = np.random.default_rng(seed).choice(n, size=per_channel, replace=False).tolist()
    frames = []
    for i in sorted(set(picks)):
        k = int(npz["N"][i, 0])
        atoms = Atoms(numbers=npz["Z"][i, :k], positions=npz["R"][i, :k])
        atoms.info.update(spin=multiplicity, charge=0, channel=name, index=int(i),
                          ref_energy_kcal=float(npz["E"][i, 0]))
        atoms.arrays["ref_forces_kcal"] = npz["F"][i, :k].astype(float)
        frames.append(atoms)
    return frames


def net_torque(atoms: Atoms, forces: np.ndarray) -> float:
    """|sum r x F| about the centroid (kcal/mol): zero for forces of any rotation-invariant energy."""
    r = atoms.positions - atoms.positions.mean(axis=0)
    return float(np.linalg.norm(np.cross(r, forces).sum(axis=0)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DATA)
    parser.add_argument("--channels", nargs="+", default=["02_aimd", "09_aimd", "09_irc"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-channel", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--xc", default="wb97x-v")
    parser.add_argument("--basis", default="cc-pvtz")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/pyscf_h2combustion"))
    args = parser.parse_args()

    frames = [f for name in args.channels for f in channel_frames(args.data_dir, name, args.per_channel, args.seed)]
    atoms = [Atoms(numbers=[z], info={"spin": m, "charge": 0}) for z, m in ATOM_MULTIPLICITY.items()]
    start = time.perf_counter()
    run = label_frames(frames + atoms, "pyscf", {"xc": args.xc, "basis": args.basis}, args.out / "cache",
                       args.workers, report_path=args.out / "failures.json")
    wall = time.perf_counter() - start
    labelled = dict(zip(run.indices, run.frames))
    for failure in run.failures:
        print(f"FAILED frame {failure.index}: {failure.reason}")

    own_atom = {z: labelled[len(frames) + k].info["REF_energy"] / HARTREE
                for k, z in enumerate(ATOM_MULTIPLICITY) if len(frames) + k in labelled}
    rows, pairs = [], []
    for name in args.channels:
        group = [(k, f) for k, f in enumerate(frames) if f.info["channel"] == name and k in labelled]
        for k, ref in group:
            out = labelled[k]
            numbers = ref.numbers
            e_hartree = out.info["REF_energy"] / HARTREE
            forces = out.arrays["REF_forces"] / KCAL_PER_MOL
            df = forces - ref.arrays["ref_forces_kcal"]
            rel_dataset = (e_hartree - sum(DATASET_ATOM_ENERGY[int(z)] for z in numbers)) * HARTREE_TO_KCAL
            row = {
                "channel": name, "frame": ref.info["index"],
                "E_ref_kcal": ref.info["ref_energy_kcal"],
                "dE_abs_kcal": rel_dataset - ref.info["ref_energy_kcal"],
                "F_max_err": float(np.abs(df).max()), "F_mae": float(np.abs(df).mean()),
                "F_max_ref": float(np.abs(ref.arrays["ref_forces_kcal"]).max()),
                "torque_ref": net_torque(ref, ref.arrays["ref_forces_kcal"]),
                "torque_ours": net_torque(ref, forces),
            }
            if len(own_atom) == len(ATOM_MULTIPLICITY):
                own = (e_hartree - sum(own_atom[int(z)] for z in numbers)) * HARTREE_TO_KCAL
                row["dE_abs_own_atoms_kcal"] = own - ref.info["ref_energy_kcal"]
            rows.append(row)
        for (a, ra), (b, rb) in itertools.combinations(group, 2):
            ours = (labelled[b].info["REF_energy"] - labelled[a].info["REF_energy"]) / HARTREE * HARTREE_TO_KCAL
            theirs = rb.info["ref_energy_kcal"] - ra.info["ref_energy_kcal"]
            pairs.append({"channel": name, "frames": [ra.info["index"], rb.info["index"]],
                          "dE_ref_kcal": theirs, "error_kcal": ours - theirs})

    results = {
        "level": run.teacher.level, "options": run.teacher.options, "pyscf": run.teacher.version,
        "workers": args.workers, "wall_s": wall, "n_computed": run.n_computed, "n_cached": run.n_cached,
        "atoms_hartree": {"ours": own_atom, "dataset": DATASET_ATOM_ENERGY},
        "frames": rows, "pairs": pairs, "failures": [f.__dict__ for f in run.failures],
    }
    atomic_write_json(args.out / "results.json", results)

    print(f"\n{run.teacher.level}, {len(frames) + len(atoms)} single points "
          f"({run.n_computed} computed, {run.n_cached} cached) in {wall:.0f} s with {args.workers} workers\n")
    print("| channel | frame | E_ref (kcal/mol) | max abs F_ref | max abs dF | MAE dF | torque F_ref / ours "
          "| E - E_ref (dataset atoms) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['channel']} | {r['frame']} | {r['E_ref_kcal']:.3f} | {r['F_max_ref']:.2f} | {r['F_max_err']:.4f} "
              f"| {r['F_mae']:.4f} | {r['torque_ref']:.3f} / {r['torque_ours']:.3f} | {r['dE_abs_kcal']:+.4f} |")
    print("\n| channel | frames | dE_ref (kcal/mol) | error (kcal/mol) |\n|---|---|---|---|")
    for p in pairs:
        print(f"| {p['channel']} | {p['frames'][0]}-{p['frames'][1]} | {p['dE_ref_kcal']:.3f} | {p['error_kcal']:+.4f} |")
    for z, e in own_atom.items():
        print(f"\nfree atom Z={z}: ours {e:.10f} Eh, dataset {DATASET_ATOM_ENERGY[z]:.10f} Eh, "
              f"diff {(e - DATASET_ATOM_ENERGY[z]) * HARTREE_TO_KCAL:+.4f} kcal/mol")
    if rows:
        print(f"\nforces: max abs error {max(r['F_max_err'] for r in rows):.4f}, "
              f"MAE {np.mean([r['F_mae'] for r in rows]):.4f} kcal/mol/A; "
              f"energy differences: max abs error {max(abs(p['error_kcal']) for p in pairs):.4f} kcal/mol")


if __name__ == "__main__":
    main()

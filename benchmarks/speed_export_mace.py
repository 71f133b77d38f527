"""MD speed of ffpt's MACE backend eager vs its AOTInductor package (``ffpt export``), with NewtonNet
(eager, exported) and mace-torch's own ASE calculator (``MACECalculator`` on a ``mace_run_train``-style
``.model`` file, as the reference arm runs it) alongside.

Model: the MACE size of the four-arm comparison (hidden irreps 64x0e+64x1o: n_features 64, max_L 1;
2 layers, 8 Bessel functions, max_ell 3, correlation 3, 5 A cutoff), untrained (cost does not depend
on weights), in each ``--dtypes``; mace-torch's model is ``ScaleShiftMACE`` with the same sizes and
mace_run_train's default interaction blocks. NewtonNet: speed_systems.py's default size, float32.
Molecules: ethanol (9 atoms) and aspirin (21 atoms, from SMILES), in vacuum. Velocity-Verlet MD
(0.5 fs, 300 K start) alternates between all calculators ``--rounds`` times; the median steps/s is
reported (of wall time and of the process's CPU time: the machine is shared), with export seconds
and the largest force difference package vs eager on each molecule.

    OMP_NUM_THREADS=1 python benchmarks/speed_export_mace.py --out benchmarks/runs/speed_export_mace.json
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from ase.build import molecule
from speed_md import md_steps_per_second
from speed_systems import model_for_speed

import ffpt
from ffpt.fileio import atomic_write_json
from ffpt.models import build_model
from ffpt.models.calculator import MLIPCalculator
from ffpt.models.export import export_model
from ffpt.sampling import from_smiles

ELEMENTS = [1, 6, 8]
MACE_SIZE = dict(cutoff=5.0, n_features=64, max_L=1, n_layers=2, n_basis=8, max_ell=3, correlation=3,
                 avg_num_neighbors=10.0, radial_mlp=[64, 64, 64], mlp_irreps=16)
GENTLE = 1e-3  # energy scale of the untrained models: keeps the MD gentle, cost unchanged


def molecules() -> dict:
    ethanol = molecule("CH3CH2OH")
    aspirin = from_smiles("CC(=O)Oc1ccccc1C(=O)O", seed=0).atoms
    return {"ethanol (9 atoms)": ethanol, f"aspirin ({len(aspirin)} atoms)": aspirin}


def mace_torch_model_file(path: Path) -> Path:
    """A ``.model`` file as ``mace_run_train --model MACE`` writes it (the whole module, ``torch.save``)."""
    from e3nn import o3
    from mace import modules

    torch.manual_seed(0)
    model = modules.ScaleShiftMACE(
        r_max=MACE_SIZE["cutoff"], num_bessel=MACE_SIZE["n_basis"], num_polynomial_cutoff=5,
        max_ell=MACE_SIZE["max_ell"], interaction_cls=modules.RealAgnosticResidualInteractionBlock,
        interaction_cls_first=modules.RealAgnosticInteractionBlock, num_interactions=MACE_SIZE["n_layers"],
        num_elements=len(ELEMENTS), hidden_irreps=o3.Irreps("64x0e+64x1o"), MLP_irreps=o3.Irreps("16x0e"),
        atomic_energies=np.zeros(len(ELEMENTS)), avg_num_neighbors=MACE_SIZE["avg_num_neighbors"],
        atomic_numbers=ELEMENTS, correlation=MACE_SIZE["correlation"], gate=torch.nn.functional.silu,
        radial_MLP=MACE_SIZE["radial_mlp"], atomic_inter_scale=GENTLE, atomic_inter_shift=0.0,
    )
    torch.save(model, path)
    return path


def max_force_difference(a, b, atoms) -> dict:
    """Largest force difference of calculator b from a (eV/A) and relative to a's largest force."""
    forces = []
    for calc in (a, b):
        frame = atoms.copy()
        frame.calc = calc
        forces.append(frame.get_forces())
    diff = float(np.abs(forces[0] - forces[1]).max())
    return {"eV_per_A": diff, "relative": diff / float(np.abs(forces[0]).max())}


def md_rates(calc, atoms, steps: int, seed: int) -> tuple[float, float]:
    """(steps/s of wall time, steps/s of this process's CPU time): on a shared machine the CPU-time rate is
    what one free core would give (one thread); it counts speed_md's 2 warm-up steps too."""
    cpu = time.process_time()
    wall_rate = md_steps_per_second(calc, atoms, steps, seed=seed)
    return wall_rate, (steps + 2) / (time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed MD steps per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median reported)")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"], choices=["float32", "float64"])
    parser.add_argument("--no-mace-torch", action="store_true", help="leave out mace-torch's MACECalculator")
    parser.add_argument("--out", default="benchmarks/runs/speed_export_mace.json")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)  # e3nn's TorchScript chatter
    warnings.filterwarnings("ignore", category=DeprecationWarning)

    load_before = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp())
    structures = molecules()
    calcs, export_s, force_diff = {}, {}, {}
    arms = [("mace", dtype) for dtype in args.dtypes] + [("newtonnet", "float32")]
    for arch, dtype_name in arms:
        dtype = getattr(torch, dtype_name)
        if arch == "mace":
            torch.manual_seed(0)
            model = build_model("mace", elements=ELEMENTS, **MACE_SIZE)
        else:
            model, _ = model_for_speed("newtonnet", None)
        model.energy_scale.fill_(GENTLE)
        model = model.to(dtype).eval()
        package = workdir / f"{arch}_{dtype_name}.pt2"
        start = time.perf_counter()
        export_model(model, package)  # raises unless the package reproduces eager on the probe frames
        export_s[f"{arch} {dtype_name}"] = round(time.perf_counter() - start, 1)
        print(f"exported {arch} {dtype_name} in {export_s[f'{arch} {dtype_name}']} s", flush=True)
        eager = calcs[f"ffpt {arch} eager {dtype_name}"] = MLIPCalculator(model, dtype=dtype)
        exported = calcs[f"ffpt {arch} exported {dtype_name}"] = ffpt.load_calculator(package)
        for name, atoms in structures.items():
            force_diff[f"{arch} {dtype_name} / {name}"] = max_force_difference(eager, exported, atoms)
    if not args.no_mace_torch:
        from mace.calculators import MACECalculator

        path = mace_torch_model_file(workdir / "mace_run_train_style.model")
        for dtype_name in args.dtypes:
            calcs[f"mace-torch MACECalculator {dtype_name}"] = MACECalculator(
                model_paths=str(path), device="cpu", default_dtype=dtype_name)
        torch.set_default_dtype(torch.float32)  # MACECalculator sets the process default dtype
    print("largest force difference exported vs eager:", force_diff, flush=True)

    for name, atoms in structures.items():  # warm-up (first calls allocate, build neighbour lists)
        for calc in calcs.values():
            md_steps_per_second(calc, atoms, 1, seed=0)
    rates = {name: {label: [] for label in calcs} for name in structures}
    for r in range(args.rounds):
        for name, atoms in structures.items():
            for label, calc in calcs.items():
                rates[name][label].append(md_rates(calc, atoms, args.steps, seed=r))
    results = {}
    for name in structures:
        results[name] = {}
        for clock, index in (("wall", 0), ("cpu", 1)):
            med = {label: statistics.median(v[index] for v in runs) for label, runs in rates[name].items()}
            results[name] |= {f"{label} steps/s ({clock})": round(v, 2) for label, v in med.items()}
            for arch, dtype_name in arms:
                results[name][f"{arch} {dtype_name} exported/eager ({clock})"] = round(
                    med[f"ffpt {arch} exported {dtype_name}"] / med[f"ffpt {arch} eager {dtype_name}"], 2)
        print(name, results[name], flush=True)
    record = {
        "command": "OMP_NUM_THREADS=%s python benchmarks/speed_export_mace.py --steps %d --rounds %d --dtypes %s"
        % (os.environ.get("OMP_NUM_THREADS", ""), args.steps, args.rounds, " ".join(args.dtypes)),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads",
        "mace_size": MACE_SIZE,
        "load_average_before_after": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "export_seconds": export_s,
        "max_force_difference_exported_vs_eager": force_diff,
        "results": results,
    }
    atomic_write_json(args.out, record)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""ffpt's MACE training against ``mace_run_train`` at equal hyper-parameters, epochs and seed (issue 27, item 2).

Ethanol, one split: PBE/def2-SVP labels (``--data``: pool.extxyz 50 training frames, valid.extxyz 10,
test.extxyz 40). Both arms train the same MACE (64x0e + 64x1o, r_max 5 A, 2 interactions, 8 Bessel
functions, correlation 3, max_ell 3, float64) with MACE's recipe: Adam + AMSGrad, lr 0.01,
weight decay 5e-7 on the interaction linears and products, energy/forces weights 1/100, EMA 0.99
with torch_ema's warm-up, ReduceLROnPlateau (factor 0.8, patience 50), gradient-norm clip 10, batch 5,
and from ``--swa-start`` on stage two (energy/forces weights 1000/100, lr 1e-3, best checkpoint chosen
within stage two).

    arm mace_cli: mace_run_train itself (ffpt.training.mace_cli), model served by MACECalculator
    arm ffpt:     ffpt train with model.architecture mace and the training options above

Each arm and seed runs in its own process with one thread and its own folder ``--out/seedN/ARM``, is
skipped when its result exists and resumes from its checkpoints when killed (run the same command again).
The seed sets both trainers' initial weights and batch order (by different generators, so equal seeds
do not give equal runs: compare the spread over seeds). ``--arm report`` evaluates every finished arm
on the test frames and writes ``parity.json`` and ``parity.png`` (validation force MAE per epoch).

    for s in 0 1 2; do OMP_NUM_THREADS=1 nohup python benchmarks/mace_parity.py --arm mace_cli --seed $s & done
    for s in 0 1 2; do OMP_NUM_THREADS=1 nohup python benchmarks/mace_parity.py --arm ffpt --seed $s & done
    python benchmarks/mace_parity.py --arm report
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ffpt.data.io import read_frames
from ffpt.fileio import atomic_write_json
from ffpt.observables.errors import error_table
from ffpt.training.mace_cli import MaceCliRecipe, train_with_mace_cli

HIDDEN = 64


def recipe(args) -> MaceCliRecipe:
    return MaceCliRecipe(hidden_irreps=f"{HIDDEN}x0e + {HIDDEN}x1o", r_max=5.0, num_interactions=2,
                         num_radial_basis=8, correlation=3, max_ell=3, batch_size=5, max_num_epochs=args.epochs,
                         start_swa=args.swa_start, default_dtype="float64")


def ffpt_config(args, out: Path) -> dict:
    r = recipe(args)
    return {
        "data": {"train": str(args.data / "pool.extxyz"), "valid": str(args.data / "valid.extxyz")},
        "model": {"architecture": "mace", "cutoff": r.r_max, "n_features": HIDDEN, "n_layers": r.num_interactions,
                  "n_basis": r.num_radial_basis, "dtype": r.default_dtype,
                  "options": {"max_ell": r.max_ell, "max_L": 1, "correlation": r.correlation,
                              "residual_first": False}},  # mace_run_train --model=MACE: plain first block
        "training": {
            "max_epochs": r.max_num_epochs, "batch_size": r.batch_size, "lr": r.lr, "optimizer": r.optimizer,
            "amsgrad": r.amsgrad, "weight_decay": r.weight_decay, "weight_decay_groups": "mace",
            "energy_weight": r.energy_weight, "forces_weight": r.forces_weight, "ema_decay": r.ema_decay,
            "ema_warmup": True, "grad_clip": r.clip_grad, "lr_factor": r.lr_factor,
            "lr_patience": r.scheduler_patience,
            "early_stopping_patience": r.patience, "swa_start": r.start_swa, "swa_lr": r.swa_lr,
            "swa_energy_weight": r.swa_energy_weight, "swa_forces_weight": r.swa_forces_weight,
            "seed": args.seed, "progress_bar": False,
        },
        "out": str(out),
    }


def run_mace_cli(args) -> dict:
    out = args.out / "mace_cli"
    start = time.time()
    load = os.getloadavg()
    model = train_with_mace_cli(args.data / "pool.extxyz", args.data / "valid.extxyz", out, recipe(args),
                                seed=args.seed, threads=1)
    return {"model": str(model), "wall_seconds": time.time() - start, "loadavg_at_start": load,
            "command": json.loads((out / "command.json").read_text())["shell"]}


def run_ffpt(args) -> dict:
    from ffpt.training import TrainConfig, parse_config, train

    out = args.out / "ffpt"
    config = ffpt_config(args, out)
    start = time.time()
    load = os.getloadavg()
    result = train(parse_config(TrainConfig, config, "mace_parity"))
    return {"model": str(result.model_path), "wall_seconds": time.time() - start, "loadavg_at_start": load,
            "config": config, "metrics": json.loads((out / "metrics.json").read_text())}


def run_arm(args, name: str, fn) -> dict:
    """The arm's record (``ARM.json``), computed once."""
    path = args.out / f"{name}.json"
    if path.exists():
        return json.loads(path.read_text())
    record = {**fn(args), "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    atomic_write_json(path, record)
    return record


def mace_cli_curve(out: Path) -> tuple[list[int], list[float]]:
    """Validation force MAE (meV/A) per epoch from mace_run_train's results file."""
    epochs, mae = [], []
    for path in sorted((out / "results").glob("*_train.txt")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if row.get("mode") == "eval" and row.get("epoch") is not None:
                epochs.append(int(row["epoch"]))
                mae.append(1e3 * float(row["mae_f"]))
    return epochs, mae


def ffpt_curve(out: Path) -> tuple[list[int], list[float]]:
    """Validation force MAE (meV/A) per epoch from ffpt's CSV logs (all versions: resumed runs)."""
    rows = {}
    for path in sorted((out / "logs").glob("version_*/metrics.csv")):
        with open(path) as f:
            for row in csv.DictReader(f):
                if row.get("val_forces_mae_mev_per_a"):
                    rows[int(row["epoch"])] = float(row["val_forces_mae_mev_per_a"])
    return sorted(rows), [rows[e] for e in sorted(rows)]


def test_errors(args, records: dict) -> dict:
    """Test-set errors of the finished arms (ffpt's predictions; MACECalculator for the .model)."""
    from ffpt.models import load_model
    from ffpt.models.inference import predict_frames

    test = read_frames(args.data / "test.extxyz")
    errors = {}
    if "ffpt" in records:
        energies, forces = predict_frames(load_model(records["ffpt"]["model"]), test)
        errors["ffpt"] = error_table(test, energies, forces).as_dict()
    if "mace_cli" in records:
        from mace.calculators import MACECalculator

        calc = MACECalculator(model_paths=records["mace_cli"]["model"], device="cpu", default_dtype="float64")
        energies, forces = [], []
        for atoms in test:
            atoms = atoms.copy()
            atoms.calc = calc
            energies.append(atoms.get_potential_energy())
            forces.append(atoms.get_forces())
        errors["mace_cli"] = error_table(test, np.array(energies), forces).as_dict()
    return errors


def seed_report(args, folder: Path) -> dict:
    """One seed's records, test errors and validation curves (an arm still running: its curve so far)."""
    records = {name: json.loads((folder / f"{name}.json").read_text())
               for name in ("mace_cli", "ffpt") if (folder / f"{name}.json").exists()}
    curves = {"mace_cli": mace_cli_curve(folder / "mace_cli"), "ffpt": ffpt_curve(folder / "ffpt")}
    common = sorted(set(curves["mace_cli"][0]) & set(curves["ffpt"][0]))
    at = {name: dict(zip(*curve)) for name, curve in curves.items()}
    return {
        "finished_arms": sorted(records), "arms": records, "test_errors": test_errors(args, records),
        "val_forces_mae_at_last_common_epoch": {"epoch": common[-1], **{n: at[n][common[-1]] for n in at}}
        if common else None,
        "curves": {k: {"epoch": e, "val_forces_mae_mev_per_a": m} for k, (e, m) in curves.items()},
    }


def report(args) -> None:
    """parity.json and parity.png over the seed folders under ``--out``: per seed and arm the test errors
    and validation curves; the ratio ffpt / mace_cli of the test force MAE per seed where both finished."""
    seeds = {int(f.name[4:]): seed_report(args, f) for f in sorted(args.out.glob("seed*")) if f.is_dir()}
    ratios = {s: r["test_errors"]["ffpt"]["forces_mae_mev_per_a"] / r["test_errors"]["mace_cli"]["forces_mae_mev_per_a"]
              for s, r in seeds.items() if len(r["test_errors"]) == 2}
    result = {"molecule": "ethanol", "data": str(args.data), "epochs": args.epochs, "swa_start": args.swa_start,
              "recipe": recipe(args).model_dump(), "loadavg_at_report": os.getloadavg(), "seeds": seeds,
              "ffpt_over_mace_cli_test_forces_mae": ratios}
    atomic_write_json(args.out / "parity.json", result)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    colours = {"mace_cli": "tab:blue", "ffpt": "tab:orange"}
    for seed, r in seeds.items():
        for name, curve in r["curves"].items():
            errors = r["test_errors"].get(name)
            label = f"{name} seed {seed}" + (f" (test {errors['forces_mae_mev_per_a']:.0f})" if errors else "")
            ax.plot(curve["epoch"], curve["val_forces_mae_mev_per_a"], color=colours[name],
                    ls=["-", "--", ":", "-."][seed % 4], lw=1, label=label)
    ax.axvline(args.swa_start, color="grey", ls=":", lw=1)
    ax.set(xlabel="epoch", ylabel="validation force MAE (meV/A)", yscale="log",
           title="MACE on ethanol, 50 PBE frames: mace_run_train vs ffpt")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(args.out / "parity.png", dpi=150)
    print(json.dumps({"test_errors": {s: r["test_errors"] for s, r in seeds.items()},
                      "val_at_last_common_epoch": {s: r["val_forces_mae_at_last_common_epoch"] for s, r in seeds.items()},
                      "ratios": ratios}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arm", choices=["mace_cli", "ffpt", "report"], required=True)
    parser.add_argument("--data", type=Path, default=Path(__file__).parent / "data" / "ethanol_pbe_def2svp")
    parser.add_argument("--out", type=Path, default=Path("/work/runs/training/parity"))
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--swa-start", type=int, default=75)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.arm == "report":
        report(args)
    else:
        args.out = args.out / f"seed{args.seed}"
        args.out.mkdir(parents=True, exist_ok=True)
        run_arm(args, args.arm, {"mace_cli": run_mace_cli, "ffpt": run_ffpt}[args.arm])


if __name__ == "__main__":
    main()

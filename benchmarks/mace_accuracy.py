"""Accuracy of NewtonNet and MACE, trained from scratch vs FFPT-FT, on one hydrogen-combustion split.

Split (seeded): the AIMD frames of all channels but ``--held-out`` form the training pool; DFT
budgets (nested, e.g. 100 / 300 / 1,000 frames) and 100 validation frames are drawn from it.
Two test sets come from files the models never see: the AIMD/IRC/NM frames of the held-out
channels ("other channels") and the IRC/NM frames of the training channels ("other methods").
FFPT-FT: ``--n-pretrain`` further pool geometries are relabelled with the UFF teacher (per isolated
molecule), each architecture is pre-trained on them once, then fine-tuned on every budget with
refitted per-element references. Every run lives in its own folder and is skipped when its
model file exists, so a killed benchmark resumes where it stopped.

    OMP_NUM_THREADS=1 python benchmarks/mace_accuracy.py --out benchmarks/runs/mace_accuracy
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timezone
from pathlib import Path

from tqdm import tqdm

from ffpt.fileio import atomic_write_json
from ffpt.observables.errors import error_table
from ffpt.data import set_labels
from ffpt.systems.h2combustion import load_h2combustion
from ffpt.data.io import read_frames, write_frames
from ffpt.data.splits import split, subset
from ffpt.models import load_model
from ffpt.models.inference import predict_frames
from ffpt.teachers import LabelFailure, get
from ffpt.training import TrainConfig, parse_config, train

MODELS = {  # small enough to train in minutes on 2 CPU cores
    "newtonnet": {"architecture": "newtonnet", "n_features": 64, "n_layers": 3, "n_basis": 20, "cutoff": 5.0},
    "mace": {"architecture": "mace", "n_features": 32, "n_layers": 2, "n_basis": 8, "cutoff": 5.0,
             "options": {"max_ell": 3, "max_L": 1, "correlation": 3}},
}


def prepare(data: Path, out: Path, args) -> dict[str, Path]:
    """Write the split's extxyz files once (seeded); returns their paths."""
    names = ["valid", "pretrain", "test_other_channels", "test_other_methods"] + [f"dft_{n}" for n in args.budgets]
    paths = {n: out / "data" / f"{n}.extxyz" for n in names}
    if all(p.exists() for p in paths.values()):
        return paths
    held_out = set(args.held_out)
    frames = load_h2combustion(data, methods=("aimd", "irc", "nm"))
    for a in frames:  # MACE has no spin input and refuses frames in a non-default state: compare spin-less
        a.info.pop("spin", None)
    pool = [a for a in frames if a.info["method"] == "aimd" and a.info["channel"] not in held_out]
    other_channels = [a for a in frames if a.info["channel"] in held_out]
    other_methods = [a for a in frames if a.info["method"] != "aimd" and a.info["channel"] not in held_out]
    budget = max(args.budgets)
    dft, valid, pre = split(pool, [budget, 100, args.n_pretrain], seed=args.seed)
    for n in args.budgets:
        write_frames(paths[f"dft_{n}"], subset(dft, n, seed=args.seed))  # nested: 100 in 300 in 1000
    write_frames(paths["valid"], valid)
    write_frames(paths["test_other_channels"], subset(other_channels, min(args.n_test, len(other_channels)), args.seed))
    write_frames(paths["test_other_methods"], subset(other_methods, min(args.n_test, len(other_methods)), args.seed))
    teacher, labelled = get("uff"), []
    for atoms in tqdm(pre, desc="UFF labels"):
        try:
            label = teacher.label(atoms)
        except LabelFailure:
            continue
        atoms = atoms.copy()
        set_labels(atoms, label.energy, label.forces)
        atoms.info["teacher"] = "uff"
        labelled.append(atoms)
    write_frames(paths["pretrain"], labelled)
    return paths


def run_stage(out: Path, arch: str, stage: str, train_path: Path, valid_path: Path, minutes: float, args,
              init: Path | None = None) -> tuple[Path, float]:
    """Train (or reuse) one model; returns its file and the wall time spent training (s, 0 if reused)."""
    model_path = out / "model.pt"
    if model_path.exists():
        return model_path, float(json.loads((out / "timing.json").read_text())["seconds"])
    model = {k: v for k, v in MODELS[arch].items()}
    config = parse_config(TrainConfig, {
        "data": {"train": str(train_path), "valid": str(valid_path)},
        "model": model,
        "training": {"stage": stage, "max_epochs": args.max_epochs, "max_time_minutes": minutes,
                     "batch_size": 16, "lr": 2e-3, "seed": args.seed, "lr_patience": 5,
                     "early_stopping_patience": 20, "progress_bar": False},
        "finetune": {"init": str(init) if init else None, "refit_references": True, "lr": 1e-3},
        "out": str(out),
    }, source=f"{arch}/{stage}")
    start = time.perf_counter()
    train(config)
    seconds = time.perf_counter() - start
    (out / "timing.json").write_text(json.dumps({"seconds": seconds}))
    return model_path, seconds


def evaluate(model_path: Path, tests: dict[str, list]) -> dict:
    model = load_model(model_path)
    out = {}
    for name, frames in tests.items():
        energies, forces = predict_frames(model, frames)
        out[name] = error_table(frames, energies, forces).as_dict()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="../shared/data/h2combustion/npz")
    p.add_argument("--out", default="benchmarks/runs/mace_accuracy")
    p.add_argument("--budgets", type=int, nargs="+", default=[100, 300, 1000])
    p.add_argument("--held-out", nargs="+", default=["15", "17", "19"], help="channels kept for testing")
    p.add_argument("--n-pretrain", type=int, default=3000, help="geometries relabelled with UFF")
    p.add_argument("--n-test", type=int, default=500, help="frames per test set")
    p.add_argument("--minutes", type=float, default=1.0, help="training time per scratch/fine-tune run")
    p.add_argument("--pretrain-minutes", type=float, default=2.0)
    p.add_argument("--max-epochs", type=int, default=200)
    p.add_argument("--architectures", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = prepare(Path(args.data), out, args)
    tests = {k: read_frames(paths[k]) for k in ("test_other_channels", "test_other_methods")}
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    results["meta"] = {"date": datetime.now(timezone.utc).isoformat(timespec="minutes"), "args": vars(args),
                       "models": MODELS, "n_pretrain_labelled": len(read_frames(paths["pretrain"]))}
    for arch in args.architectures:
        pre, pre_s = run_stage(out / arch / "pretrain", arch, "pretrain", paths["pretrain"], paths["valid"],
                               args.pretrain_minutes, args)
        for n in args.budgets:
            for arm, stage, init in (("scratch", "scratch", None), ("ffpt_ft", "finetune", pre)):
                key = f"{arch}/{arm}/{n}"
                if key in results:
                    continue
                model_path, seconds = run_stage(out / arch / f"{arm}_{n}", arch, stage, paths[f"dft_{n}"],
                                                paths["valid"], args.minutes, args, init=init)
                results[key] = {"train_seconds": seconds + (pre_s if arm == "ffpt_ft" else 0.0),
                                **evaluate(model_path, tests)}
                atomic_write_json(results_path, results)
                print(key, json.dumps({k: round(v["forces_mae_mev_per_a"], 1) for k, v in results[key].items()
                                       if isinstance(v, dict)}), flush=True)
    print_table(results, args)


def print_table(results: dict, args) -> None:
    print("| architecture | arm | DFT frames | other channels E (meV/atom) | F (meV/A) "
          "| other methods E (meV/atom) | F (meV/A) | train s |")
    print("|---|---|---|---|---|---|---|---|")
    for arch in args.architectures:
        for arm in ("scratch", "ffpt_ft"):
            for n in args.budgets:
                r = results.get(f"{arch}/{arm}/{n}")
                if r:
                    c, m = r["test_other_channels"], r["test_other_methods"]
                    print(f"| {arch} | {arm} | {n} | {c['energy_mae_mev_per_atom']:.0f} | {c['forces_mae_mev_per_a']:.0f} "
                          f"| {m['energy_mae_mev_per_atom']:.0f} | {m['forces_mae_mev_per_a']:.0f} "
                          f"| {r['train_seconds']:.0f} |")


if __name__ == "__main__":
    main()

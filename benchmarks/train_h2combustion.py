"""Learning on real data: NewtonNet-class model trained from scratch on hydrogen-combustion frames.

Draws (seeded) 1,000 training, 100 validation and 1,000 held-out test frames from the aimd + irc
frames of all channels of ../shared/data/h2combustion, trains with ``ffpt train`` defaults unless
overridden, and reports errors in kcal/mol and kcal/mol/A plus training speed.

    python benchmarks/train_h2combustion.py --data ../shared/data/h2combustion/npz --out runs/bench_h2c
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ffpt.analysis.errors import parity_plot
from ffpt.observables.errors import error_table
from ffpt.systems.h2combustion import load_h2combustion
from ffpt.data.io import write_frames
from ffpt.data.splits import split
from ffpt.models.inference import predict_frames
from ffpt.training import TrainConfig, parse_config, train


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="../shared/data/h2combustion/npz")
    p.add_argument("--out", default="runs/bench_h2c")
    p.add_argument("--n-train", type=int, default=1000)
    p.add_argument("--n-valid", type=int, default=100)
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--features", type=int, default=128)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--cutoff", type=float, default=5.0)
    p.add_argument("--epochs", type=int, default=2000)
    p.add_argument("--minutes", type=float, default=35.0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--forces-weight", type=float, default=10.0)
    p.add_argument("--energy-weight", type=float, default=1.0)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--huber-delta", type=float, default=0.01, help="Huber loss below this error (eV/A); 0: MSE")
    p.add_argument("--n-dev", type=int, default=0,
                   help="also report errors on this many further frames (disjoint from train/valid/test) "
                        "for choosing hyper-parameters without looking at the test set")
    p.add_argument("--patience", type=int, default=200, help="early-stopping patience (epochs)")
    p.add_argument("--spin-states", type=int, default=4,
                   help="spin multiplicity as a model input (0: off); channels come in states up to quartets")
    p.add_argument("--no-zbl", dest="zbl", action="store_false", help="without the ZBL core-repulsion prior")
    p.add_argument("--zbl-radius-scale", type=float, default=0.75,
                   help="ZBL switched off at this fraction of the covalent bond length")
    args = p.parse_args()

    out = Path(args.out)
    frames = load_h2combustion(args.data, methods=("aimd", "irc"))
    if args.spin_states == 0:  # a model without spin input refuses frames in a non-default state
        for a in frames:
            a.info.pop("spin", None)
    train_set, valid_set, test_set, dev_set = split(
        frames, [args.n_train, args.n_valid, args.n_test, args.n_dev], seed=args.seed
    )
    write_frames(out / "train.extxyz", train_set)
    write_frames(out / "valid.extxyz", valid_set)
    write_frames(out / "test.extxyz", test_set)
    config = parse_config(
        TrainConfig,
        {
            "data": {"train": str(out / "train.extxyz"), "valid": str(out / "valid.extxyz")},
            "model": {"n_features": args.features, "n_layers": args.layers, "cutoff": args.cutoff,
                      "options": {"spin_states": args.spin_states, "zbl": args.zbl,
                                  "zbl_radius_scale": args.zbl_radius_scale}},
            "training": {
                "max_epochs": args.epochs, "max_time_minutes": args.minutes, "batch_size": args.batch_size,
                "lr": args.lr, "forces_weight": args.forces_weight, "energy_weight": args.energy_weight,
                "weight_decay": args.weight_decay, "huber_delta": args.huber_delta or None, "seed": args.seed,
                "lr_patience": 15, "early_stopping_patience": args.patience, "progress_bar": False,
            },
            "out": str(out / "model"),
        },
    )
    start = time.perf_counter()
    result = train(config)
    seconds = time.perf_counter() - start
    from ffpt.models.model_file import load_model

    model = load_model(result.model_path)
    dev = None
    if dev_set:
        dev = error_table(dev_set, *predict_frames(model, dev_set)).as_dict()
        print("dev", json.dumps(dev))
    energies, forces = predict_frames(model, test_set)
    table = error_table(test_set, energies, forces)
    parity_plot(test_set, energies, forces, out / "parity_test.png", "h2combustion test (1,000 held-out frames)")
    import csv

    rows = [r for log in sorted((out / "model" / "logs").glob("version_*/metrics.csv")) for r in csv.DictReader(open(log))]
    epochs = max(int(r["epoch"]) for r in rows) + 1
    summary = {
        "test": table.as_dict(),
        "dev": dev,
        "train_seconds": seconds,
        "epochs": epochs,
        "train_frames_per_s": epochs * len(train_set) / seconds,
        "args": vars(args),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

"""MD speed of one NewtonNet model three ways: eager, ``torch.compile`` (``compile=True``, ``ffpt md
--compile``) and the AOTInductor package of ``ffpt export`` (``ffpt md --model MODEL.pt2``).

Systems: ethanol (9 atoms) and the 192-atom periodic water box (64 waters) of speed_systems.py; the
model has ffpt's default speed-benchmark size (64 features, 3 layers, 5 A cutoff), float32, untrained
(cost does not depend on weights). Velocity-Verlet MD (0.5 fs, 300 K start) alternates between the
three calculators ``--rounds`` times; the median steps/s is reported, with the one-off costs (export
seconds, the first compiled steps) alongside.

    OMP_NUM_THREADS=2 python benchmarks/speed_export.py --steps 30 --rounds 3 --out benchmarks/runs/speed_export.json
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from speed_md import md_steps_per_second
from speed_systems import model_for_speed, systems

import ffpt
from ffpt.fileio import atomic_write_json
from ffpt.models.calculator import MLIPCalculator
from ffpt.models.export import export_model

SYSTEMS = ("ethanol (9 atoms)", "water box (192 atoms, periodic)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed MD steps per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median reported)")
    parser.add_argument("--out", default="benchmarks/runs/speed_export.json")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    model, hparams = model_for_speed("newtonnet", None)
    model = model.float().eval()
    start = time.perf_counter()
    package = Path(tempfile.mkdtemp()) / "model.pt2"
    export_model(model, package)
    export_s = time.perf_counter() - start
    calcs = {
        "eager": MLIPCalculator(model, dtype=torch.float32),
        "compile": MLIPCalculator(model_for_speed("newtonnet", None)[0], dtype=torch.float32, compile=True),
        "exported": ffpt.load_calculator(package),
    }
    structures = systems()
    first_steps_s = {}
    for name in SYSTEMS:  # warm up: torch.compile generates code on its first calls (per system kind)
        for label, calc in calcs.items():
            t = time.perf_counter()
            md_steps_per_second(calc, structures[name], 1, seed=0)
            first_steps_s[f"{label} / {name}"] = round(time.perf_counter() - t, 1)
    rates = {name: {label: [] for label in calcs} for name in SYSTEMS}
    for r in range(args.rounds):
        for name in SYSTEMS:
            for label, calc in calcs.items():
                rates[name][label].append(md_steps_per_second(calc, structures[name], args.steps, seed=r))
    results = {}
    for name in SYSTEMS:
        med = {label: statistics.median(v) for label, v in rates[name].items()}
        results[name] = {
            **{f"{label}_steps_per_s": round(v, 2) for label, v in med.items()},
            "compile_vs_eager": round(med["compile"] / med["eager"], 2),
            "exported_vs_eager": round(med["exported"] / med["eager"], 2),
        }
        print(name, results[name], flush=True)
    record = {
        "command": "OMP_NUM_THREADS=%s python benchmarks/speed_export.py --steps %d --rounds %d"
        % (os.environ.get("OMP_NUM_THREADS", ""), args.steps, args.rounds),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads",
        "model": {k: v for k, v in hparams.items() if k != "elements"} | {"dtype": "float32"},
        "load_average_before_after": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "export_seconds": round(export_s, 1),
        "first_step_seconds": first_steps_s,
        "results": results,
    }
    atomic_write_json(args.out, record)
    print(f"export {export_s:.0f} s; first steps {first_steps_s}; wrote {args.out}")


if __name__ == "__main__":
    main()

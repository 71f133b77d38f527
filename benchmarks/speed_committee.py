"""Cost of a committee of K NewtonNet members against one model: stacked in one call, and the old loop.

Force calls through the ASE calculators, as MD makes them (each call on new positions: a small random
displacement, so nothing is cached): one model (``MLIPCalculator``), the committee of K with its
members stacked into one grouped graph (``CommitteeCalculator``, the default) and the same committee
one member at a time (``stack=False``, the loop before stacking). Systems: ethanol (9 atoms) and
aspirin (21 atoms, from SMILES). Models: ffpt's speed-benchmark size (64 features, 3 layers, 20 radial
functions, 5 A cutoff), float32, eager, untrained (cost does not depend on weight values; member k
has seed k). One thread. The three calculators alternate ``--rounds`` times; per round each makes
``--calls`` timed force calls after 3 untimed ones. Reported: median calls/s (wall clock, and per CPU
second of this process, which a loaded machine disturbs less) and the median over rounds of each
committee's cost relative to one model in the same round. Also the bare model calls (graph in,
energies and forces out; no neighbour list or ASE) and the largest force difference stacked vs loop.

    OMP_NUM_THREADS=1 python benchmarks/speed_committee.py --members 4 --calls 200 --rounds 7 \\
        --out /work/runs/committee/speed_committee.json
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from ase.build import molecule
from ase.calculators.calculator import all_changes
from speed_systems import model_for_speed

from ffpt.fileio import atomic_write_json
from ffpt.models.calculator import MLIPCalculator
from ffpt.models.committee import CommitteeCalculator
from ffpt.models.graph import graph_from_atoms
from ffpt.sampling import from_smiles

ARMS = ("one model", "committee stacked", "committee loop")


def test_systems() -> dict:
    ethanol = molecule("CH3CH2OH")
    aspirin = from_smiles("CC(=O)Oc1ccccc1C(=O)O", seed=0).atoms
    return {"ethanol (9 atoms)": ethanol, "aspirin (21 atoms)": aspirin}


def calls_per_second(calc, atoms, calls: int, seed: int) -> tuple[float, float]:
    """(wall, CPU) force calls per second, each call on freshly displaced positions (0.01 A)."""
    atoms = atoms.copy()
    rng = np.random.default_rng(seed)
    steps = [rng.normal(0.0, 0.01, atoms.positions.shape) for _ in range(calls + 3)]
    start = atoms.positions.copy()
    for k, step in enumerate(steps):
        if k == 3:
            wall, cpu = time.perf_counter(), time.process_time()
        atoms.positions = start + step
        calc.calculate(atoms, ["energy", "forces"], all_changes)
    return calls / (time.perf_counter() - wall), calls / (time.process_time() - cpu)


def bare_calls_per_second(call, calls: int) -> tuple[float, float]:
    for _ in range(3):
        call()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        call()
    return calls / (time.perf_counter() - wall), calls / (time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--calls", type=int, default=200, help="timed force calls per calculator and round")
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds (medians reported)")
    parser.add_argument("--out", default="/work/runs/committee/speed_committee.json")
    args = parser.parse_args()
    torch.set_num_threads(1)

    load_before = os.getloadavg()[0]
    models = [model_for_speed("newtonnet", None, seed=k)[0].float().eval() for k in range(args.members)]
    hparams = model_for_speed("newtonnet", None)[1]
    calcs = {"one model": MLIPCalculator(models[0]),
             "committee stacked": CommitteeCalculator([MLIPCalculator(m) for m in models]),
             "committee loop": CommitteeCalculator([MLIPCalculator(m) for m in models], stack=False)}
    assert calcs["committee stacked"].stacked is not None, calcs["committee stacked"].evaluation
    stacked_model = calcs["committee stacked"].stacked
    bare = {"one model": lambda g: models[0](g), "committee stacked": lambda g: stacked_model(g),
            "committee loop": lambda g: [m(g) for m in models]}

    report = {"command": "OMP_NUM_THREADS=1 python benchmarks/speed_committee.py " + " ".join(
                  f"--{k} {v}" for k, v in vars(args).items()),
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "torch": torch.__version__,
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, threads 1", "hparams": hparams,
              "dtype": "float32", "members": args.members, "systems": {}}
    for name, atoms in test_systems().items():
        # stacked and loop agree (float32 rounding)
        for calc in calcs.values():
            calc.calculate(atoms.copy(), ["energy", "forces"], all_changes)
        difference = float(np.abs(calcs["committee stacked"].results["member_forces"]
                                  - calcs["committee loop"].results["member_forces"]).max())
        graph = graph_from_atoms(atoms, models[0].elements, calcs["one model"].neighbors, dtype=torch.float32)
        timings = {kind: {arm: {"wall": [], "cpu": []} for arm in ARMS} for kind in ("calculator", "bare")}
        for r in range(args.rounds):
            for arm in ARMS:
                wall, cpu = calls_per_second(calcs[arm], atoms, args.calls, seed=r)
                timings["calculator"][arm]["wall"].append(wall)
                timings["calculator"][arm]["cpu"].append(cpu)
                wall, cpu = bare_calls_per_second(lambda: bare[arm](graph), args.calls)
                timings["bare"][arm]["wall"].append(wall)
                timings["bare"][arm]["cpu"].append(cpu)
        entry = {"n_atoms": len(atoms), "n_edges": int(graph.edge_index.shape[1]),
                 "max_force_difference_stacked_vs_loop_ev_per_a": difference}
        for kind, table in timings.items():
            one = table["one model"]
            entry[kind] = {arm: {
                "calls_per_s_wall": statistics.median(t["wall"]), "calls_per_s_cpu": statistics.median(t["cpu"]),
                "cost_vs_one_wall": statistics.median(o / c for o, c in zip(one["wall"], t["wall"])),
                "cost_vs_one_cpu": statistics.median(o / c for o, c in zip(one["cpu"], t["cpu"])),
                "rounds_wall": t["wall"], "rounds_cpu": t["cpu"]} for arm, t in table.items()}
        report["systems"][name] = entry
        for kind in timings:
            print(f"{name}, {kind}: " + "; ".join(
                f"{arm} {v['calls_per_s_wall']:.1f}/s wall ({v['cost_vs_one_wall']:.2f}x), "
                f"{v['calls_per_s_cpu']:.1f}/s CPU ({v['cost_vs_one_cpu']:.2f}x)" for arm, v in entry[kind].items()),
                flush=True)
    write_report(report, args.out, load_before)


def write_report(report: dict, out: str, load_before: float) -> None:
    """``report`` with the load average before and after, as JSON to ``out`` (atomically)."""
    report["load_average"] = {"before": load_before, "after": os.getloadavg()[0]}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, report)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

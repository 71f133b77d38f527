"""Cost of an exported committee of K NewtonNet members (one AOTInductor package of the stacked members)
against one exported model, through the ASE calculators and as bare calls; the eager model and the eager
stacked committee alongside for scale.

The models of ``speed_committee.py`` (ffpt's speed-benchmark size, float32, untrained; member k seed k):
member 0 exported alone (``export_model``) and the K members exported as one stacked package
(``export_committee``, what ``ffpt export committee.json`` writes), both into ``--work`` (kept and reused
when there). Arms: the calculators (``ExportedCalculator``, ``ExportedCommittee``; a new neighbour list
and graph per call, positions displaced 0.01 A each call, as in MD) and the bare package calls on one
prepared input; the eager arms as in ``speed_committee.py``
(``MLIPCalculator``, ``CommitteeCalculator`` stacked; bare: the model on one graph). The arms alternate ``--rounds`` times, ``--calls`` timed calls each after 3 untimed ones.
Reported: median calls/s (wall and CPU of this process) and the median over rounds, with its range, of
the cost ratios in ``RATIOS`` (arm / reference in the same round). Systems: ethanol, aspirin.

    OMP_NUM_THREADS=1 python benchmarks/speed_committee_exported.py --members 4 --calls 200 --rounds 5 \\
        --work /work/runs/committee/exported --out /work/runs/committee/speed_committee_exported.json
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from speed_committee import bare_calls_per_second, calls_per_second, test_systems, write_report
from speed_systems import model_for_speed

from ffpt.models.calculator import MLIPCalculator
from ffpt.models.committee import CommitteeCalculator, ExportedCommittee
from ffpt.models.export import export_committee, export_model
from ffpt.models.exported import ExportedCalculator, flat_inputs
from ffpt.models.graph import graph_from_atoms

ARMS = ("one exported", "committee exported", "one eager", "committee eager")
RATIOS = (("committee exported", "one exported"), ("committee eager", "one eager"),
          ("committee exported", "one eager"), ("one exported", "one eager"))


def packages(models: list, work: Path) -> dict[str, Path]:
    """The two packages of ``models`` (exported once; seconds to export printed)."""
    members = len(models)
    paths = {"one exported": work / "one.pt2", "committee exported": work / f"committee{members}.pt2"}
    work.mkdir(parents=True, exist_ok=True)
    for arm, path in paths.items():
        if not path.exists():
            start = time.perf_counter()
            if arm == "one exported":
                export_model(models[0], path)
            else:
                export_committee(models, path)
            print(f"exported {path} in {time.perf_counter() - start:.0f} s", flush=True)
    return paths


def ratio_summary(one: list[float], other: list[float]) -> dict:
    """Cost of ``other`` relative to ``one`` (rates per round): median and range over rounds."""
    ratios = [o / c for o, c in zip(one, other)]
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--calls", type=int, default=200, help="timed calls per arm and round")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (medians reported)")
    parser.add_argument("--work", default="/work/runs/committee/exported", help="folder of the packages")
    parser.add_argument("--out", default="/work/runs/committee/speed_committee_exported.json")
    args = parser.parse_args()
    torch.set_num_threads(1)

    load_before = os.getloadavg()[0]
    models = [model_for_speed("newtonnet", None, seed=k)[0].float().eval() for k in range(args.members)]
    paths = packages(models, Path(args.work))
    calcs = {"one exported": ExportedCalculator(paths["one exported"]),
             "committee exported": ExportedCommittee(paths["committee exported"]),
             "one eager": MLIPCalculator(models[0]),
             "committee eager": CommitteeCalculator([MLIPCalculator(m) for m in models])}
    assert calcs["committee eager"].stacked is not None, calcs["committee eager"].evaluation
    stacked = calcs["committee eager"].stacked
    report = {"command": "OMP_NUM_THREADS=1 python benchmarks/speed_committee_exported.py " + " ".join(
                  f"--{k} {v}" for k, v in vars(args).items()),
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "torch": torch.__version__,
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, threads 1",
              "hparams": model_for_speed("newtonnet", None)[1], "dtype": "float32", "members": args.members,
              "systems": {}}
    for name, atoms in test_systems().items():
        one = calcs["one exported"]
        graph = graph_from_atoms(atoms, one.elements, one.neighbors, dtype=torch.float32)
        inputs = flat_inputs(graph)
        bare = {"one exported": lambda: calcs["one exported"].run_package(*inputs),
                "committee exported": lambda: calcs["committee exported"].run_package(*inputs),
                "one eager": lambda: models[0](graph), "committee eager": lambda: stacked(graph)}
        timings = {kind: {arm: {"wall": [], "cpu": []} for arm in ARMS} for kind in ("calculator", "bare")}
        for r in range(args.rounds):
            for arm in ARMS:
                for kind, rates in (("calculator", calls_per_second(calcs[arm], atoms, args.calls, seed=r)),
                                    ("bare", bare_calls_per_second(bare[arm], args.calls))):
                    timings[kind][arm]["wall"].append(rates[0])
                    timings[kind][arm]["cpu"].append(rates[1])
        entry = {"n_atoms": len(atoms), "n_edges": int(graph.edge_index.shape[1])}
        for kind, table in timings.items():
            entry[kind] = {arm: {"calls_per_s_wall": statistics.median(t["wall"]),
                                 "calls_per_s_cpu": statistics.median(t["cpu"]),
                                 "rounds_wall": t["wall"], "rounds_cpu": t["cpu"]} for arm, t in table.items()}
            entry[kind]["cost"] = {f"{arm} / {ref}": {clock: ratio_summary(table[ref][clock], table[arm][clock])
                                                      for clock in ("wall", "cpu")} for arm, ref in RATIOS}
            rates = ", ".join(f"{arm} {entry[kind][arm]['calls_per_s_cpu']:.0f}" for arm in ARMS)
            costs = "; ".join(f"{pair} {v['cpu']['median']:.2f}x [{v['cpu']['min']:.2f}-{v['cpu']['max']:.2f}] "
                              f"(wall {v['wall']['median']:.2f}x)" for pair, v in entry[kind]["cost"].items())
            print(f"{name}, {kind}: calls per CPU s: {rates}; cost: {costs}", flush=True)
        report["systems"][name] = entry
    write_report(report, args.out, load_before)


if __name__ == "__main__":
    main()

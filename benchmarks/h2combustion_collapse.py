"""Atom collapses and foreign species in combustion MD from the transition states, per variant and arm
(issue 16): reads the per-start stability stages of experiment run folders
(``RUN/stability/{arm}_n{budget}_s{seed}/TS_NN/stage.json``) and counts, over the chosen starts and
arm seeds, the runs,
stable runs (exact 95 % interval), failures by kind (``min_distance`` = atoms collapsed below the
monitor's distance, ``species`` = a foreign species for the patience time), Kaplan-Meier median time to
failure, the log-rank test FFPT-FT vs scratch, and Fisher's exact test on the collapse counts.

    python benchmarks/h2combustion_collapse.py base=runs/nozbl zbl=runs/zbl --budget 100 --seeds 0,1 \
        --starts TS_01,TS_02,TS_03 --out collapse_n100_tune.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scipy.stats import fisher_exact

from ffpt.analysis.survival import format_p
from ffpt.workflows.report import compare_arms

ARMS = ("ffpt-ft", "scratch")


def runs_of(run_dir: Path, arm: str, budget: int, starts: list[str], seeds: list[int]) -> list[dict]:
    """Every MD run of ``arm`` at ``budget`` from ``starts`` with the models of ``seeds`` (a start without
    a finished stage is an error)."""
    runs = []
    for seed in seeds:
        for start in starts:
            stage = run_dir / "stability" / f"{arm}_n{budget}_s{seed}" / start / "stage.json"
            if not stage.exists():
                raise SystemExit(f"{stage}: not finished")
            runs += [{**r, "start": start, "seed": seed} for r in json.loads(stage.read_text())["outputs"]["runs"]]
    return runs


def summary(runs: list[dict], arm: dict) -> dict:
    """The experiment report's summary of one arm (:func:`compare_arms`) as counts of collapses,
    foreign species and other failures, with the starts that collapsed."""
    kinds = arm["failures_by_kind"]
    return {"runs": arm["n_runs"], "stable": arm["n_runs"] - arm["n_failed"], "ci95": arm["stable_fraction_ci95"],
            "collapses": kinds.get("min_distance", 0), "foreign_species": kinds.get("species", 0),
            "other": sum(n for k, n in kinds.items() if k not in ("min_distance", "species")),
            "median_fs": arm["median_time_to_failure_fs"],
            "collapse_starts": sorted({r["start"] for r in runs if r["monitor"] == "min_distance"})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", help="NAME=RUN_DIR")
    parser.add_argument("--budget", type=int, required=True)
    parser.add_argument("--starts", required=True, help="comma-separated start names, e.g. TS_01,TS_12a")
    parser.add_argument("--seeds", default="0", help="comma-separated arm seeds, e.g. 0,1")
    parser.add_argument("--arms", default="ffpt-ft,scratch")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    starts, seeds = args.starts.split(","), [int(s) for s in args.seeds.split(",")]
    report = {}
    print(f"budget {args.budget}, arm seeds {seeds}, {len(starts)} starts: {', '.join(starts)}")
    print("| variant | arm | runs | stable (95 % interval) | collapses | foreign species | other | median TTF (fs) |")
    print("|---|---|---|---|---|---|---|---|")
    for item in args.variants:
        name, folder = item.split("=", 1)
        runs = {arm: runs_of(Path(folder), arm, args.budget, starts, seeds) for arm in args.arms.split(",")}
        compared = compare_arms(runs)
        rows = {arm: summary(runs[arm], compared["arms"][arm]) for arm in runs}
        for arm, s in rows.items():
            lo, hi = s["ci95"]
            print(f"| {name} | {arm} | {s['runs']} | {s['stable']} ({lo:.2f}-{hi:.2f}) | {s['collapses']} "
                  f"{s['collapse_starts'] or ''} | {s['foreign_species']} | {s['other']} | {s['median_fs'] or '-'} |")
        entry = dict(rows)
        if set(ARMS) <= set(rows) and len(rows) == 2:
            pvalue = compared["logrank"]["pvalue"]
            table = [[rows[a]["collapses"], rows[a]["runs"] - rows[a]["collapses"]] for a in ARMS]
            fisher = float(fisher_exact(table).pvalue)
            entry["logrank_p"], entry["collapse_fisher_p"] = pvalue, fisher
            print(f"|   | {name}: log-rank FFPT-FT vs scratch p = {format_p(pvalue)}; "
                  f"collapses, Fisher exact p = {format_p(fisher)} | | | | | | |")
        report[name] = entry
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()

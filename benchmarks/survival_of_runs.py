"""Stable fractions (Clopper-Pearson 95 %), log-rank test and survival figure of two arms' MD run folders.

    python benchmarks/survival_of_runs.py --arm mace-ffpt-ft 'hot/mace-ffpt-ft_s*/seed_*' \\
        --arm mace-scratch 'hot/mace-scratch_s*/seed_*' --title "..." --figure survival.png

Each glob names run folders holding ``stability.json`` (``ffpt md --seeds`` writes one per seed).
"""

from __future__ import annotations

import argparse
import glob
import json
from pathlib import Path

from ffpt.analysis.survival import logrank, plot_survival, survival_curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arm", nargs=2, action="append", metavar=("NAME", "GLOB"), required=True)
    parser.add_argument("--title", default=None)
    parser.add_argument("--figure", required=True)
    args = parser.parse_args()
    curves = {}
    for name, pattern in args.arm:
        runs = [json.loads((Path(p) / "stability.json").read_text()) for p in sorted(glob.glob(pattern))]
        curves[name] = survival_curve([r["simulated_fs"] for r in runs], [not r["stable"] for r in runs])
        failures = [f"{r['failed_at_fs'] / 1000:.2f} ps ({r['monitor']})" for r in runs if not r["stable"]]
        lo, hi = curves[name].stable_fraction_ci95
        print(f"{name}: {sum(r['stable'] for r in runs)}/{len(runs)} stable (95 % CI {lo:.2f}-{hi:.2f}); "
              f"failures: {', '.join(failures) or 'none'}")
    if len(curves) == 2:
        print("log-rank:", logrank(*curves.values()).as_dict())
    plot_survival(curves, args.figure, args.title)


if __name__ == "__main__":
    main()

"""Markdown table of pair scans (issue 16): per pair and calculator, the energy at 0.2, 0.3 and 0.5 A
above the curve's well (its minimum between 0.5 and 2 A; kcal/mol, < 0 is a hole below the well) and
the radial force at 0.3 A (kcal/mol/A, > 0 repels), from the JSON files
``benchmarks/pair_scan_h2combustion.py`` writes.

    python benchmarks/pair_scan_table.py scans/HH.json scans/HH_pyscf.json scans/OH.json ... \
        --label zbl/finetune=FT+ZBL --label nozbl/scratch=scratch
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ffpt.observables.pair_scan import PairScan
from ffpt.units import KCAL_PER_MOL


def row(scan: PairScan) -> tuple[float, float, float, float]:
    """E(0.2), E(0.3), E(0.5) above the well (kcal/mol) and the radial force at 0.3 A (kcal/mol/A)."""
    return (*(scan.above_well(r) / KCAL_PER_MOL for r in (0.2, 0.3, 0.5)),
            scan.radial_forces[scan.nearest(0.3)] / KCAL_PER_MOL)


def label_of(name: str, labels: list[tuple[str, str]]) -> str:
    """The first label whose key occurs in the calculator's name, else the name."""
    return next((label for key, label in labels if key in name), name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scans", nargs="+", type=Path, help="pair-scan JSON files")
    parser.add_argument("--label", action="append", default=[], metavar="KEY=LABEL",
                        help="name calculators whose name contains KEY (first match wins)")
    args = parser.parse_args()
    labels = [tuple(item.split("=", 1)) for item in args.label]
    print("| pair | calculator | E(0.2 Å) | E(0.3 Å) | E(0.5 Å) | F(0.3 Å) |")
    print("|---|---|---:|---:|---:|---:|")
    for path in args.scans:
        data = json.loads(path.read_text())
        pair = data["config"]["pair"] or path.stem
        for name, scan in data["scans"].items():
            values = row(PairScan.from_dict(name, scan))
            print(f"| {pair} | {label_of(name, labels)} | " + " | ".join(f"{v:,.0f}" for v in values) + " |")


if __name__ == "__main__":
    main()

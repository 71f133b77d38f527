"""Diagnosis of atom collapse in hydrogen-combustion MD (issue 16): pair-energy scans of models against UFF.

For each isolated pair H-H, O-H, O-O (0.2-2.0 A, in its ground state's spin multiplicity: H2 1,
OH 2, O2 3, as the data set's frames carry it; ``--spin PAIR=M`` changes it) and, with ``--ts DIR``, inside every transition state TS_NN.xyz (each pair of
atoms of the listed kinds, pulled along their axis), runs :func:`ffpt.jobs.scan.run_scan` with UFF
and the given model files. Writes one JSON + PNG per scan and prints, per calculator, the energy
at 0.3/0.5 A above the curve's well (its minimum over 0.5-2 A) and the radial force at 0.3 A
(kcal/mol, kcal/mol/A; > 0 repels).
With ``--pyscf`` the isolated pairs are also scanned with PySCF at the data set's level
(wB97X-V/cc-pVTZ, the teacher's defaults), one JSON per pair (``PAIR_pyscf.json``).

    python benchmarks/pair_scan_h2combustion.py runs/h2combustion/pretrain/model.pt \
        runs/h2combustion/finetune_100/model.pt runs/h2combustion/scratch_100/model.pt --out runs/pair_scans
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ffpt.jobs.scan import run_scan
from ffpt.observables.pair_scan import PairScanConfig
from ffpt.units import KCAL_PER_MOL

PAIRS = {"H-H": 1, "O-H": 2, "O-O": 3}  # ground-state multiplicities


def summary(scans) -> dict:
    """Per calculator: E(0.3), E(0.5) above the curve's well (its minimum over 0.5-2 A; kcal/mol,
    < 0 is a hole) and f(0.3) (kcal/mol/A), as ``pair_scan_table.py`` tabulates them."""
    return {scan.name: {"dE_0.3": scan.above_well(0.3) / KCAL_PER_MOL, "dE_0.5": scan.above_well(0.5) / KCAL_PER_MOL,
                        "f_0.3": scan.radial_forces[scan.nearest(0.3)] / KCAL_PER_MOL} for scan in scans}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="ffpt model files")
    parser.add_argument("--out", type=Path, default=Path("pair_scans"))
    parser.add_argument("--points", type=int, default=37, help="distances from 0.2 to 2.0 A")
    parser.add_argument("--spin", action="append", default=[], metavar="PAIR=M", help="e.g. O-O=3")
    parser.add_argument("--ts", type=Path, help="folder of TS_NN.xyz: also scan pairs inside each TS")
    parser.add_argument("--reactions", type=Path,
                        help="the data set's reactions.json: each TS scanned in its channel's multiplicity")
    parser.add_argument("--ts-pairs", default="", metavar="TS_NN:I-J,...",
                        help="scan only these atom pairs of these TS (default: every pair of every TS)")
    parser.add_argument("--pyscf", action="store_true", help="isolated pairs also with PySCF wB97X-V/cc-pVTZ")
    args = parser.parse_args()
    spins = {**PAIRS, **{pair: int(m) for pair, m in (item.split("=") for item in args.spin)}}
    calculators = ["uff", *args.models]
    report = {}
    jobs = [(pair, {"pair": pair, "spin": spins[pair]}) for pair in PAIRS]
    if args.ts is not None:
        import ase.io

        from ffpt.systems.h2combustion import load_channels

        channels = load_channels(args.reactions) if args.reactions is not None else {}
        wanted = [(ts, tuple(int(k) for k in pair.split("-")))
                  for ts, pair in (item.split(":") for item in args.ts_pairs.split(",") if item)]
        for path in sorted(args.ts.glob("TS_*.xyz")):
            symbols = ase.io.read(path).get_chemical_symbols()
            channel = channels.get(path.stem.split("_", 1)[1])
            spin = {"spin": channel.multiplicity} if channel is not None else {}
            for i in range(len(symbols)):
                for j in range(i + 1, len(symbols)):
                    if wanted and (path.stem, (i, j)) not in wanted:
                        continue
                    jobs.append((f"{path.stem}_{symbols[i]}{i}-{symbols[j]}{j}",
                                 {"structure": str(path), "atoms": (i, j), **spin}))
    for name, system in jobs:
        config = PairScanConfig(calculators=calculators, points=args.points, units="kcal/mol",
                                out=args.out / f"{name.replace('-', '')}.json", **system)
        report[name] = summary(run_scan(config))
        for calc, row in report[name].items():
            print(f"{name:<22} {calc[-40:]:<40} " + " ".join(f"{k} {v:9.1f}" for k, v in row.items()))
    if args.pyscf:
        for pair in PAIRS:
            config = PairScanConfig(calculators=["pyscf"], pair=pair, spin=spins[pair], points=args.points,
                                    units="kcal/mol", out=args.out / f"{pair.replace('-', '')}_pyscf.json")
            report[pair].update(summary(run_scan(config)))
            row = report[pair]["pyscf"]
            print(f"{pair:<22} {'pyscf':<40} " + " ".join(f"{k} {v:9.1f}" for k, v in row.items()))
    (args.out / "summary.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

"""``ffpt scan``: energy and radial force of a pair of atoms along their distance, several calculators.

``ffpt scan [CONFIG.yaml] [dotted.key=value ...] --calculator A --calculator B (--pair H-H | --structure
FILE --atoms I J) [--r-min 0.2 --r-max 2.0 --points 37] [--spin 1] [--units kcal/mol] --out scan.json``
writes the scans (eV, A) as JSON and a plot beside it (same stem, .png). Config keys: PairScanConfig.
"""

from __future__ import annotations

import argparse

from ffpt.cli._config import add_config_arguments, add_teacher_option_argument, resolve_config, teacher_option_flags

HELP = "pair-energy scan: energy and force of two atoms from r_min to r_max, several calculators; JSON + PNG"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, "PairScanConfig keys: calculators, pair, structure, atoms, r_min, r_max, ...")
    parser.add_argument("--calculator", "--model", dest="calculators", action="append",
                        help="model file or teacher name, repeatable (config key calculators)")
    add_teacher_option_argument(parser)
    parser.add_argument("--pair", help="isolated pair of elements, e.g. H-H, O-H, O-O")
    parser.add_argument("--spin", type=int, help="isolated pair: spin multiplicity 2S+1 (default 1 or 2 by electrons)")
    parser.add_argument("--charge", type=int, help="isolated pair: total charge (default 0)")
    parser.add_argument("--structure", help="or a geometry (any ASE-readable file) in which two atoms are scanned")
    parser.add_argument("--structure-index", type=int, help="frame of --structure (default 0)")
    parser.add_argument("--atoms", type=int, nargs=2, metavar=("I", "J"), help="the two atoms of --structure, 0-based")
    parser.add_argument("--r-min", type=float, help="shortest distance, A (default 0.2)")
    parser.add_argument("--r-max", type=float, help="longest distance, A (default 2.0)")
    parser.add_argument("--points", type=int, help="distances scanned (default 37)")
    parser.add_argument("--units", choices=["eV", "kcal/mol"], help="energy unit of the plot (JSON: eV)")
    parser.add_argument("--out", help="output JSON (PNG beside it); default pair_scan.json")
    parser.add_argument("--device", default="cpu", help="device for model files (default cpu)")


def run(args: argparse.Namespace) -> int:
    import json

    from ffpt.cli._structures import absolute_calculator
    from ffpt.fileio import output_lock
    from ffpt.jobs.scan import plot_path, run_scan
    from ffpt.observables.pair_scan import PairScanConfig

    flags = {
        "calculators": args.calculators, **teacher_option_flags(args.teacher_option), "pair": args.pair,
        "spin": args.spin, "charge": args.charge, "structure": args.structure,
        "structure_index": args.structure_index, "atoms": args.atoms, "r_min": args.r_min, "r_max": args.r_max,
        "points": args.points, "units": args.units, "out": args.out,
    }
    config = resolve_config(PairScanConfig, args, flags)
    config = config.model_copy(update={"calculators": [absolute_calculator(c) for c in config.calculators]})
    with output_lock(config.out, "ffpt scan"):
        scans = run_scan(config, args.device)
    summary = {scan.name: {"min_energy_at_A": float(scan.distances[scan.energies.argmin()]),
                           "radial_force_at_r_min_eV_per_A": float(scan.radial_forces[0])} for scan in scans}
    print(json.dumps({"json": str(config.out), "plot": str(plot_path(config)), "scans": summary}))
    return 0

"""``ffpt md``: molecular dynamics with stability monitors (one seed, or a batch of seeds)."""

from __future__ import annotations

import argparse

from ffpt.cli._config import resolve_config
from ffpt.cli._structures import add_run_arguments, checked_calculator, normalise_calculator, run_flags
from ffpt.cli._config import add_execution_arguments
from ffpt.data.io import read_structure
from ffpt.fileio import absolute

HELP = "run MD (NVE/Langevin/Bussi/NPT) with stability monitors; writes trajectory and stability.json"


def _species(text: str) -> list[str]:
    return [s for s in (part.strip() for part in text.replace(" ", ",").split(",")) if s]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser, "MDConfig keys")
    parser.add_argument("--ensemble", choices=["nve", "langevin", "bussi", "npt"])
    parser.add_argument("--taut", type=float, help="Bussi or NPT thermostat coupling time, fs")
    parser.add_argument("--pressure", type=float, help="NPT target pressure, bar")
    parser.add_argument("--taup", type=float, help="NPT barostat coupling time, fs")
    parser.add_argument("--seeds", nargs="+", metavar="SEED",
                        help="batch mode: one run per seed, survival statistics; integers or inclusive ranges (0..63)")
    parser.add_argument("--batch", type=int,
                        help="with --seeds: run this many replicas together, one model call per step (config md.batch)")
    add_execution_arguments(parser)
    parser.add_argument("--save-every", type=int, help="steps between saved frames")
    parser.add_argument("--check-every", type=int, help="steps between stability checks")
    parser.add_argument("--format", choices=["extxyz", "traj"], help="trajectory file format")
    parser.add_argument("--min-distance", type=float, help="fail when atoms come closer (A)")
    parser.add_argument("--max-bond-deviation", type=float, help="fail when a bond deviates more (A), e.g. 0.5")
    parser.add_argument("--allowed-species", type=_species, help="comma-separated Hill formulas, e.g. H2,O2,HO,H2O")
    parser.add_argument("--species-patience", type=float, help="fs a foreign species may persist (default 0)")
    parser.add_argument("--reference-rdf", help="RDF json or reference trajectory for the RDF monitor")
    parser.add_argument("--rdf-threshold", type=float, help="RDF error threshold (A)")


def parse_seeds(items: list[str]) -> list[int]:
    """``--seeds`` values: integers and inclusive ranges ``a..b``, e.g. ``0..63`` or ``0 5 10..12``."""
    from ffpt.config import ConfigError

    seeds: list[int] = []
    for item in items:
        first, sep, last = item.partition("..")
        try:
            values = range(int(first), int(last) + 1) if sep else [int(item)]
        except ValueError:
            raise ConfigError(f"--seeds: '{item}' is neither an integer nor a range like 0..63") from None
        if sep and not values:
            raise ConfigError(f"--seeds: range '{item}' is empty (write the smaller seed first)")
        seeds.extend(values)
    if min(seeds) < 0:
        raise ConfigError(f"--seeds: seed {min(seeds)} is negative (seeds are integers >= 0)")
    if len(set(seeds)) != len(seeds):
        repeated = next(s for k, s in enumerate(seeds) if s in seeds[:k])
        raise ConfigError(f"--seeds: seed {repeated} is given twice")
    return seeds


def _overrides(args: argparse.Namespace) -> dict:
    return {
        **run_flags(args),
        "batch": args.batch,
        "ensemble": args.ensemble,
        "taut_fs": args.taut,
        "pressure_bar": args.pressure,
        "taup_fs": args.taup,
        "save_every": args.save_every,
        "check_every": args.check_every,
        "trajectory_format": args.format,
        "monitors.min_distance": args.min_distance,
        "monitors.max_bond_deviation": args.max_bond_deviation,
        "monitors.allowed_species": args.allowed_species,
        "monitors.species_patience_fs": args.species_patience,
        "monitors.reference_rdf": args.reference_rdf,
        "monitors.rdf_threshold": args.rdf_threshold,
    }


def run(args: argparse.Namespace) -> int:
    import json

    from ffpt.config import ConfigError
    from ffpt.fileio import output_lock
    from ffpt.simulate.config import MDConfig
    from ffpt.simulate.md import run_md

    config = normalise_calculator(args, resolve_config(MDConfig, args, _overrides(args)))
    missing = [k for k in ("calculator", "structure") if getattr(config, k) is None]
    if missing:
        raise ConfigError(f"missing {' and '.join('--' + k for k in missing)} (flag or config key)")
    atoms = read_structure(config.structure, config.structure_index)
    calculator = checked_calculator(config, atoms, args.device, args.compile)  # input errors end here, before any step
    seeds = parse_seeds(args.seeds) if args.seeds else None
    if config.batch is not None and not seeds:
        raise ConfigError("--batch (md.batch) runs several seeds together: give --seeds, e.g. --seeds 0..63")
    out = absolute(args.out)
    with output_lock(out, "ffpt md"):  # a second run into the folder would interleave its frames
        if seeds:
            from ffpt.execution import executor
            from ffpt.jobs.md import CalculatorSpec, run_batch

            factory = CalculatorSpec(config.calculator, args.device, dict(config.teacher_options), args.compile)
            with executor(args.workers, args.scheduler) as pool:
                batch = run_batch(atoms, factory, seeds, config, out, progress=not args.no_progress,
                                  executor=pool)
            summary = {k: v for k, v in batch.as_dict().items() if k not in ("runs", "survival")}
        else:
            result = run_md(atoms, calculator, config, out, progress=not args.no_progress)
            summary = {k: getattr(result, k) for k in ("stable", "simulated_fs", "failed_at_fs", "reason")}
    print(json.dumps(summary))
    return 0

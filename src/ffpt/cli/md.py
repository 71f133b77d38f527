"""``ffpt md``: molecular dynamics with stability monitors (one seed, or a batch of seeds)."""

from __future__ import annotations

import argparse

from ffpt.cli._config import add_config_arguments, add_teacher_option_argument, resolve_config
from ffpt.cli._structures import calculator_flags, checked_calculator, normalise_calculator, read_structure

HELP = "run MD (NVE/Langevin/Bussi) with stability monitors; writes trajectory and stability.json"


def _species(text: str) -> list[str]:
    return [s for s in (part.strip() for part in text.replace(" ", ",").split(",")) if s]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, "MDConfig keys")
    parser.add_argument("--calculator", help="model file or teacher name (options: --teacher-option)")
    add_teacher_option_argument(parser)
    parser.add_argument("--structure", help="starting structure (any ASE-readable file)")
    parser.add_argument("--structure-index", type=int, help="frame of --structure to start from (default 0)")
    parser.add_argument("--out", required=True, help="output directory (resumes if it holds a checkpoint)")
    parser.add_argument("--steps", type=int, help="number of MD steps")
    parser.add_argument("--timestep", type=float, help="time step, fs")
    parser.add_argument("--temperature", type=float, help="initial/target temperature, K")
    parser.add_argument("--ensemble", choices=["nve", "langevin", "bussi"])
    parser.add_argument("--friction", type=float, help="Langevin friction, 1/fs")
    parser.add_argument("--taut", type=float, help="Bussi coupling time, fs")
    parser.add_argument("--seed", type=int, help="random seed (velocities, thermostat)")
    parser.add_argument("--seeds", type=int, nargs="+", help="batch mode: one run per seed, survival statistics")
    parser.add_argument("--save-every", type=int, help="steps between saved frames")
    parser.add_argument("--check-every", type=int, help="steps between stability checks")
    parser.add_argument("--format", choices=["extxyz", "traj"], help="trajectory file format")
    parser.add_argument("--min-distance", type=float, help="fail when atoms come closer (A)")
    parser.add_argument("--max-bond-deviation", type=float, help="fail when a bond deviates more (A), e.g. 0.5")
    parser.add_argument("--allowed-species", type=_species, help="comma-separated Hill formulas, e.g. H2,O2,HO,H2O")
    parser.add_argument("--species-patience", type=float, help="fs a foreign species may persist (default 0)")
    parser.add_argument("--reference-rdf", help="RDF json or reference trajectory for the RDF monitor")
    parser.add_argument("--rdf-threshold", type=float, help="RDF error threshold (A)")
    parser.add_argument("--device", default="cpu", help="device for model files (default cpu)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _overrides(args: argparse.Namespace) -> dict:
    return {
        **calculator_flags(args),
        "structure": args.structure,
        "structure_index": args.structure_index,
        "steps": args.steps,
        "timestep_fs": args.timestep,
        "temperature_K": args.temperature,
        "ensemble": args.ensemble,
        "friction_per_fs": args.friction,
        "taut_fs": args.taut,
        "seed": args.seed,
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
    from ffpt.simulate.calculators import resolve
    from ffpt.simulate.config import MDConfig
    from ffpt.simulate.md import run_md

    config = normalise_calculator(args, resolve_config(MDConfig, args, _overrides(args)))
    missing = [k for k in ("calculator", "structure") if getattr(config, k) is None]
    if missing:
        raise ConfigError(f"missing {' and '.join('--' + k for k in missing)} (flag or config key)")
    atoms = read_structure(config.structure, config.structure_index)
    calculator = checked_calculator(config, atoms, args.device)  # input errors end here, before any step
    if args.seeds:
        from ffpt.jobs.md import run_batch

        batch = run_batch(atoms, lambda: resolve(config.calculator, args.device, config.teacher_options),
                          args.seeds, config, args.out, progress=not args.no_progress)
        summary = {k: v for k, v in batch.as_dict().items() if k not in ("runs", "survival")}
    else:
        result = run_md(atoms, calculator, config, args.out, progress=not args.no_progress)
        summary = {k: getattr(result, k) for k in ("stable", "simulated_fs", "failed_at_fs", "reason")}
    print(json.dumps(summary))
    return 0

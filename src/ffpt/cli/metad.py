"""``ffpt metad``: well-tempered metadynamics with coordination-number CVs, FES and species analysis."""

from __future__ import annotations

import argparse

from ffpt.cli._config import resolve_config
from ffpt.cli._structures import add_run_arguments, run_flags, checked_calculator, normalise_calculator
from ffpt.data.io import read_structure

HELP = "well-tempered metadynamics (PLUMED-style CVs and HILLS); writes HILLS, COLVAR, fes.dat, fes.png, species.png"


def _wall(text: str) -> dict:
    pair, sep, at = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"'{text}': expected PAIR=AT, e.g. O1_H1=3.0")
    return {"pair": pair.strip(), "at": float(at)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser, "MetadConfig keys")
    parser.add_argument("--channel", help="reaction channel, e.g. 09 (CVs and multiplicity from --reactions)")
    parser.add_argument("--reactions", help="reactions.json of the hydrogen-combustion data")
    parser.add_argument("--cv", action="append", help="coordination CV: pair labels summed, e.g. O1_H2,O1_H1 (repeat)")
    parser.add_argument("--r0", action="append", type=float, help="r0 (A) of each --cv (repeat)")
    parser.add_argument("--sigma", action="append", type=float, help="hill width per CV (repeat) or one for all")
    parser.add_argument("--height", type=float, help="initial hill height, kJ/mol")
    parser.add_argument("--pace", type=int, help="MD steps between hills")
    parser.add_argument("--biasfactor", type=float, help="well-tempered bias factor gamma > 1")
    parser.add_argument("--multiplicity", type=int, help="spin multiplicity (default: the channel's)")
    parser.add_argument("--upper-wall", action="append", type=_wall, help="upper distance wall PAIR=AT (A), repeat")


def _overrides(args: argparse.Namespace) -> dict:
    return {
        **run_flags(args), "channel": args.channel, "reactions": args.reactions, "cv": args.cv, "r0": args.r0,
        "sigma": args.sigma, "height": args.height, "pace": args.pace, "biasfactor": args.biasfactor,
        "multiplicity": args.multiplicity, "upper_walls": args.upper_wall,
    }


def run(args: argparse.Namespace) -> int:
    import json

    from ffpt.config import ConfigError
    from ffpt.fileio import absolute, output_lock
    from ffpt.jobs.metad import MetadConfig, run_metad_job

    config = normalise_calculator(args, resolve_config(MetadConfig, args, _overrides(args)))
    if not config.cv and config.channel is None:
        raise ConfigError("metad needs collective variables: --cv PAIRS (config key cv), or --channel ID "
                          "with --reactions FILE (keys channel, reactions)")
    if config.calculator is not None and config.structure is not None:  # input errors end here, before any step
        checked_calculator(config, read_structure(config.structure, config.structure_index), args.device,
                           args.compile)
    out = absolute(args.out)
    with output_lock(out, "ffpt metad"):
        summary = run_metad_job(config, out, args.device, progress=not args.no_progress, compile=args.compile)
    print(json.dumps(summary))
    return 0

"""What ``ffpt md`` and ``ffpt metad`` share: the starting structure and the calculator, both
checked before the first MD step so that an input error exits 2 instead of becoming "unstable"."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ffpt.cli._config import teacher_option_flags, warn_deprecated
from ffpt.fileio import absolute


def add_run_arguments(parser: argparse.ArgumentParser, config_keys: str) -> None:
    """The arguments ``ffpt md`` and ``ffpt metad`` share: config, calculator, start, output, device."""
    from ffpt.cli._config import add_config_arguments, add_teacher_option_argument

    add_config_arguments(parser, config_keys)
    parser.add_argument("--calculator", "--model", dest="calculator", nargs="+",
                        help="model file (.pt, or .pt2 from ffpt export) or teacher name (options: --teacher-option);"
                             " several model files (or a committee.json) run as a committee: mean forces, and"
                             " their disagreement recorded along the run")
    parser.add_argument("--compile", action="store_true",
                        help="run a .pt model through torch.compile (first steps take minutes, then ~2-3x faster)")
    add_teacher_option_argument(parser)
    parser.add_argument("--structure", help="starting structure (any ASE-readable file)")
    parser.add_argument("--structure-index", type=int, help="frame of --structure to start from (default 0)")
    parser.add_argument("--out", required=True, help="output directory (resumes if it holds a checkpoint)")
    parser.add_argument("--steps", type=int, help="number of MD steps")
    parser.add_argument("--timestep", type=float, help="time step, fs")
    parser.add_argument("--temperature", type=float, help="temperature (initial and thermostat), K")
    parser.add_argument("--friction", type=float, help="Langevin friction, 1/fs")
    parser.add_argument("--seed", type=int, help="random seed (velocities, thermostat)")
    parser.add_argument("--device", default="cpu", help="device for model files (default cpu)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The flags of :func:`add_run_arguments` as config keys (MDConfig and MetadConfig share them)."""
    return {
        "calculator": one_or_committee(args.calculator), **teacher_option_flags(args.teacher_option),
        "structure": args.structure, "structure_index": args.structure_index, "steps": args.steps,
        "timestep_fs": args.timestep, "temperature_K": args.temperature, "friction_per_fs": args.friction,
        "seed": args.seed,
    }


def one_or_committee(specs: list[str] | None) -> str | list[str] | None:
    """A ``--calculator`` flag's value: one spec, or the list of a committee's member files."""
    if specs is None:
        return None
    return specs[0] if len(specs) == 1 else list(specs)


def absolute_calculator(spec: str) -> str:
    """A calculator spec with a model file's path made absolute (a teacher name stays as it is), so
    that a task on another worker, in another working directory, finds the file."""
    from ffpt import teachers

    if spec.lower() in teachers.REGISTRY or ":" in spec and spec.split(":", 1)[0].lower() in teachers.REGISTRY:
        return spec
    try:
        return str(absolute(spec)) if Path(spec).exists() else spec
    except (OSError, ValueError):  # not a usable path: resolve() names it
        return spec


def normalise_calculator(args: argparse.Namespace, config):
    """``config`` with its model files' paths absolute and a deprecated ``calculator: name:key=value,...``
    split into ``calculator`` and ``teacher_options`` (a warning on stderr says so)."""
    from ffpt.simulate.calculators import split_legacy_spec

    if isinstance(config.calculator, str):
        config = config.model_copy(update={"calculator": absolute_calculator(config.calculator)})
    elif config.calculator is not None:
        config = config.model_copy(update={"calculator": [absolute_calculator(c) for c in config.calculator]})
    legacy = split_legacy_spec(config.calculator) if isinstance(config.calculator, str) else None
    if legacy is None:
        return config
    name, options = legacy
    warn_deprecated(args, f"calculator '{config.calculator}'",
                    f"--calculator {name} " + " ".join(f"--teacher-option {k}={v}" for k, v in options.items()))
    return config.model_copy(update={"calculator": name, "teacher_options": {**options, **config.teacher_options}})


def checked_calculator(config, atoms, device: str, compile: bool = False):
    """The config's calculator, after checking it can evaluate ``atoms``: a model's elements, or a
    teacher's first label (a molecule a force field cannot type, a periodic frame a per-molecule
    teacher refuses) -- a :class:`~ffpt.data.frames.DataError` naming the structure, molecule and atoms."""
    from ffpt.data.frames import DataError
    from ffpt.simulate.calculators import resolve
    from ffpt.teachers import LabelFailure, Teacher

    where = f"{config.structure} frame {config.structure_index or 0}"
    calculator = resolve(config.calculator, device, config.teacher_options, compile=compile)
    check = getattr(calculator, "check_atoms", None)
    if check is not None:
        check(atoms, where=where)
    if isinstance(calculator, Teacher):
        try:
            calculator.get_potential_energy(atoms.copy())  # cached: the first MD step reuses it
        except LabelFailure as exc:  # the user's structure, not a bug: exit 2 before any step
            raise DataError(f"{where}: {exc}") from None
    return calculator

"""What ``ffpt md`` and ``ffpt metad`` share: the starting structure and the calculator, both
checked before the first MD step so that an input error exits 2 instead of becoming "unstable"."""

from __future__ import annotations

import argparse
from typing import Any

from ffpt.cli._config import teacher_option_flags, warn_deprecated


def calculator_flags(args: argparse.Namespace) -> dict[str, Any]:
    """``--calculator`` and ``--teacher-option`` as dotted config keys."""
    return {"calculator": args.calculator, **teacher_option_flags(args.teacher_option)}


def normalise_calculator(args: argparse.Namespace, config):
    """``config`` with a deprecated ``calculator: name:key=value,...`` split into ``calculator`` and
    ``teacher_options`` (a warning on stderr says so)."""
    from ffpt.simulate.calculators import split_legacy_spec

    legacy = split_legacy_spec(config.calculator) if config.calculator else None
    if legacy is None:
        return config
    name, options = legacy
    warn_deprecated(args, f"calculator '{config.calculator}'",
                    f"--calculator {name} " + " ".join(f"--teacher-option {k}={v}" for k, v in options.items()))
    return config.model_copy(update={"calculator": name, "teacher_options": {**options, **config.teacher_options}})


def read_structure(path, index: int):
    """Frame ``index`` of an ASE-readable file, validated (elements, positions, overlaps, cell)."""
    import ase.io

    from ffpt.data import DataError, validate_frame

    try:
        atoms = ase.io.read(path, index=index)
    except FileNotFoundError:
        raise DataError(f"{path}: no such structure file") from None
    except Exception as exc:  # ase raises many types for malformed files
        raise DataError(f"{path}: cannot read frame {index} ({' '.join(str(exc).split())})") from None
    atoms.calc = None
    validate_frame(atoms, source=str(path), index=index, require_labels=False)
    return atoms


def checked_calculator(config, atoms, device: str):
    """The config's calculator, after checking it can evaluate ``atoms`` (a model's elements)."""
    from ffpt.simulate.calculators import resolve

    calculator = resolve(config.calculator, device, config.teacher_options)
    check = getattr(calculator, "check_atoms", None)
    if check is not None:
        check(atoms, where=f"{config.structure} frame {config.structure_index}")
    return calculator

"""The flags that name the keys and units of a user's data files (:class:`ffpt.data.formats.DataFormat`),
shared by every verb that reads frames: ``--energy-key``, ``--forces-key``, ``--stress-key``,
``--charge-key``, ``--spin-key`` (MACE's names), ``--energy-unit``, ``--length-unit``."""

from __future__ import annotations

import argparse

FIELDS = ("energy_key", "forces_key", "stress_key", "charge_key", "spin_key", "energy_unit", "length_unit")


def add_format_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """The format flags; ``prefix`` is the config section they set (``data.`` for train)."""
    group = parser.add_argument_group(
        "data formats", "extxyz (.extxyz, .xyz), sGDML/MD17 npz (.npz: R, z, E, F) or ASE database (.db); "
        f"config keys {prefix}energy_key, ...")
    group.add_argument("--energy-key", help="info key of the total energy (default REF_energy)")
    group.add_argument("--forces-key", help="per-atom key of the forces (default REF_forces)")
    group.add_argument("--stress-key", help="info key of the stress (default REF_stress)")
    group.add_argument("--charge-key", help="info key of the total charge in e (default charge)")
    group.add_argument("--spin-key", help="info key of the spin multiplicity 2S+1 (default spin)")
    group.add_argument("--energy-unit", help="energy unit of the file: eV, meV, kcal/mol, kJ/mol, Hartree "
                       "(default eV, or an npz's e_unit); forces in energy/length")
    group.add_argument("--length-unit", help="length unit of the file: A, bohr, nm (default A, or an npz's r_unit)")


def format_flags(args: argparse.Namespace, prefix: str = "") -> dict:
    """Dotted config key -> flag value (``None``: not given)."""
    return {prefix + name: getattr(args, name) for name in FIELDS}

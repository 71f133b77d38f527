"""Where a user's file keeps its labels and in which units: keys and units mapped to ffpt's at the edge.

:class:`DataFormat` holds the config keys every verb that reads frames shares (``energy_key``,
``forces_key``, ``stress_key``, ``charge_key``, ``spin_key``: MACE's convention; ``energy_unit``,
``length_unit``). :func:`map_frame` moves a frame's values from the user's keys to ffpt's
(:mod:`ffpt.keys`) and converts them to eV and Angstrom; values keep ffpt's meaning otherwise (spin is
the multiplicity 2S+1, charge in e).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ase import Atoms
from ase.units import Bohr
from pydantic import ValidationInfo, field_validator

from ffpt import keys, units
from ffpt.config import Strict
from ffpt.data.frames import DataError

# eV per unit of energy, Angstrom per unit of length; names compared case-insensitively
ENERGY_UNITS = {"ev": 1.0, "mev": units.MEV, "kcal/mol": units.KCAL_PER_MOL, "kj/mol": units.KJ_PER_MOL,
                "hartree": units.HARTREE, "ha": units.HARTREE}
LENGTH_UNITS = {"a": 1.0, "ang": 1.0, "angstrom": 1.0, "å": 1.0, "bohr": Bohr, "nm": 1.0 / units.NM_PER_A}


def energy_factor(name: str) -> float:
    """eV per ``name`` (eV, meV, kcal/mol, kJ/mol, Hartree); ValueError naming the known units."""
    try:
        return ENERGY_UNITS[name.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown energy unit '{name}'; known: eV, meV, kcal/mol, kJ/mol, Hartree") from None


def length_factor(name: str) -> float:
    """Angstrom per ``name`` (A, bohr, nm); ValueError naming the known units."""
    try:
        return LENGTH_UNITS[name.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown length unit '{name}'; known: A, bohr, nm") from None


class DataFormat(Strict):
    """Keys and units of the files a verb reads (defaults: ffpt's own keys, eV and Angstrom).

    ``energy_unit``/``length_unit`` ``None``: eV and A, or the units an npz file states
    (sGDML's ``e_unit``/``r_unit``); forces are in energy/length, stress in energy/length^3.
    """

    energy_key: str = keys.ENERGY
    forces_key: str = keys.FORCES
    stress_key: str = keys.STRESS
    charge_key: str = keys.CHARGE
    spin_key: str = keys.SPIN
    energy_unit: str | None = None
    length_unit: str | None = None

    @field_validator("energy_unit", "length_unit")
    @classmethod
    def _known_unit(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            (energy_factor if info.field_name == "energy_unit" else length_factor)(value)
        return value


DEFAULT = DataFormat()


def _take(atoms: Atoms, key: str, per_atom: bool) -> Any:
    """The value under ``key`` in the frame's arrays (per atom) or info, or in the results of the
    calculator ASE's reader attached (extxyz ``energy``/``forces``/``stress``); removed from where
    it was. ``None`` when absent."""
    store = atoms.arrays if per_atom else atoms.info
    if key in store and not (per_atom and key in ("numbers", "positions")):
        return atoms.arrays.pop(key) if per_atom else atoms.info.pop(key)
    results = getattr(atoms.calc, "results", None) or {}
    return results.get(key)


def _voigt(stress: Any) -> np.ndarray:
    s = np.asarray(stress, dtype=float).ravel()
    if s.size == 9:
        m = s.reshape(3, 3)
        return np.array([m[0, 0], m[1, 1], m[2, 2], m[1, 2], m[0, 2], m[0, 1]])
    return s


def map_frame(atoms: Atoms, fmt: DataFormat, where: str, *, require_labels: bool,
              fallbacks: bool = False) -> Atoms:
    """Move the values under ``fmt``'s keys to ffpt's keys (in place; the calculator is dropped) and
    convert them from ``fmt``'s units to eV and A.

    A missing energy or forces key is a :class:`DataError` naming ``where`` (file and frame) and the
    key when ``require_labels``; stress, charge and spin are optional. ``fallbacks``: when a key is
    ffpt's default and absent, ASE's own name (``energy``, ``forces``, ``stress``) is tried (ASE
    databases keep calculator results under those).
    """
    found = {}
    for target, name, per_atom, ase_name in (
        (keys.ENERGY, "energy_key", False, "energy"),
        (keys.FORCES, "forces_key", True, "forces"),
        (keys.STRESS, "stress_key", False, "stress"),
        (keys.CHARGE, "charge_key", False, None),
        (keys.SPIN, "spin_key", False, None),
    ):
        key = getattr(fmt, name)
        value = _take(atoms, key, per_atom)
        if value is None and fallbacks and ase_name and key == getattr(DEFAULT, name):
            value = _take(atoms, ase_name, per_atom)
        if value is None and require_labels and target in (keys.ENERGY, keys.FORCES):
            kind = "per-atom arrays" if per_atom else "frame info"
            raise DataError(f"{where}: missing key '{key}' in {kind} (the file's key is set by {name})")
        if value is not None:
            found[target] = value
    atoms.calc = None
    e = energy_factor(fmt.energy_unit) if fmt.energy_unit else 1.0
    length = length_factor(fmt.length_unit) if fmt.length_unit else 1.0
    if length != 1.0:
        atoms.set_cell(atoms.cell.array * length, scale_atoms=False)
        atoms.positions = atoms.positions * length
    for target, value in found.items():
        if target == keys.ENERGY:
            try:
                atoms.info[target] = float(value) * e
            except (TypeError, ValueError):
                raise DataError(f"{where}: key '{fmt.energy_key}' is not a number ({value!r})") from None
        elif target == keys.FORCES:
            atoms.arrays[target] = np.asarray(value, dtype=float) * (e / length)
        elif target == keys.STRESS:
            atoms.info[target] = _voigt(value) * (e / length**3)
        else:
            atoms.info[target] = value
    return atoms

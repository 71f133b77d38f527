"""Conventions for labelled frames and their validation.

A frame is an :class:`ase.Atoms` with
- ``info["REF_energy"]``: total energy, eV
- ``arrays["REF_forces"]``: forces, eV/A, shape (n_atoms, 3)
- optional ``info["charge"]`` (e), ``info["spin"]`` (multiplicity 2S+1), ``info["config_type"]``.

:func:`charge_of` and :func:`spin_of` are the only readers of charge and spin that validate them;
their errors name the frame (:func:`describe_frame`).
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from ffpt import keys
from ffpt.errors import UserError

ENERGY_KEY = keys.ENERGY
FORCES_KEY = keys.FORCES


class DataError(UserError):
    """Bad input data; the message names the file, frame, atom or key at fault."""


def _where(source: str | None, index: int | None) -> str:
    parts = []
    if source is not None:
        parts.append(str(source))
    if index is not None:
        parts.append(f"frame {index}")
    return ", ".join(parts) if parts else "frame"


def describe_frame(atoms: Atoms) -> str:
    """Short name of a frame for error messages: formula plus any name it carries."""
    text = f"frame {atoms.get_chemical_formula()}"
    for key in ("name", keys.SEED_NAME, keys.CONFIG_TYPE, keys.CHANNEL):
        if key in atoms.info:
            text += f" ({key}={atoms.info[key]})"
    return text


def charge_of(atoms: Atoms, where: str | None = None) -> int:
    """Total charge ``info["charge"]`` (e, default 0); :class:`DataError` naming the frame unless an integer
    that leaves at least one electron."""
    where = where or describe_frame(atoms)
    charge = atoms.info.get(keys.CHARGE, 0)
    try:
        ok = int(charge) == charge
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise DataError(f"{where}: info['{keys.CHARGE}']={charge!r} is not an integer")
    charge = int(charge)
    if int(atoms.numbers.sum()) - charge < 1:
        raise DataError(f"{where}: info['{keys.CHARGE}']={charge} leaves no electrons")
    return charge


def default_multiplicity(atoms: Atoms) -> int:
    """Lowest spin multiplicity of the frame's electron count: 1 (even) or 2 (odd)."""
    return 1 + (int(atoms.numbers.sum()) - charge_of(atoms)) % 2


def spin_of(atoms: Atoms, default: int | None = None, where: str | None = None) -> int | None:
    """Spin multiplicity 2S+1 of a frame (``info["spin"]``), or ``default`` when not given.

    Raises :class:`DataError` naming the frame unless it is an integer >= 1 that the electron count
    (atomic numbers minus ``info["charge"]``) allows: 2S unpaired electrons, at most all of them, of
    the same parity as the count. ``where`` names the frame (default: :func:`describe_frame`).
    """
    if atoms.info.get(keys.SPIN) is None:
        return default
    where = where or describe_frame(atoms)
    value = atoms.info[keys.SPIN]
    try:
        ok = int(value) == value and int(value) >= 1
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise DataError(f"{where}: info['{keys.SPIN}']={value!r} is not a multiplicity (integer >= 1)")
    multiplicity = int(value)
    electrons = int(atoms.numbers.sum()) - charge_of(atoms, where)
    unpaired = multiplicity - 1
    if unpaired > electrons or (electrons - unpaired) % 2:
        raise DataError(
            f"{where}: spin multiplicity {multiplicity} is impossible with {electrons} electrons "
            f"(info['{keys.SPIN}'])"
        )
    return multiplicity


def energy_of(atoms: Atoms) -> float:
    """Reference energy of a frame, eV."""
    return float(atoms.info[ENERGY_KEY])


def forces_of(atoms: Atoms) -> np.ndarray:
    """Reference forces of a frame, eV/A, shape (n_atoms, 3)."""
    return np.asarray(atoms.arrays[FORCES_KEY], dtype=float)


def set_labels(atoms: Atoms, energy: float, forces: np.ndarray, stress: np.ndarray | None = None) -> Atoms:
    """Store reference labels (eV, eV/A, stress eV/A^3 in Voigt order) on ``atoms`` in place and return
    it; without ``stress`` an earlier stress label is removed (it belonged to other labels)."""
    atoms.info[ENERGY_KEY] = float(energy)
    atoms.arrays[FORCES_KEY] = np.asarray(forces, dtype=float).reshape(len(atoms), 3)
    if stress is None:
        atoms.info.pop(keys.STRESS, None)
    else:
        atoms.info[keys.STRESS] = np.asarray(stress, dtype=float).reshape(6)
    return atoms


def check_cell(atoms: Atoms, where: str = "frame") -> None:
    """A :class:`DataError` when the cell vectors along the periodic directions span zero length,
    area or volume (non-periodic directions may be zero)."""
    periodic = atoms.cell.array[atoms.pbc]
    if len(periodic) and abs(np.linalg.det(periodic @ periodic.T)) < 1e-12:
        raise DataError(f"{where}: periodic frame has a degenerate cell (zero volume or length along pbc)")


def validate_frame(
    atoms: Atoms,
    *,
    source: str | None = None,
    index: int | None = None,
    require_labels: bool = True,
    min_distance: float = 0.1,
) -> None:
    """Raise :class:`DataError` naming the place of the first problem found.

    Checks: known elements, finite positions, a cell of non-zero volume along periodic directions, no two atoms closer than ``min_distance`` (A), a
    consistent charge and spin (:func:`spin_of`), and, if ``require_labels``, presence, shape and finiteness of ``REF_energy``/``REF_forces``.
    """
    where = _where(source, index)
    numbers = atoms.numbers
    if len(atoms) == 0:
        raise DataError(f"{where}: frame has no atoms")
    bad = np.flatnonzero((numbers <= 0) | (numbers >= len(chemical_symbols)))
    if bad.size:
        raise DataError(f"{where}, atom {bad[0]}: unknown element (atomic number {numbers[bad[0]]})")
    positions = atoms.positions
    if not np.all(np.isfinite(positions)):
        i = int(np.argwhere(~np.isfinite(positions))[0, 0])
        raise DataError(f"{where}, atom {i}: non-finite position")
    check_cell(atoms, where)
    if len(atoms) > 1 and min_distance > 0:
        from ase.neighborlist import neighbor_list

        i, j, d = neighbor_list("ijd", atoms, min_distance)
        if len(d):
            k = int(np.argmin(d))
            raise DataError(
                f"{where}: atoms {i[k]} and {j[k]} overlap ({d[k]:.3f} A < {min_distance} A)"
            )
    if keys.CHARGE in atoms.info or keys.SPIN in atoms.info:
        named = where if source is not None or index is not None else None
        charge_of(atoms, named)
        spin_of(atoms, where=named)
    if not require_labels:
        return
    if ENERGY_KEY not in atoms.info:
        raise DataError(f"{where}: missing key '{ENERGY_KEY}' in frame info")
    try:
        energy = float(atoms.info[ENERGY_KEY])
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: key '{ENERGY_KEY}' is not a number ({atoms.info[ENERGY_KEY]!r})") from exc
    if not np.isfinite(energy):
        raise DataError(f"{where}: key '{ENERGY_KEY}' is not finite ({energy})")
    if FORCES_KEY not in atoms.arrays:
        raise DataError(f"{where}: missing key '{FORCES_KEY}' in per-atom arrays")
    forces = np.asarray(atoms.arrays[FORCES_KEY])
    if forces.shape != (len(atoms), 3):
        raise DataError(
            f"{where}: key '{FORCES_KEY}' has shape {forces.shape}, expected ({len(atoms)}, 3)"
        )
    if not np.all(np.isfinite(forces)):
        i = int(np.argwhere(~np.isfinite(forces))[0, 0])
        raise DataError(f"{where}, atom {i}: key '{FORCES_KEY}' is not finite")

"""Frames from other formats, as ASE ``Atoms`` still in the file's keys and units (:mod:`ffpt.data.formats`
maps them): sGDML/MD17-style npz and ASE databases. Errors name the file and the key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms

from ffpt import keys
from ffpt.data.formats import DataFormat, energy_factor, length_factor
from ffpt.data.frames import DataError

# array names of sGDML/MD17 (first) and revised MD17 (second)
NPZ_NAMES = {
    "positions": ("R", "coords"),
    "numbers": ("z", "nuclear_charges"),
    "energy": ("E", "energies"),
    "forces": ("F", "forces"),
}
SGDML_UNITS = {"energy": "e_unit", "length": "r_unit"}  # unit strings an sGDML dataset stores


def _npz_array(data, path: Path, what: str, required: bool = True):
    for name in NPZ_NAMES[what]:
        if name in data.files:
            return np.asarray(data[name])
    if required:
        raise DataError(f"{path}: missing array '{NPZ_NAMES[what][0]}' ({what}; also read as "
                        f"'{NPZ_NAMES[what][1]}'); arrays in the file: {', '.join(data.files)}")
    return None


def _unit_hint(kind: str) -> str:
    """Where a user gives the unit: the flag first, then the config key."""
    return f"give --{kind}-unit (config key {kind}_unit)"


def _npz_unit(data, path: Path, fmt: DataFormat, kind: str) -> str:
    """The unit a flag gives, else the one the file states, else a DataError naming the flag and key to set."""
    given = getattr(fmt, f"{kind}_unit")
    if given is not None:
        return given
    stored = SGDML_UNITS[kind]
    if stored in data.files:
        unit = str(data[stored])
        try:
            (energy_factor if kind == "energy" else length_factor)(unit)
        except ValueError as exc:
            raise DataError(f"{path}: '{stored}': {exc}; {_unit_hint(kind)}") from None
        return unit
    raise DataError(f"{path}: the file does not state its {kind} unit ('{stored}'); {_unit_hint(kind)} "
                    "(MD17 as published: --energy-unit kcal/mol --length-unit A)")


def read_npz(path: Path, fmt: DataFormat, *, require_labels: bool = True) -> tuple[list[Atoms], DataFormat]:
    """Frames of an sGDML/MD17-style npz: ``R`` (n_frames, n_atoms, 3), ``z`` (n_atoms,) or
    (n_frames, n_atoms), optional ``E`` (n_frames,) and ``F`` (like ``R``), optional ``lattice`` (3, 3)
    (then periodic). Returns the frames (labels under ffpt's keys, values in the file's units) and the
    format that converts them (keys ffpt's, units the flag's or the file's)."""
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:  # numpy raises several types for a bad archive
        raise DataError(f"{path}: cannot read as npz ({exc})") from exc
    with data:
        positions = _npz_array(data, path, "positions")
        numbers = _npz_array(data, path, "numbers")
        energies = _npz_array(data, path, "energy", required=require_labels)
        forces = _npz_array(data, path, "forces", required=require_labels)
        units = {kind: _npz_unit(data, path, fmt, kind) for kind in SGDML_UNITS}
        lattice = np.asarray(data["lattice"], dtype=float) if "lattice" in data.files else None
    if positions.ndim != 3 or positions.shape[2] != 3:
        raise DataError(f"{path}: array 'R' has shape {positions.shape}, expected (n_frames, n_atoms, 3)")
    n_frames, n_atoms = positions.shape[:2]
    if numbers.shape == (n_atoms,):
        numbers = np.broadcast_to(numbers, (n_frames, n_atoms))
    if numbers.shape != (n_frames, n_atoms):
        raise DataError(f"{path}: array 'z' has shape {numbers.shape}, expected ({n_atoms},)")
    if energies is not None and energies.size != n_frames:
        raise DataError(f"{path}: array 'E' has {energies.size} values for {n_frames} frames")
    if forces is not None and forces.shape != positions.shape:
        raise DataError(f"{path}: array 'F' has shape {forces.shape}, expected {positions.shape}")
    frames = []
    for k in range(n_frames):
        atoms = Atoms(numbers=numbers[k].astype(int), positions=positions[k])
        if lattice is not None:
            atoms.set_cell(lattice)
            atoms.pbc = True
        if energies is not None:
            atoms.info[keys.ENERGY] = float(energies.ravel()[k])
        if forces is not None:
            atoms.arrays[keys.FORCES] = np.asarray(forces[k], dtype=float)
        frames.append(atoms)
    return frames, DataFormat(energy_unit=units["energy"], length_unit=units["length"])


def write_npz(path: Path, frames: list[Atoms], energy_unit: str = "eV", length_unit: str = "A") -> Path:
    """Write frames of one molecule (same atoms in every frame) as an sGDML-style npz in the given units
    (converted from eV and A); states the units as ``e_unit``/``r_unit``."""
    from ffpt.data.frames import energy_of, forces_of
    from ffpt.fileio import atomic_path

    e, length = energy_factor(energy_unit), length_factor(length_unit)
    arrays = dict(
        R=np.array([a.positions for a in frames]) / length,
        z=frames[0].numbers.copy(),
        E=np.array([energy_of(a) for a in frames]) / e,
        F=np.array([forces_of(a) for a in frames]) / (e / length),
        e_unit=energy_unit,
        r_unit=length_unit,
    )
    if frames[0].pbc.any():
        arrays["lattice"] = frames[0].cell.array / length
    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
    return Path(path)


def read_db(path: Path) -> list[Atoms]:
    """Rows of an ASE database (``ase.db``) as frames: the stored calculator results (energy, forces,
    stress) on the frame's calculator, key-value pairs in ``info``, per-atom ``data`` arrays in
    ``arrays`` and other ``data`` entries in ``info``; values in the database's units."""
    import ase.db

    try:
        rows = list(ase.db.connect(str(path)).select())
    except Exception as exc:  # sqlite and ase raise several types for a foreign file
        raise DataError(f"{path}: cannot read as an ASE database ({exc})") from exc
    frames = []
    for row in rows:
        atoms = row.toatoms()  # stored results sit on a SinglePointCalculator
        atoms.info.update(row.key_value_pairs)
        for key, value in row.data.items():
            value = np.asarray(value)
            if value.ndim == 2 and len(value) == len(atoms):
                atoms.arrays[key] = value
            else:
                atoms.info[key] = value.item() if value.ndim == 0 else value
        frames.append(atoms)
    return frames

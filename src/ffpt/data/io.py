"""Reading labelled frames from extxyz, sGDML/MD17 npz or ASE databases (by extension); writing extxyz
atomically. Keys and units of the user's files: :class:`ffpt.data.formats.DataFormat`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import ase.io
import numpy as np
from ase import Atoms

from ffpt import keys
from ffpt.data.formats import DEFAULT, DataFormat, map_frame
from ffpt.data.frames import DataError, validate_frame
from ffpt.fileio import atomic_path


EXTXYZ = (".extxyz", ".xyz")
FORMATS = "extxyz (.extxyz, .xyz), sGDML/MD17 npz (.npz), ASE database (.db)"


def read_frames(
    path: str | os.PathLike, *, require_labels: bool = True, index: str = ":", fmt: DataFormat | None = None
) -> list[Atoms]:
    """Read and validate frames of an extxyz file, an sGDML/MD17-style npz or an ASE database (chosen by
    extension), with labels under ``fmt``'s keys and in its units (default: ffpt's keys, eV, A).
    Frames come back with ffpt's keys in eV and A. Errors name the file, frame and key.
    ``index`` (an ASE index string) applies to extxyz only."""
    from ffpt.data import importers

    path = Path(path)
    fmt = fmt or DEFAULT
    suffix = path.suffix.lower()
    if suffix not in (*EXTXYZ, ".npz", ".db"):
        raise DataError(f"{path}: unknown extension '{path.suffix}'; ffpt reads {FORMATS}")
    if not path.exists():
        raise DataError(f"{path}: no such file")
    fallbacks = False
    if suffix == ".npz":
        frames, fmt = importers.read_npz(path, fmt, require_labels=require_labels)
    elif suffix == ".db":
        frames, fallbacks = importers.read_db(path), True
    else:
        frames = _read_extxyz(path, index)
    if not frames:
        raise DataError(f"{path}: no frames")
    for k, atoms in enumerate(frames):
        map_frame(atoms, fmt, f"{path}, frame {k}", require_labels=require_labels, fallbacks=fallbacks)
        channel = atoms.info.get(keys.CHANNEL)
        if isinstance(channel, (int, np.integer)):  # extxyz parses channel=09 as the number 9
            atoms.info[keys.CHANNEL] = f"{int(channel):02d}"
        validate_frame(atoms, source=str(path), index=k, require_labels=require_labels)
    return frames


def _read_extxyz(path: Path, index: str) -> list[Atoms]:
    """Frames as ASE reads them (``energy``/``forces``/``stress`` keys end on a calculator)."""
    try:
        frames = ase.io.read(path, index=index, format="extxyz")
    except Exception as exc:  # ase raises many types for malformed files
        raise DataError(f"{path}: cannot parse as extxyz ({exc})") from exc
    return [frames] if isinstance(frames, Atoms) else frames


def read_structure(path, index: int):
    """Frame ``index`` of an ASE-readable file, validated (elements, positions, overlaps, cell)."""
    try:
        atoms = ase.io.read(path, index=index)
    except FileNotFoundError:
        raise DataError(f"{path}: no such structure file") from None
    except Exception as exc:  # ase raises many types for malformed files
        raise DataError(f"{path}: cannot read frame {index} ({' '.join(str(exc).split())})") from None
    atoms.calc = None
    validate_frame(atoms, source=str(path), index=index, require_labels=False)
    return atoms


def write_frames(path: str | os.PathLike, frames: Iterable[Atoms]) -> Path:
    """Write frames to extxyz atomically (temporary file, then rename)."""
    path = Path(path)
    clean = []
    for atoms in frames:
        a = atoms.copy()
        a.calc = None
        clean.append(a)
    with atomic_path(path) as tmp:
        ase.io.write(tmp, clean, format="extxyz")
    return path

"""extxyz input/output of labelled frames; writes are atomic."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import ase.io
import numpy as np
from ase import Atoms

from ffpt import keys
from ffpt.data.frames import DataError, validate_frame
from ffpt.fileio import atomic_path


def read_frames(path: str | os.PathLike, *, require_labels: bool = True, index: str = ":") -> list[Atoms]:
    """Read and validate frames of an extxyz file. Errors name the file and frame."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    try:
        frames = ase.io.read(path, index=index, format="extxyz")
    except Exception as exc:  # ase raises many types for malformed files
        raise DataError(f"{path}: cannot parse as extxyz ({exc})") from exc
    if isinstance(frames, Atoms):
        frames = [frames]
    if not frames:
        raise DataError(f"{path}: no frames")
    for k, atoms in enumerate(frames):
        # ase turns 'energy'/'forces' keys into a calculator; ffpt keys stay in info/arrays
        atoms.calc = None
        channel = atoms.info.get(keys.CHANNEL)
        if isinstance(channel, (int, np.integer)):  # extxyz parses channel=09 as the number 9
            atoms.info[keys.CHANNEL] = f"{int(channel):02d}"
        validate_frame(atoms, source=str(path), index=k, require_labels=require_labels)
    return frames


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

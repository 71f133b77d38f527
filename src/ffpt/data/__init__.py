"""Labelled frames: ASE ``Atoms`` with ``REF_energy`` (eV) in ``info`` and ``REF_forces`` (eV/A) in ``arrays``."""

from ffpt.data.frames import (
    ENERGY_KEY,
    FORCES_KEY,
    DataError,
    energy_of,
    forces_of,
    set_labels,
    validate_frame,
)
from ffpt.data.io import read_frames, write_frames
from ffpt.data.molecules import bonds, isolate_molecules, molecule_indices
from ffpt.data.splits import split, subset

__all__ = [
    "ENERGY_KEY",
    "FORCES_KEY",
    "DataError",
    "bonds",
    "energy_of",
    "forces_of",
    "isolate_molecules",
    "molecule_indices",
    "read_frames",
    "set_labels",
    "split",
    "subset",
    "validate_frame",
    "write_frames",
]

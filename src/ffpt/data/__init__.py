"""Labelled frames: ASE ``Atoms`` with ``REF_energy`` (eV) in ``info`` and ``REF_forces`` (eV/A) in ``arrays``;
read from extxyz, sGDML/MD17 npz or ASE databases with the user's keys and units (:class:`DataFormat`)."""

from ffpt.data.formats import DataFormat
from ffpt.data.frames import (
    ENERGY_KEY,
    FORCES_KEY,
    DataError,
    charge_of,
    describe_frame,
    energy_of,
    forces_of,
    set_labels,
    spin_of,
    validate_frame,
)
from ffpt.data.io import read_frames, write_frames
from ffpt.data.molecules import Molecule, bonds, isolate_molecules, molecule_indices
from ffpt.data.splits import split, subset

__all__ = [
    "ENERGY_KEY",
    "FORCES_KEY",
    "DataError",
    "DataFormat",
    "Molecule",
    "bonds",
    "charge_of",
    "describe_frame",
    "energy_of",
    "forces_of",
    "isolate_molecules",
    "molecule_indices",
    "read_frames",
    "set_labels",
    "spin_of",
    "split",
    "subset",
    "validate_frame",
    "write_frames",
]

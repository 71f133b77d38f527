"""A committee of models: the mean prediction and how much the members disagree.

Members are ffpt models of one family (same elements, cutoff, spin input and float type), e.g. the K
members ``ffpt train --committee K`` fine-tunes from one pre-trained model with different seeds and
bootstrap resamples of the labels. For M members with energies E_m (eV) and forces F_m,i (eV/A):

    energy       = mean_m E_m                      energy_std    = std_m E_m              (eV)
    forces_i     = mean_m F_m,i                    forces_std_i  = sqrt(mean_m |F_m,i - forces_i|^2)
                                                   forces_std_max = max_i forces_std_i    (eV/A)

``forces_std_i`` is the standard deviation of atom i's force vector over the members (the norm of the
per-component standard deviations; population statistics, ddof = 0). Stress is the members' mean.
The members share one neighbour list per frame.

A committee file (``committee.json``, written by ``ffpt train --committee``) lists member model files
relative to itself: ``{"format": "ffpt-committee/1", "members": ["member_0/model.pt", ...]}``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from ase.stress import full_3x3_to_voigt_6_stress

from ffpt.fileio import atomic_write_json
from ffpt.keys import UNCERTAINTY_KEYS
from ffpt.models.calculator import GraphCalculator
from ffpt.models.model_file import ModelFileError

COMMITTEE_FORMAT = "ffpt-committee/1"
COMMITTEE_FILE = "committee.json"


def is_committee_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a committee file (by its ``.json`` suffix)."""
    return Path(path).suffix == ".json"


def read_committee_file(path: str | os.PathLike) -> list[Path]:
    """Member model files of a committee file (absolute, resolved against its folder)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such committee file")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path}: not a committee file ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != COMMITTEE_FORMAT or not data.get("members"):
        raise ModelFileError(f"{path}: not an ffpt committee file (expected format {COMMITTEE_FORMAT} "
                             "and a list of members)")
    return [(path.parent / member).resolve() for member in data["members"]]


def write_committee_file(path: str | os.PathLike, members: Sequence[str | os.PathLike]) -> Path:
    """Write a committee file listing ``members`` relative to its own folder."""
    path = Path(path)
    rel = [os.path.relpath(Path(m).resolve(), path.parent.resolve()) for m in members]
    atomic_write_json(path, {"format": COMMITTEE_FORMAT, "members": rel})
    return path


def committee_statistics(energies: np.ndarray, forces: np.ndarray) -> dict[str, np.ndarray | float]:
    """Mean and spread of member energies (M,) eV and forces (M, N, 3) eV/A (see the module docstring)."""
    energies = np.asarray(energies, dtype=float)
    forces = np.asarray(forces, dtype=float)
    forces_std = np.sqrt(np.mean(np.sum((forces - forces.mean(axis=0)) ** 2, axis=-1), axis=0))
    return {
        "energy": float(energies.mean()),
        "forces": forces.mean(axis=0),
        "energy_std": float(energies.std()),
        "forces_std": forces_std,
        "forces_std_max": float(forces_std.max()) if forces_std.size else 0.0,
    }


class CommitteeCalculator(GraphCalculator):
    """ASE calculator of a committee of :class:`GraphCalculator` members (model files or exported
    packages). ``results`` hold the committee mean (``energy``, ``forces``, ``stress``), the spread
    (``energy_std`` eV, ``forces_std`` per atom eV/A, ``forces_std_max`` eV/A) and the members' own
    predictions (``member_energies`` (M,), ``member_forces`` (M, N, 3))."""

    implemented_properties = ["energy", "free_energy", "forces", "stress", *UNCERTAINTY_KEYS]

    def __init__(self, members: Sequence[GraphCalculator], source: str | None = None, **kwargs):
        super().__init__(**kwargs)
        members = list(members)
        self.source = source or ", ".join(m.source for m in members)
        if len(members) < 2:
            raise ModelFileError(f"committee {self.source}: needs at least 2 members, got {len(members)}")
        first = members[0]
        for member in members[1:]:
            for attr in ("elements", "cutoff", "max_spin", "dtype"):
                if getattr(member, attr) != getattr(first, attr):
                    raise ModelFileError(
                        f"committee member {member.source}: {attr} {getattr(member, attr)} differs from "
                        f"{getattr(first, attr)} of {first.source} (members must be one model family)")
        self.members = members
        self.elements, self.cutoff, self.max_spin = first.elements, first.cutoff, first.max_spin
        self.architecture, self.dtype, self.device = first.architecture, first.dtype, first.device
        self.neighbors = first.neighbors

    def __len__(self) -> int:
        return len(self.members)

    def graph_results(self, graph, stress: bool) -> dict:
        outputs = [member.evaluate(graph, stress) for member in self.members]
        energies = np.array([energy for energy, _, _ in outputs])
        forces = np.stack([f for _, f, _ in outputs])
        stats = committee_statistics(energies, forces)
        results = {**stats, "free_energy": stats["energy"], "member_energies": energies, "member_forces": forces}
        if stress:
            results["stress"] = full_3x3_to_voigt_6_stress(np.mean([s for _, _, s in outputs], axis=0))
        return results

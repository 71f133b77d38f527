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

Members that stack (NewtonNet model files of identical hyper-parameters, float type and device, not
compiled: :func:`ffpt.models.stacked.stacking_obstacle`) are evaluated together, as one grouped graph
with their weights stacked (:class:`~ffpt.models.stacked.StackedNewtonNet`), in one call per frame (MD)
or per batch of frames (:func:`committee_predictions`, ``ffpt eval``). Other committees (a MACE or an
exported member, members of different sizes) loop over their members; ``evaluation`` says which and why.

A committee that stacks also exports as one ``.pt2`` package (``ffpt export committee.json``), which
:func:`ffpt.load_calculator` serves as an :class:`ExportedCommittee` with the same results.

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
from ffpt.models.calculator import GraphCalculator, MLIPCalculator
from ffpt.models.exported import ExportedCalculator
from ffpt.models.graph import collate, graph_from_atoms
from ffpt.models.inference import calculator_predictions
from ffpt.models.model_file import ModelFileError
from ffpt.models.potential import check_spin
from ffpt.models.stacked import StackedNewtonNet, stacking_obstacle

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
    predictions (``member_energies`` (M,), ``member_forces`` (M, N, 3)). ``stack``: evaluate members that
    stack in one call (False: always one member at a time, as before stacking existed)."""

    implemented_properties = ["energy", "free_energy", "forces", "stress", *UNCERTAINTY_KEYS]

    def __init__(self, members: Sequence[GraphCalculator], source: str | None = None, stack: bool = True,
                 **kwargs):
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
        obstacle = members_stacking_obstacle(members) if stack else "stacking switched off"
        self.stacked = StackedNewtonNet([m.model for m in members]) if obstacle is None else None
        self.evaluation = (f"{len(members)} members stacked, one call" if obstacle is None
                           else f"one member at a time: {obstacle}")

    def __len__(self) -> int:
        return len(self.members)

    def member_predictions(self, graph, stress: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Every member's energies (M, G) eV, forces (M, N, 3) eV/A and, if ``stress``, stress (M, G, 3, 3)
        eV/A^3 of ``graph`` (several frames only when the members stack)."""
        if self.stacked is not None:
            pred = self.stacked(graph, stress=stress)
            return (_numpy(pred.energy), _numpy(pred.forces), _numpy(pred.stress) if stress else None)
        if graph.n_graphs != 1:
            raise ValueError(f"committee {self.source}: members that do not stack take one frame per call "
                             f"({self.evaluation})")
        outputs = [member.evaluate(graph, stress) for member in self.members]
        return (np.array([[energy] for energy, _, _ in outputs]), np.stack([f for _, f, _ in outputs]),
                np.stack([s[None] for _, _, s in outputs]) if stress else None)

    def graph_results(self, graph, stress: bool) -> dict:
        return self.batch_results(graph, stress)[0]

    def batch_results(self, graph, stress: bool = False) -> list[dict]:
        """ASE's results of each frame of ``graph`` (the keys of :class:`CommitteeCalculator`), for batched
        MD replicas: one call for all members and frames when the members stack (else one frame only)."""
        energies, forces, stresses = self.member_predictions(graph, stress)
        bounds = np.cumsum([0] + graph.n_atoms.tolist())
        return [committee_results(energies[:, g], forces[:, a:b], stresses[:, g] if stress else None)
                for g, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))]


class ExportedCommittee(ExportedCalculator):
    """ASE calculator of an exported committee (``ffpt export committee.json``: one package of the stacked
    members, every member's energy, forces and stress in one call): the results of
    :class:`CommitteeCalculator` (mean, spread, members' own predictions)."""

    implemented_properties = CommitteeCalculator.implemented_properties
    committee = True

    def __len__(self) -> int:
        return int(self.info["committee"])

    def graph_results(self, graph, stress: bool) -> dict:
        energies, forces, stresses = (_numpy(t) for t in self.run(graph))  # (K, 1), (K, N, 3), (K, 1, 3, 3)
        return committee_results(energies[:, 0], forces, stresses[:, 0] if stress else None)


def committee_results(energies: np.ndarray, forces: np.ndarray, stresses: np.ndarray | None) -> dict:
    """ASE's results of one frame from its members' energies (M,) eV, forces (M, N, 3) eV/A and stresses
    (M, 3, 3) eV/A^3 or None: :func:`committee_statistics`, the mean stress and the members' own values."""
    stats = committee_statistics(energies, forces)
    results = {**stats, "free_energy": stats["energy"], "member_energies": energies, "member_forces": forces}
    if stresses is not None:
        results["stress"] = full_3x3_to_voigt_6_stress(stresses.mean(axis=0))
    return results


def members_stacking_obstacle(members: Sequence[GraphCalculator]) -> str | None:
    """Why the committee ``members`` cannot be evaluated in one stacked call (one line), or None."""
    for k, member in enumerate(members):
        if not isinstance(member, MLIPCalculator):
            return f"member {k} ({member.source}) is not an eager ffpt model (e.g. an exported package)"
    return stacking_obstacle([member.model for member in members])


def committee_predictions(committee: CommitteeCalculator, frames: Sequence, names: Sequence[str],
                          batch_size: int = 64) -> tuple[np.ndarray, list[np.ndarray]]:
    """Committee-mean energies (n_frames,) eV and forces [(n_atoms, 3)] eV/A on ``frames``: ``batch_size``
    frames per stacked call when the members stack, else one frame per call through the calculator. A
    frame the committee cannot take raises its :class:`UserError` naming it by its name in ``names``."""
    if committee.stacked is None:
        return calculator_predictions(committee, frames, names)
    energies, forces = [], []
    for start in range(0, len(frames), batch_size):
        chunk = frames[start : start + batch_size]
        graphs = []
        for atoms, name in zip(chunk, names[start : start + batch_size]):
            check_spin(atoms, committee.max_spin, committee.architecture, where=name)
            committee.check_atoms(atoms, where=name)
            graphs.append(graph_from_atoms(atoms, committee.elements, committee.neighbors, dtype=committee.dtype))
        member_energies, member_forces, _ = committee.member_predictions(collate(graphs).to(committee.device),
                                                                         stress=False)
        energies.append(member_energies.mean(axis=0))
        forces.extend(np.split(member_forces.mean(axis=0), np.cumsum([len(a) for a in chunk])[:-1]))
    return (np.concatenate(energies) if energies else np.zeros(0)), forces


def _numpy(tensor) -> np.ndarray:
    return tensor.detach().cpu().double().numpy()

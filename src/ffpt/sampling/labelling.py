"""Labelling of sampled geometries by a teacher that keeps the seed's bonding."""

from __future__ import annotations

from typing import Callable

import numpy as np
from ase import Atoms
from ase.data import covalent_radii
from ase.geometry import get_distances

from ffpt import keys
from ffpt.data.frames import set_labels
from ffpt.teachers.base import Teacher, TeacherInfo
from ffpt.teachers.topology import MoleculeTeacher


OVERLAP = 0.5  # default rejection threshold, fraction of the covalent-radius sum


def overlap_limits(template: Atoms, factor: float = OVERLAP) -> np.ndarray:
    """Smallest allowed distance of each atom pair (A), shape (N, N).

    ``factor`` x (r_cov,i + r_cov,j), lowered to 3/4 of the pair's distance in ``template`` when
    the template itself is closer (e.g. a compressed scan end point), so the template always passes.
    """
    _, d = get_distances(template.positions, cell=template.cell, pbc=template.pbc)
    radii = covalent_radii[template.numbers]
    limits = np.minimum(factor * (radii[:, None] + radii[None, :]), 0.75 * d)
    np.fill_diagonal(limits, 0.0)
    return limits


def draw_frames(
    template: Atoms,
    draw: Callable[[], np.ndarray],
    n_frames: int,
    label: Callable[[np.ndarray], Atoms],
    factor: float = OVERLAP,
    progress: Callable[[int], None] | None = None,
    max_tries: int = 100,
) -> list[Atoms]:
    """``n_frames`` labelled frames from ``draw() -> positions``, redrawing overlapping geometries.

    A draw overlaps when a pair is closer than :func:`overlap_limits`. Raises ``RuntimeError``
    naming the seed if more than ``max_tries`` draws per frame overlap.
    """
    limits = overlap_limits(template, factor) if len(template) > 1 and factor > 0 else None
    frames, rejected = [], 0
    while len(frames) < n_frames:
        positions = draw()
        if limits is not None:
            _, d = get_distances(positions, cell=template.cell, pbc=template.pbc)
            if np.any(d < limits):
                rejected += 1
                if rejected > max_tries * max(n_frames, 1):
                    name = template.info.get(keys.SEED_NAME, template.get_chemical_formula())
                    raise RuntimeError(f"{name}: {rejected} draws put atoms closer than {factor} x covalent radii")
                continue
        frames.append(label(positions))
        if progress is not None:
            progress(1)
    return frames


def bind(teacher: Teacher, reference: Atoms) -> Teacher:
    """``teacher`` with bonding fixed to ``reference`` if it is a per-molecule classical teacher.

    Sampling stays non-reactive: a stretched bond keeps its force-field term instead of breaking.
    """
    if isinstance(teacher, MoleculeTeacher):
        return teacher.with_topology(reference)
    return teacher


def labelled_frame(
    template: Atoms, positions: np.ndarray, energy: float, forces: np.ndarray, config_type: str, teacher: TeacherInfo
) -> Atoms:
    """A new frame with ``template``'s elements, cell and identity info, at ``positions`` (A), labelled.

    ``info`` gets ``config_type``, ``teacher`` (registry name) and ``level_of_theory``.
    """
    frame = Atoms(numbers=template.numbers, positions=positions, cell=template.cell, pbc=template.pbc)
    frame.info.update({k: template.info[k] for k in (keys.SEED_NAME, keys.CHARGE, keys.SPIN) if k in template.info})
    frame.info["config_type"] = config_type
    frame.info["teacher"] = teacher.name
    frame.info["level_of_theory"] = teacher.level
    return set_labels(frame, energy, forces)


def label_positions(
    teacher: Teacher, template: Atoms, positions: np.ndarray, config_type: str, provenance: TeacherInfo
) -> Atoms:
    """Label ``template`` moved to ``positions`` (A) with ``teacher``."""
    probe = template.copy()
    probe.positions = positions
    result = teacher.label(probe)
    return labelled_frame(template, positions, result.energy, result.forces, config_type, provenance)

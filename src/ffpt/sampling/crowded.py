"""Crowded frames: several sampled molecules in one frame, each keeping its own force-field labels.

Pre-training on isolated molecules never shows the network an atom with neighbours from another
molecule, so what it predicts there is unconstrained: pre-trained combustion networks gave -1e5 to
-1e28 eV on a dense 24-atom frame and their fine-tuned models inherited it (BENCHMARKS.md, 12e).
A crowded frame packs ``molecules`` frames drawn from the sampled single-molecule frames, each
rotated at random, into one cluster: molecules are placed one after another at random points so that
every atom of a new molecule stays at least ``min_distance`` (A) from every atom placed before, and
some atom of it lies within ``min_distance + shell`` of one placed before (a contact, so that the
cluster is dense, not a gas). The labels stay intramolecular: the energy is the sum of the molecules'
energies (eV) and each atom keeps its own molecule's force, rotated with it (eV/A). A network fitted
to them learns that molecules it has no terms between add nothing at these distances, which is
where fine-tuning labels then put the intermolecular interactions. No teacher call is needed.
"""

from __future__ import annotations

import zlib

import numpy as np
from ase import Atoms
from scipy.spatial.distance import cdist
from scipy.spatial.transform import Rotation

from ffpt import keys
from ffpt.data.frames import energy_of, forces_of, set_labels


def _unpaired(part: Atoms) -> int:
    """Unpaired electrons of a part: from its multiplicity, else the fewest its electrons allow."""
    if part.info.get(keys.SPIN) is not None:
        return int(part.info[keys.SPIN]) - 1
    return (int(part.numbers.sum()) - int(part.info.get(keys.CHARGE, 0))) % 2


def _multiplicity(parts: list[Atoms]) -> int:
    """Lowest multiplicity the parts' unpaired electrons can couple to (1 or 2): with labels that hold
    no coupling between molecules every coupling is the same state, and the lowest stays within a
    spin-input model's range however many radicals a cluster holds."""
    return 1 + sum(_unpaired(p) for p in parts) % 2


def crowd(parts: list[Atoms], rng: np.random.Generator, min_distance: float = 2.0, shell: float = 1.0,
          max_tries: int = 1000) -> Atoms:
    """One labelled cluster of ``parts`` (labelled, non-periodic frames), see the module doc."""
    positions, numbers, forces, energy = [], [], [], 0.0
    for k, part in enumerate(parts):
        rotation = Rotation.random(random_state=rng)
        centred = part.positions - part.positions.mean(axis=0)
        moved = rotation.apply(centred)
        if k > 0:
            placed = np.concatenate(positions)
            radius = np.linalg.norm(placed - placed.mean(axis=0), axis=1).max() + min_distance + shell
            for _ in range(max_tries):
                shift = placed.mean(axis=0) + rng.uniform(-radius, radius, 3)
                d = cdist(moved + shift, placed).min()
                if min_distance <= d <= min_distance + shell:
                    moved = moved + shift
                    break
            else:
                raise RuntimeError(f"crowded: no place for {part.get_chemical_formula()} within "
                                   f"{min_distance:g}-{min_distance + shell:g} A of the cluster in {max_tries} draws")
        positions.append(moved)
        numbers.append(part.numbers)
        forces.append(rotation.apply(forces_of(part)))
        energy += energy_of(part)
    frame = Atoms(numbers=np.concatenate(numbers), positions=np.concatenate(positions))
    frame.info[keys.CHARGE] = int(sum(int(p.info.get(keys.CHARGE, 0)) for p in parts))
    if any(p.info.get(keys.SPIN) is not None for p in parts):  # else left to the model's default, as the parts
        frame.info[keys.SPIN] = _multiplicity(parts)
    frame.info["config_type"] = f"crowded_{len(parts)}"
    for key in ("teacher", "level_of_theory"):
        if key in parts[0].info:
            frame.info[key] = parts[0].info[key]
    return set_labels(frame, energy, np.concatenate(forces))


def crowded_rng(seed: int) -> np.random.Generator:
    """The random stream of a sampling config's crowded frames (its ``seed``), apart from its tasks'."""
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(b"crowded")]))


def crowded_frames(frames: list[Atoms], n_frames: int, molecules: int, rng: np.random.Generator,
                   min_distance: float = 2.0, shell: float = 1.0) -> list[Atoms]:
    """``n_frames`` clusters of ``molecules`` frames each, drawn with replacement from ``frames``."""
    if molecules < 2:
        raise ValueError("crowded: molecules must be at least 2")
    if any(f.pbc.any() for f in frames):
        raise ValueError("crowded: the sampled frames must be isolated molecules (no periodic cell)")
    return [crowd([frames[i] for i in rng.integers(len(frames), size=molecules)], rng, min_distance, shell)
            for _ in range(n_frames)]

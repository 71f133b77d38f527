"""Crowded frames: sampled molecules packed into one cluster, each keeping its own force-field labels
(the sum of the molecules' energies; each atom its molecule's force, turned with the molecule)."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.calculators.morse import MorsePotential
from scipy.spatial.distance import cdist

from ffpt import keys
from ffpt.data import energy_of, forces_of, read_frames, set_labels
from ffpt.sampling import crowded_frames, sample
from ffpt.sampling.crowded import crowd
from test_sampling import small_config


def labelled(name: str, spin: int, rng) -> Atoms:
    """A rattled molecule labelled on its own by a Morse pair potential (rotation-covariant forces)."""
    atoms = molecule(name)
    atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
    atoms.calc = MorsePotential(epsilon=1.0, r0=1.0, rho0=4.0)
    set_labels(atoms, atoms.get_potential_energy(), atoms.get_forces())
    atoms.calc = None
    atoms.info[keys.SPIN] = spin
    return atoms


def test_crowd_labels_are_each_molecules_own_labels():
    rng = np.random.default_rng(3)
    parts = [labelled("OH", 2, rng), labelled("O2", 3, rng), labelled("H2O", 1, rng), labelled("H2", 1, rng)]
    frame = crowd(parts, np.random.default_rng(0), min_distance=2.0, shell=1.0)
    del parts[3].info[keys.SPIN]  # H2 without a multiplicity: its 2 electrons pair up
    assert crowd(parts, np.random.default_rng(0)).info[keys.SPIN] == 2
    assert keys.SPIN not in crowd([
        _without_spin(labelled("H2", 1, rng)), _without_spin(labelled("H2O", 1, rng))], np.random.default_rng(0)).info
    assert len(frame) == 9 and frame.info[keys.SPIN] == 2  # 1 + 2 + 0 + 0 unpaired electrons: a doublet
    assert energy_of(frame) == pytest.approx(sum(energy_of(p) for p in parts), rel=1e-12)
    start = 0
    for part in parts:  # each molecule, cut out where the cluster put it, has the cluster's forces
        piece = frame[start:start + len(part)]
        assert list(piece.numbers) == list(part.numbers)
        piece.calc = MorsePotential(epsilon=1.0, r0=1.0, rho0=4.0)
        assert piece.get_potential_energy() == pytest.approx(energy_of(part), abs=1e-9)  # rigidly moved
        np.testing.assert_allclose(forces_of(frame)[start:start + len(part)], piece.get_forces(), atol=1e-9)
        start += len(part)


def _without_spin(atoms):
    del atoms.info[keys.SPIN]
    return atoms


def test_molecules_of_a_crowd_touch_at_the_asked_distance():
    rng = np.random.default_rng(1)
    pool = [labelled(n, 1, rng) for n in ("H2O", "H2O", "H2", "CH4")]
    for frame in crowded_frames(pool, 20, 4, np.random.default_rng(2), min_distance=2.0, shell=1.0):
        bounds = np.cumsum([0] + [len(p) for p in _split(frame, pool)])
        pieces = [frame.positions[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        for k in range(1, len(pieces)):
            closest = cdist(pieces[k], np.concatenate(pieces[:k])).min()
            assert 2.0 <= closest <= 3.0  # no overlap, and in contact with the cluster
        assert frame.info["config_type"] == "crowded_4"


def _split(frame, pool):
    """The molecules of a crowded frame of ``pool`` molecules, from its formula order (test helper)."""
    parts, start = [], 0
    while start < len(frame):
        for p in pool:
            if list(frame.numbers[start:start + len(p)]) == list(p.numbers):
                parts.append(p)
                start += len(p)
                break
        else:
            raise AssertionError("not a crowd of the pool's molecules")
    return parts


def test_crowded_frames_refuse_periodic_molecules():
    box = labelled("H2O", 1, np.random.default_rng(0))
    box.cell, box.pbc = [5, 5, 5], True
    with pytest.raises(ValueError, match="isolated molecules"):
        crowded_frames([box, box], 1, 2, np.random.default_rng(0))


def test_sample_adds_crowded_frames_deterministically(tmp_path):
    config = small_config(tmp_path / "a", crowded={"frames": 3, "molecules": 3})
    frames = read_frames(sample(config, progress=False))
    assert len(frames) == 2 * (2 * 3 + 4 + 2) + 3
    crowds = [f for f in frames if f.info["config_type"] == "crowded_3"]
    assert len(crowds) == 3 and all(len(f) >= 9 for f in crowds)  # three molecules of >= 3 atoms
    again = read_frames(sample(small_config(tmp_path / "b", crowded={"frames": 3, "molecules": 3}), progress=False))
    np.testing.assert_array_equal(np.concatenate([f.positions for f in frames]),
                                  np.concatenate([f.positions for f in again]))

"""Shared fixtures: small labelled data sets made on the fly (no shared data needed)."""

import numpy as np
import pytest
from ase.build import molecule
from ase.calculators.emt import EMT
from ase.optimize import BFGS

from ffpt.data import set_labels, write_frames


def _emt_minimum(name):
    atoms = molecule(name)
    atoms.calc = EMT()
    BFGS(atoms, logfile=None).run(fmax=0.01, steps=300)
    return atoms.positions.copy()


def emt_frames(names=("H2O", "CH3OH", "CH4"), n=60, seed=0, amplitude=0.1):
    """Small molecules displaced around their EMT minima, labelled with ASE's EMT
    (a cheap, smooth many-body potential)."""
    rng = np.random.default_rng(seed)
    minima = {name: _emt_minimum(name) for name in names}
    frames = []
    calc = EMT()
    for k in range(n):
        name = names[k % len(names)]
        atoms = molecule(name)
        atoms.positions = minima[name] + rng.normal(0, amplitude, atoms.positions.shape)
        atoms.calc = calc
        set_labels(atoms, atoms.get_potential_energy(), atoms.get_forces())
        atoms.calc = None
        atoms.info["teacher"] = "emt"
        frames.append(atoms)
    return frames


@pytest.fixture(scope="module")
def ethanol():
    """Ethanol with its atoms slightly displaced (seeded), for physics checks of models."""
    a = molecule("CH3CH2OH")
    a.rattle(0.05, seed=1)
    return a


@pytest.fixture(scope="session")
def emt_dataset(tmp_path_factory):
    """Paths of a train and a valid extxyz file of EMT-labelled molecules."""
    root = tmp_path_factory.mktemp("emt")
    train = write_frames(root / "train.extxyz", emt_frames(n=60, seed=0))
    valid = write_frames(root / "valid.extxyz", emt_frames(n=15, seed=1))
    return train, valid

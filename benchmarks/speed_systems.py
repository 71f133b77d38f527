"""Test systems and model builders shared by the speed benchmarks (speed_md.py, speed_scaling.py)."""

from __future__ import annotations

import math

import numpy as np
import torch
from ase import Atoms
from ase.build import molecule
from scipy.spatial.transform import Rotation

from ffpt.models import build_model, read_model_file

AVOGADRO = 6.02214076e23
WATER_MASS_G = 18.015 / AVOGADRO

# hyper-parameters when no trained model file is given (ffpt's default config / MACE's defaults)
DEFAULT_HPARAMS = {
    "newtonnet": dict(cutoff=5.0, n_features=64, n_layers=3, n_basis=20, avg_num_neighbors=20.0),
    "mace": dict(cutoff=5.0, n_features=64, n_layers=2, n_basis=8, avg_num_neighbors=20.0),
}


def water_box(n_molecules: int, seed: int = 0, density: float = 0.997) -> Atoms:
    """``n_molecules`` randomly oriented waters on a cubic lattice, periodic, at ``density`` g/cm^3."""
    length = (n_molecules * WATER_MASS_G / density * 1e24) ** (1 / 3)  # A
    k = math.ceil(n_molecules ** (1 / 3))
    grid = np.stack(np.meshgrid(*[np.arange(k)] * 3, indexing="ij"), -1).reshape(-1, 3)[:n_molecules]
    rng = np.random.default_rng(seed)
    water = molecule("H2O")
    water.positions -= water.positions[0]
    positions = []
    for cell_index, R in zip(grid, Rotation.random(n_molecules, random_state=seed).as_matrix()):
        centre = (cell_index + 0.5 + rng.uniform(-0.05, 0.05, 3)) * length / k
        positions.append(water.positions @ R.T + centre)
    box = Atoms("OH2" * n_molecules, positions=np.concatenate(positions), cell=[length] * 3, pbc=True)
    box.wrap()
    return box


def water_cluster(n_molecules: int = 21, seed: int = 0) -> Atoms:
    """The ``n_molecules`` waters of a liquid-density box nearest its centre, as an isolated cluster."""
    box = water_box(27, seed=seed)
    centre = box.cell.lengths() / 2
    oxygens = np.flatnonzero(box.numbers == 8)
    order = np.argsort(np.linalg.norm(box.positions[oxygens] - centre, axis=1))[:n_molecules]
    keep = np.concatenate([[o, o + 1, o + 2] for o in oxygens[order]])
    cluster = Atoms(box.numbers[keep], positions=box.positions[keep])  # molecules are whole: built unwrapped
    cluster.center(vacuum=5.0)
    return cluster


def systems() -> dict[str, Atoms]:
    """The three systems of the speed comparison: 9, 63 and 192 atoms."""
    ethanol = molecule("CH3CH2OH")
    ethanol.center(vacuum=5.0)
    return {"ethanol (9 atoms)": ethanol, "water cluster (63 atoms)": water_cluster(21),
            "water box (192 atoms, periodic)": water_box(64)}


def model_for_speed(architecture: str, model_file: str | None, elements=(1, 6, 8), seed: int = 0):
    """An untrained model with the hyper-parameters of ``model_file`` (or the defaults) for ``elements``.

    Cost does not depend on weight values, so a model trained on H/O data is timed on H/C/O systems.
    """
    if model_file:
        payload = read_model_file(model_file)
        if payload["architecture"] != architecture:
            raise ValueError(f"{model_file}: is a {payload['architecture']} model, expected {architecture}")
        hparams = dict(payload["hparams"])
    else:
        hparams = dict(DEFAULT_HPARAMS[architecture])
    hparams["elements"] = list(elements)
    torch.manual_seed(seed)
    return build_model(architecture, **hparams), hparams

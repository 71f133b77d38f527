"""The stress term of the loss: it trains the model's stress (the strain derivative checked by finite
differences in test_model_physics.py) on periodic frames with REF_stress, and frames without a stress
label or without a 3D-periodic cell add nothing to it."""

import csv

import numpy as np
import pytest
import torch
from ase.build import bulk, molecule
from ase.calculators.emt import EMT

from ffpt import keys
from ffpt.data import read_frames, set_labels, write_frames
from ffpt.models import build_model
from ffpt.models.graph import collate
from ffpt.training import TrainConfig, parse_config, train
from ffpt.training.dataset import GraphDataset
from ffpt.training.module import loss_terms

TINY = {"n_features": 8, "n_layers": 1, "n_basis": 4, "cutoff": 4.0}


def copper_boxes(n=6, seed=0):
    """Strained, rattled fcc Cu boxes (32 atoms) labelled with EMT energy, forces and stress."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
        strain = np.eye(3) + np.diag(rng.uniform(-0.04, 0.04, 3))
        atoms.set_cell(atoms.cell.array @ strain, scale_atoms=True)
        atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
        atoms.calc = EMT()
        set_labels(atoms, atoms.get_potential_energy(), atoms.get_forces())
        atoms.info[keys.STRESS] = atoms.get_stress()  # Voigt, eV/A^3
        atoms.calc = None
        frames.append(atoms)
    return frames


def unstressed_frames():
    """A Cu cluster (no cell) and a periodic box, both labelled but without a stress."""
    cluster = molecule("H2O")
    cluster.set_chemical_symbols(["Cu"] * 3)
    cluster.positions *= 2.5
    box = copper_boxes(1, seed=9)[0]
    del box.info[keys.STRESS]
    for atoms in (cluster, box):
        atoms.calc = EMT()
        set_labels(atoms, atoms.get_potential_energy(), atoms.get_forces())
        atoms.calc = None
    return [cluster, box]


def copper_model(seed=0):
    torch.manual_seed(seed)
    return build_model("newtonnet", elements=[29], **TINY).double()


def graphs_of(model, frames):
    return GraphDataset(frames, model.elements, model.cutoff, torch.float64).graphs


def test_stress_term_trains():
    model = copper_model()
    batch = collate(graphs_of(model, copper_boxes()))
    assert batch.stress_weight.tolist() == [1.0] * 6
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = loss_terms(model, batch, training=True, stress=True)["stress_loss"]
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] > 1e-6  # something to learn: (eV/A^3)^2
    assert losses[-1] < 0.3 * losses[0], losses


def test_frames_without_stress_add_nothing():
    model = copper_model()
    stressed = graphs_of(model, copper_boxes(2))
    others = graphs_of(model, unstressed_frames())
    assert [g.stress_weight.item() for g in others] == [0.0, 0.0]
    alone = loss_terms(model, collate(stressed), training=True, stress=True)
    mixed = loss_terms(model, collate(stressed + others), training=True, stress=True)
    assert mixed["stress_loss"].item() == pytest.approx(alone["stress_loss"].item(), rel=1e-10)
    assert mixed["stress_mae"].item() == pytest.approx(alone["stress_mae"].item(), rel=1e-10)
    mixed["stress_loss"].backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)  # the cluster's zero volume is harmless
    only_others = loss_terms(model, collate(others), training=True, stress=True)
    assert only_others["stress_loss"].item() == 0.0


def test_stress_survives_the_file_and_a_non_periodic_frame_has_none(tmp_path):
    path = write_frames(tmp_path / "boxes.extxyz", copper_boxes(2))
    frames = read_frames(path)
    model = copper_model()
    graph = graphs_of(model, frames)[0]
    np.testing.assert_allclose(graph.stress[0, 0, 1].item(), frames[0].info[keys.STRESS][5])
    flat = frames[0].copy()
    flat.pbc = [True, True, False]  # stress needs a cell periodic in all three directions
    assert graphs_of(model, [flat])[0].stress_weight.item() == 0.0


def test_training_with_stress_weight_runs(tmp_path):
    train_path = write_frames(tmp_path / "train.extxyz", copper_boxes(6) + unstressed_frames())
    valid_path = write_frames(tmp_path / "valid.extxyz", copper_boxes(2, seed=1))
    config = parse_config(TrainConfig, {
        "data": {"train": str(train_path), "valid": str(valid_path)},
        "model": {**TINY, "dtype": "float64"},
        "training": {"max_epochs": 1, "batch_size": 4, "stress_weight": 100.0, "progress_bar": False},
        "out": str(tmp_path / "run"),
    })
    result = train(config)
    assert np.isfinite(result.metrics["forces_mae_mev_per_a"])
    with open(tmp_path / "run" / "logs" / "version_0" / "metrics.csv") as handle:
        values = [row["train_stress_mae_mev_per_a3"] for row in csv.DictReader(handle)]
    assert any(v and np.isfinite(float(v)) for v in values)

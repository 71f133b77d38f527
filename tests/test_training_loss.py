"""The training loss: MSE or Huber terms, and batches whose loss is not finite."""

import numpy as np
import pytest
import torch
from ase import Atoms

from ffpt.data import set_labels
from ffpt.models import build_model
from ffpt.models.graph import collate
from ffpt.training.dataset import GraphDataset
from ffpt.training.module import PotentialModule, loss_terms
from conftest import emt_frames


@pytest.fixture(scope="module")
def model_and_batch():
    frames = emt_frames(n=6)
    model = build_model("newtonnet", elements=[1, 6, 8], cutoff=4.0, n_features=8, n_layers=1, n_basis=4)
    batch = collate(GraphDataset(frames, model.elements, model.cutoff).graphs)
    return model, batch


def test_huber_is_mse_below_delta_and_linear_above(model_and_batch):
    model, batch = model_and_batch
    mse = loss_terms(model, batch, training=False)
    wide = loss_terms(model, batch, training=False, huber_delta=1e6)
    for key in ("energy_loss", "forces_loss"):
        assert wide[key].item() == pytest.approx(mse[key].item(), rel=1e-6)
    delta = 1e-7  # far below every error: 2 * delta * (|error| - delta / 2), i.e. an L1 loss
    narrow = loss_terms(model, batch, training=False, huber_delta=delta)
    assert narrow["forces_loss"].item() == pytest.approx(2 * delta * mse["forces_mae"].item(), rel=1e-3)
    assert narrow["energy_loss"].item() == pytest.approx(2 * delta * mse["energy_mae"].item(), rel=1e-3)


def test_non_finite_batches_are_skipped_then_training_stops(model_and_batch):
    model, batch = model_and_batch
    bad = collate([batch])  # a copy
    bad.energy = batch.energy.clone()
    bad.energy[0] = float("nan")
    module = PotentialModule(model)
    module.max_non_finite = 3
    assert module.training_step(bad, 0) is None  # skipped: no backward, no optimiser step
    assert module.training_step(bad, 1) is None
    with pytest.raises(FloatingPointError, match="training diverged.*3 batches in a row.*training.lr"):
        module.training_step(bad, 2)


def h2_frames(distances, stiffness=20.0, bond=0.74):
    """H2 at ``distances`` (A) labelled with a harmonic bond, E = k/2 (d - d0)^2 (eV): a wall far softer
    than the ZBL prior at short range, as a force field's is."""
    frames = []
    for d in distances:
        atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, d]])
        force = stiffness * (d - bond)  # on atom 0, along +z; atom 1 the opposite
        set_labels(atoms, 0.5 * stiffness * (d - bond) ** 2, np.array([[0, 0, force], [0, 0, -force]]))
        frames.append(atoms)
    return frames


def prior_model():
    torch.manual_seed(0)
    return build_model("newtonnet", elements=[1], cutoff=3.0, n_features=8, n_layers=1, n_basis=6,
                       zbl=True, zbl_radius_scale={"H": 1.0}).double()


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")  # a module called without a Trainer
def test_loss_without_the_prior_fits_the_network_alone():
    model = prior_model()
    batch = collate(GraphDataset(h2_frames([0.35, 0.5, 0.74, 1.0]), model.elements, model.cutoff,
                                 torch.float64).graphs)
    with_prior, without = model(batch), model(batch, prior=False)
    prior_energy = (with_prior.energy - without.energy).detach()
    assert prior_energy[0] > 1.0 and prior_energy[-1] == 0.0  # eV: inside the H-H range 0.62 A, zero outside
    shifted = collate([batch])
    shifted.energy = batch.energy + prior_energy
    shifted.forces = batch.forces + (with_prior.forces - without.forces).detach()
    alone = loss_terms(model, batch, training=False, prior=False)
    whole = loss_terms(model, shifted, training=False)  # the whole model against labels plus the prior
    for key in ("energy_loss", "forces_loss"):
        assert alone[key].item() == pytest.approx(whole[key].item(), rel=1e-9)
    module = PotentialModule(model, fit_prior=False)  # what training.fit_prior: false builds
    expected = module.energy_weight * alone["energy_loss"] + module.forces_weight * alone["forces_loss"]
    assert module.training_step(batch, 0).item() == pytest.approx(expected.item(), rel=1e-6)


def test_pretraining_without_the_prior_keeps_the_prior_wall():
    """Fitted to a soft harmonic H2 wall down to 0.35 A, a network that sees the prior in its loss
    learns to cancel it; one fitted without it keeps the prior's wall on top of the labels'."""
    frames = h2_frames(np.linspace(0.35, 1.3, 20))
    probe = collate(GraphDataset(h2_frames([0.4, 0.74]), [1], 3.0, torch.float64).graphs)
    energies = {}
    for fit_prior in (True, False):
        model = prior_model()
        batch = collate(GraphDataset(frames, model.elements, model.cutoff, torch.float64).graphs)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(200):
            optimizer.zero_grad()
            terms = loss_terms(model, batch, training=True, prior=fit_prior)
            (terms["energy_loss"] + 10 * terms["forces_loss"]).backward()
            optimizer.step()
        e = model(probe, forces=False).energy.detach()
        energies[fit_prior] = (e[0] - e[1]).item()  # eV: wall at 0.4 A above the bond
        zbl = (model(probe, forces=False).energy - model(probe, forces=False, prior=False).energy)[0].item()
    harmonic = 0.5 * 20.0 * (0.4 - 0.74) ** 2  # 1.16 eV
    assert zbl > 4 * harmonic  # eV: the prior's wall at 0.4 A is the stiffer one
    assert energies[True] == pytest.approx(harmonic, rel=0.3)  # the labels' soft wall: prior cancelled
    assert energies[False] == pytest.approx(harmonic + zbl, rel=0.1)  # the prior's wall kept on top

"""The training loss: MSE or Huber terms, and batches whose loss is not finite."""

import pytest

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

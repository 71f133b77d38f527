"""A float64 model file loads bit for bit: its weights never pass through float32."""

import torch

from ffpt.models import NewtonNet, save_model
from ffpt.models.model_file import load_model


def test_float64_weights_load_exactly(tmp_path):
    torch.manual_seed(0)
    model = NewtonNet(elements=[1, 8], cutoff=4.0, n_features=8, n_layers=1, n_basis=4).double()
    with torch.no_grad():
        model.energy_scale.fill_(1.0 + 1e-12)  # not representable in float32
        for p in model.parameters():
            p.add_(1e-12)
    path = save_model(model, tmp_path / "m.pt")
    loaded = load_model(path)
    saved = model.state_dict()
    for name, value in loaded.state_dict().items():
        assert value.dtype == torch.float64 and torch.equal(value, saved[name]), name

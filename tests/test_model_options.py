"""Typed model options per architecture, and models that refuse a spin they would ignore."""

import inspect

import pytest
import torch
from ase.build import molecule

from ffpt.config import ConfigError, parse_config
from ffpt.models import ARCHITECTURES, OPTIONS, ModelInputError, NewtonNet, collate, graph_from_atoms
from ffpt.models.calculator import MLIPCalculator
from ffpt.models.graph import NeighborListBuilder
from ffpt.models.inference import predict_frames
from ffpt.training.config import TrainConfig


def model_config(**model):
    return parse_config(TrainConfig, {"data": {"train": "train.extxyz"}, "model": model}).model


def test_every_architecture_has_an_options_model_matching_its_constructor():
    assert set(OPTIONS) == set(ARCHITECTURES)
    for name, options in OPTIONS.items():
        params = inspect.signature(ARCHITECTURES[name].__init__).parameters
        honoured = {k for k, f in options.model_fields.items() if not f.exclude}
        assert honoured <= set(params), name
        for key in honoured:  # the options model's defaults are the constructor's
            assert options.model_fields[key].default == params[key].default or name == "mace" and key == "radial_mlp"


@pytest.mark.parametrize("model, message", [
    ({"options": {"spin_state": 4}}, "key 'model.options.spin_state': unknown key"),
    ({"options": {"zbl_radius_scale": -1}}, "key 'model.options.zbl_radius_scale': Value error, the scale must be > 0"),
    ({"options": {"zbl_radius_scale": {"H": 0}}},
     "key 'model.options.zbl_radius_scale': Value error, H: the scale must be > 0"),
    ({"options": {"zbl_radius_scale": {"Hy": 1.0}}},
     "key 'model.options.zbl_radius_scale': Value error, 'Hy' is not an element symbol"),
    ({"options": {"zbl_exclusive_core": True}}, "key 'model.options': Value error, zbl_exclusive_core needs zbl"),
    ({"architecture": "mace", "options": {"max_el": 2}}, "key 'model.options.max_el': unknown key"),
    ({"architecture": "mace", "options": {"spin_states": 4}},
     "key 'model.options.spin_states': Value error, architecture 'mace' has no spin input"),
    ({"architecture": "mace", "options": {"zbl": True}}, "key 'model.options.zbl': Value error, architecture 'mace' has no ZBL"),
    ({"architecture": "newton"}, "key 'model.architecture': Value error, unknown architecture 'newton'"),
])
def test_model_options_are_checked_against_the_architecture(model, message):
    with pytest.raises(ConfigError, match=r"^config: " + message.replace("(", r"\(")):
        model_config(**model)


def test_valid_options_pass_through_unchanged():
    assert model_config(options={"spin_states": 4, "zbl": True}).options == {"spin_states": 4, "zbl": True}
    per_element = {"zbl": True, "zbl_radius_scale": {"H": 1.0}}
    assert model_config(options=per_element).options == per_element
    assert model_config(architecture="mace", options={"max_ell": 2}).options == {"max_ell": 2}
    assert model_config(architecture="mace", options={"spin_states": 0}).options == {}  # "no spin" is honoured


def test_a_model_without_spin_input_refuses_a_spin_it_would_ignore():
    """Every path into a model (calculator, batched predictions, graphs) refuses a non-default spin and names the frame."""
    torch.manual_seed(0)
    model = NewtonNet(elements=[1, 8], cutoff=4.0, n_features=8, n_layers=1, n_basis=4).double()  # no spin input
    o2, water = molecule("O2"), molecule("H2O")
    water.info["spin"] = 1  # the default for 10 electrons: nothing is ignored
    o2.info.update(spin=3, seed_name="oxygen")
    calc = MLIPCalculator(model)
    water.calc = calc
    assert water.get_potential_energy() == pytest.approx(model(graph_from_atoms(
        water, model.elements, NeighborListBuilder(4.0), dtype=torch.float64)).energy.item())
    o2.calc = calc
    with pytest.raises(ModelInputError, match=r"^frame O2 \(seed_name=oxygen\): spin multiplicity 3 .*'newtonnet' has no spin input"):
        o2.get_potential_energy()
    with pytest.raises(ModelInputError, match=r"^frame 1: spin multiplicity 3"):
        predict_frames(model, [water, o2])
    graphs = [graph_from_atoms(a, model.elements, NeighborListBuilder(4.0), dtype=torch.float64) for a in (water, o2)]
    with pytest.raises(ModelInputError, match=r"^frame O2 \(batch entry 1\): spin multiplicity 3"):
        model(collate(graphs))  # the training path: graphs only
    spin_model = NewtonNet(elements=[1, 8], cutoff=4.0, n_features=8, n_layers=1, n_basis=4, spin_states=2).double()
    with pytest.raises(ModelInputError, match=r"frame O2 \(seed_name=oxygen\): spin multiplicity 3 above this model's 2"):
        MLIPCalculator(spin_model).get_potential_energy(o2)


"""MACE backend: same numbers as mace-torch's own model, physics of forces/stress, and the ffpt
training stages, model file and ASE calculator end to end."""

import sys
from importlib.util import find_spec

import numpy as np
import pytest
import torch
from ase.build import molecule
from scipy.spatial.transform import Rotation

from ffpt.models import (
    MACEPotential,
    ModelInputError,
    NeighborListBuilder,
    build_model,
    collate,
    graph_from_atoms,
    load_model,
    read_model_file,
)
from ffpt.models.calculator import MLIPCalculator

from helpers_physics import energy_forces, finite_difference_forces, finite_difference_stress

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.*:DeprecationWarning")  # e3nn uses TorchScript
needs_mace = pytest.mark.skipif(
    find_spec("mace") is None, reason="mace-torch not installed (pip install 'ffpt[mace]'); CI installs it"
)
TINY = dict(cutoff=4.0, n_features=8, n_layers=2, n_basis=6, avg_num_neighbors=6.0, max_ell=2, correlation=2,
            radial_mlp=[16, 16], mlp_irreps=8)


def tiny_mace(elements=(1, 6, 8), seed=0, **overrides):
    torch.manual_seed(seed)
    model = build_model("mace", elements=list(elements), **{**TINY, **overrides}).double()
    model.references.copy_(torch.tensor([-13.6, -1029.0, -2041.0][: len(elements)], dtype=torch.float64))
    model.energy_scale.fill_(0.7)
    return model.eval()


@pytest.fixture(scope="module")
def model():
    return tiny_mace()


def test_missing_mace_is_a_clear_error(monkeypatch):
    for name in [m for m in sys.modules if m == "mace" or m.startswith("mace.")] + ["mace"]:
        monkeypatch.setitem(sys.modules, name, None)  # makes "import mace..." fail
    with pytest.raises(ImportError, match=r"mace-torch.*pip install 'ffpt\[mace\]'"):
        build_model("mace", elements=[1, 8])


@needs_mace
@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")  # e3nn's TorchScript chatter
def test_atomic_energies_equal_mace_torch_own_model(model, ethanol):
    """Our graph fed to MACE's blocks gives MACE's own node energies (its data pipeline, its forward)."""
    from e3nn import o3
    from mace.data import AtomicData, config_from_atoms
    from mace.modules import MACE, RealAgnosticInteractionBlock, RealAgnosticResidualInteractionBlock
    from mace.tools import AtomicNumberTable, torch_geometric

    h = model.hparams()
    torch.manual_seed(0)  # same seed, same construction order: same initial weights as tiny_mace()
    reference = MACE(
        r_max=h["cutoff"], num_bessel=h["n_basis"], num_polynomial_cutoff=h["num_polynomial_cutoff"],
        max_ell=h["max_ell"], interaction_cls=RealAgnosticResidualInteractionBlock,
        interaction_cls_first=RealAgnosticInteractionBlock,  # as mace_run_train --model=MACE
        num_interactions=h["n_layers"],
        num_elements=3, hidden_irreps=o3.Irreps(f"{h['n_features']}x0e+{h['n_features']}x1o"),
        MLP_irreps=o3.Irreps(f"{h['mlp_irreps']}x0e"), atomic_energies=np.zeros(3),
        avg_num_neighbors=h["avg_num_neighbors"], atomic_numbers=[1, 6, 8], correlation=h["correlation"],
        gate=torch.nn.functional.silu, radial_MLP=h["radial_mlp"],
    ).double()
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # MACE's data pipeline builds tensors in the default dtype
    try:
        data = AtomicData.from_config(config_from_atoms(ethanol), z_table=AtomicNumberTable([1, 6, 8]), cutoff=4.0)
        batch = next(iter(torch_geometric.dataloader.DataLoader([data], batch_size=1))).to_dict()
    finally:
        torch.set_default_dtype(default)
    expected = reference(batch, compute_force=False)["node_energy"].detach()
    graph = graph_from_atoms(ethanol, model.elements, NeighborListBuilder(4.0), dtype=torch.float64)
    ours = model.atomic_energies(graph, graph.edge_vectors()).detach()
    assert expected.abs().max() > 1e-6
    torch.testing.assert_close(ours, expected, rtol=1e-9, atol=1e-12)


@needs_mace
def test_forces_are_minus_energy_gradient(model, ethanol):
    calc = MLIPCalculator(model)
    _, forces = energy_forces(calc, ethanol)
    fd = finite_difference_forces(calc, ethanol, h=1e-5)
    assert np.abs(forces).max() > 1e-3
    assert np.abs(forces - fd).max() / np.abs(forces).max() < 1e-5


@needs_mace
def test_rotation_translation_permutation_reflection(model, ethanol):
    calc = MLIPCalculator(model)
    e0, f0 = energy_forces(calc, ethanol)
    R = Rotation.random(random_state=3).as_matrix()
    moved = ethanol.copy()
    moved.positions = ethanol.positions @ R.T + np.array([1.3, -2.2, 0.7])
    e1, f1 = energy_forces(calc, moved)
    assert e1 == pytest.approx(e0, abs=1e-8)
    np.testing.assert_allclose(f1, f0 @ R.T, atol=1e-8)
    perm = np.random.default_rng(0).permutation(len(ethanol))
    e2, f2 = energy_forces(calc, ethanol[perm])
    assert e2 == pytest.approx(e0, abs=1e-8)
    np.testing.assert_allclose(f2, f0[perm], atol=1e-8)
    mirrored = ethanol.copy()
    mirrored.positions[:, 0] *= -1
    assert energy_forces(calc, mirrored)[0] == pytest.approx(e0, abs=1e-8)


@needs_mace
def test_periodic_stress_is_strain_derivative_and_batches_match(model, ethanol):
    calc = MLIPCalculator(model)
    water = molecule("H2O")
    water.center(vacuum=0.0)
    box = water.copy()
    box.cell, box.pbc = np.diag([3.2, 3.4, 3.6]), True  # smaller than the cutoff: images matter
    box.calc = calc
    stress = box.get_stress(voigt=False)
    assert np.abs(stress).max() > 1e-4
    np.testing.assert_allclose(stress, finite_difference_stress(calc, box, h=1e-6), atol=1e-7)
    # a batch of different frames (one periodic) equals the frames one by one
    nl = NeighborListBuilder(model.cutoff)
    graphs = [graph_from_atoms(a, model.elements, nl, dtype=torch.float64) for a in (ethanol, box, molecule("CH4"))]
    batched = model(collate(graphs))
    singles = [model(g) for g in graphs]
    torch.testing.assert_close(batched.energy, torch.cat([s.energy for s in singles]))
    torch.testing.assert_close(batched.forces, torch.cat([s.forces for s in singles]))


@needs_mace
def test_train_one_epoch_through_cli_then_finetune_and_serve(emt_dataset, tmp_path):
    """`ffpt train --architecture mace` for one epoch; fine-tune it (head reset, embedding frozen,
    references refit); the model file rebuilds the same MACE and the ASE calculator serves it."""
    from ffpt.cli import main
    from ffpt.data import read_frames
    from ffpt.models.inference import predict_frames
    from ffpt.training import TrainConfig, parse_config, train

    train_path, valid_path = emt_dataset
    opts = [f"model.{k}={v}" for k, v in TINY.items() if k in ("cutoff", "n_features", "n_layers", "n_basis")]
    opts += [f"model.options.{k}={v}" for k, v in TINY.items() if k in ("max_ell", "correlation", "mlp_irreps")]
    rc = main(["train", *opts, "training.progress_bar=false", "training.batch_size=16", "--architecture", "mace",
               "--train", str(train_path), "--valid", str(valid_path), "--max-epochs", "1", "--out",
               str(tmp_path / "pre")])
    assert rc == 0
    pre_path = tmp_path / "pre" / "model.pt"
    payload = read_model_file(pre_path)
    assert payload["architecture"] == "mace" and payload["hparams"]["correlation"] == 2
    assert payload["provenance"]["stage"] == "scratch"
    pre = load_model(pre_path)
    assert isinstance(pre, MACEPotential)

    valid = read_frames(valid_path)
    energies, forces = predict_frames(pre, valid)
    e_calc, f_calc = energy_forces(MLIPCalculator.from_file(pre_path), valid[0])
    assert e_calc == pytest.approx(energies[0], abs=1e-4)
    np.testing.assert_allclose(f_calc, forces[0], atol=1e-4)
    assert np.isfinite(energies).all() and abs(energies - [a.info["REF_energy"] for a in valid]).mean() < 5.0

    config = parse_config(TrainConfig, {
        "data": {"train": str(train_path), "valid": str(valid_path)},
        "training": {"stage": "finetune", "max_epochs": 1, "batch_size": 16, "progress_bar": False},
        "finetune": {"init": str(pre_path), "reset_head": True, "freeze": ["embedding"], "lr": 1e-3},
        "out": str(tmp_path / "ft"),
    })
    tuned = load_model(train(config).model_path)
    assert tuned.architecture == "mace"
    torch.testing.assert_close(tuned.embedding.linear.weight, pre.embedding.linear.weight)
    head_change = (tuned.head.readouts[0].linear.weight - pre.head.readouts[0].linear.weight).abs().max()
    assert head_change > 1e-2  # re-initialised, not just nudged by one epoch at lr 1e-3


@needs_mace
def test_mace_refuses_a_spin_it_cannot_take():
    """MACE has no spin input: a frame in a non-default spin state is an error naming it, not ignored."""
    model = tiny_mace(elements=(1, 8))
    quartet = molecule("OH")
    quartet.info["spin"] = 4
    with pytest.raises(ModelInputError, match=r"^frame HO: spin multiplicity 4 \(info\['spin'\]\), but architecture 'mace'"):
        MLIPCalculator(model).get_potential_energy(quartet)
    quartet.info["spin"] = 2  # the doublet is the default state of 9 electrons
    assert torch.isfinite(torch.tensor(MLIPCalculator(model).get_potential_energy(quartet)))


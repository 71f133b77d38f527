"""Committees in one call (stacked NewtonNet members) give what one member at a time gives, in float64 to
rounding: energies, forces, stress, the committee's mean and spread, and the same results keys. Members
that cannot stack (another architecture, other hyper-parameters) fall back to the loop."""

import json

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule

from ffpt.cli import main
from ffpt.data import read_frames, set_labels, write_frames
from ffpt.models import NewtonNet, build_model, collate, graph_from_atoms, save_model
from ffpt.models.calculator import MLIPCalculator, UnknownElementError
from ffpt.models.committee import CommitteeCalculator, committee_predictions, write_committee_file
from ffpt.models.inference import calculator_predictions
from ffpt.models.stacked import StackedNewtonNet, stacking_obstacle
from ffpt.observables.errors import error_table

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.*:DeprecationWarning")  # e3nn (MACE) uses TorchScript
TIGHT = dict(rtol=1e-12, atol=1e-12)  # float64: stacked and looped arithmetic differ only by rounding
ELEMENTS = [1, 6, 8]
VARIANTS = {
    "plain": dict(),
    "zbl core, spin input": dict(zbl=True, zbl_exclusive_core=True, zbl_radius_scale={"H": 1.0}, spin_states=3),
}


def newtonnet(seed, **options):
    """A small float64 NewtonNet whose members differ visibly (weights, references, scale, spin vectors)."""
    torch.manual_seed(seed)
    hparams = dict(cutoff=4.0, n_features=8, n_layers=2, n_basis=6) | options
    model = NewtonNet(elements=ELEMENTS, **hparams).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))  # spin vectors start at zero: give them values
        model.references.copy_(torch.tensor([-13.6, -1029.0, -2041.0]) + torch.randn(3))
        model.energy_scale.fill_(0.5 + 0.3 * seed)
    return model


def committee(models, stack=True):
    return CommitteeCalculator([MLIPCalculator(m) for m in models], stack=stack)


def frames(spin=False):
    """A molecule (a triplet if ``spin``), a periodic box (stress), and a pair compressed into the ZBL core."""
    ethanol = molecule("CH3CH2OH")
    ethanol.rattle(0.05, seed=1)
    if spin:
        ethanol.info["spin"] = 3
    box = molecule("H2O")
    box.cell, box.pbc = [3.0, 3.2, 3.4], True
    box.rattle(0.05, seed=2)
    squeezed = molecule("CH4")
    squeezed.positions[1] = squeezed.positions[0] + [0.35, 0.1, 0.0]  # C-H at 0.36 A
    return [ethanol, box, squeezed]


def results(calc, atoms):
    atoms = atoms.copy()
    atoms.calc = calc
    properties = ["energy", "forces"] + (["stress"] if atoms.pbc.all() else [])
    calc.calculate(atoms, properties)
    return calc.results


@pytest.mark.parametrize("variant", VARIANTS)
def test_stacked_committee_equals_one_member_at_a_time(variant):
    models = [newtonnet(seed, **VARIANTS[variant]) for seed in range(3)]
    stacked, loop = committee(models), committee(models, stack=False)
    assert stacked.stacked is not None and "stacked" in stacked.evaluation
    assert loop.stacked is None and "one member at a time" in loop.evaluation
    for atoms in frames(spin="spin_states" in VARIANTS[variant]):
        a, b = results(stacked, atoms), results(loop, atoms)
        assert set(a) == set(b)  # the committee results keys are unchanged
        assert b["energy_std"] > 1e-2 and b["forces_std_max"] > 1e-2  # the members differ: the test can fail
        for key in b:
            where = f"{variant}, {atoms.get_chemical_formula()}: {key}"
            np.testing.assert_allclose(a[key], b[key], **TIGHT, err_msg=where)
        if atoms.pbc.all():
            assert np.abs(b["stress"]).max() > 1e-4


def test_results_keys_are_the_committee_keys():
    calc = committee([newtonnet(seed) for seed in range(2)])
    assert set(results(calc, frames()[0])) == {"energy", "free_energy", "forces", "energy_std", "forces_std",
                                               "forces_std_max", "member_energies", "member_forces"}
    assert set(results(calc, frames()[1])) >= {"stress"}


def test_stacked_model_on_a_batch_of_frames_equals_each_member_alone():
    """Several frames of different sizes in one graph: member k's energies, forces and stress are those
    of member k's own model (members in their own copies of the positions do not leak into each other)."""
    models = [newtonnet(seed, zbl=True) for seed in range(3)]
    calc = MLIPCalculator(models[0])
    graph = collate([graph_from_atoms(a, ELEMENTS, calc.neighbors, dtype=torch.float64) for a in frames()])
    graph.spin = torch.zeros_like(graph.spin)
    pred = StackedNewtonNet(models)(graph, stress=True)
    assert pred.energy.shape == (3, 3) and pred.forces.shape == (3, graph.positions.shape[0], 3)
    for k, model in enumerate(models):
        own = model(graph, stress=True)
        torch.testing.assert_close(pred.energy[k], own.energy, **TIGHT)
        torch.testing.assert_close(pred.forces[k], own.forces, **TIGHT)
        torch.testing.assert_close(pred.stress[k], own.stress, **TIGHT)


def test_committee_predictions_batch_frames_as_the_loop_does():
    """What ``ffpt eval`` does with a committee file: batches of frames through the stacked members."""
    models = [newtonnet(seed) for seed in range(3)]
    data = [a for a in frames() for _ in range(3)]
    names = [f"data.xyz frame {k}" for k in range(len(data))]
    energies, forces = committee_predictions(committee(models), data, names, batch_size=4)
    expected_energies, expected_forces = calculator_predictions(committee(models, stack=False), data, names)
    np.testing.assert_allclose(energies, expected_energies, **TIGHT)
    for f, g in zip(forces, expected_forces):
        np.testing.assert_allclose(f, g, **TIGHT)

    gold = Atoms("Au2", positions=[[0, 0, 0], [0, 0, 2.5]])
    with pytest.raises(UnknownElementError, match="data.xyz frame 2, atom 0 \\(Au\\)"):
        committee_predictions(committee(models), data[:2] + [gold], names, batch_size=4)


def test_eval_of_a_committee_file_equals_the_loop_over_members(tmp_path):
    """``ffpt eval committee.json`` (stacked members, batches of frames) reports the loop's errors."""
    paths = [save_model(newtonnet(seed), tmp_path / f"m{seed}.pt") for seed in range(2)]
    path = write_committee_file(tmp_path / "committee.json", paths)
    data = frames()
    for atoms in data:
        set_labels(atoms, -1000.0, np.zeros((len(atoms), 3)))
    write_frames(tmp_path / "data.extxyz", data)
    assert main(["eval", str(path), str(tmp_path / "data.extxyz"), "--json", str(tmp_path / "e.json")]) == 0
    report = json.loads((tmp_path / "e.json").read_text())
    loop = committee([newtonnet(seed) for seed in range(2)], stack=False)
    data = read_frames(tmp_path / "data.extxyz")  # positions as written (extxyz rounds them)
    expected = error_table(data, *calculator_predictions(loop, data)).as_dict()
    for key in ("energy_mae_mev_per_atom", "forces_mae_mev_per_a"):
        assert expected[key] > 1.0 and report[key] == pytest.approx(expected[key], rel=1e-9)


def test_members_that_do_not_stack_fall_back_to_the_loop():
    base = newtonnet(0)
    wider = newtonnet(1, n_features=12)
    calc = committee([base, wider])
    assert calc.stacked is None and "n_features" in calc.evaluation
    loop = [MLIPCalculator(m) for m in (base, wider)]
    atoms = frames()[2]
    own = [results(m, atoms) for m in loop]
    r = results(calc, atoms)
    np.testing.assert_allclose(r["member_forces"], [o["forces"] for o in own], **TIGHT)
    np.testing.assert_allclose(r["energy"], np.mean([o["energy"] for o in own]), **TIGHT)
    assert "only NewtonNet" in stacking_obstacle([base, build_model("mace", elements=ELEMENTS, cutoff=4.0,
                                                                    n_features=4, n_layers=1, n_basis=4)])


def test_committee_with_a_mace_member_loops_and_matches_its_members():
    torch.manual_seed(0)
    mace = build_model("mace", elements=ELEMENTS, cutoff=4.0, n_features=8, n_layers=1, n_basis=6,
                       avg_num_neighbors=6.0, max_ell=1, correlation=2, radial_mlp=[8], mlp_irreps=4).double()
    members = [MLIPCalculator(newtonnet(0)), MLIPCalculator(mace.eval())]
    calc = CommitteeCalculator(members)
    assert calc.stacked is None and "'mace' model" in calc.evaluation
    atoms = frames()[1]
    own = [results(m, atoms) for m in members]
    r = results(calc, atoms)
    np.testing.assert_allclose(r["member_energies"], [o["energy"] for o in own], **TIGHT)
    np.testing.assert_allclose(r["stress"], np.mean([o["stress"] for o in own], axis=0), **TIGHT)
    assert r["energy_std"] == pytest.approx(np.std([o["energy"] for o in own]), rel=1e-12)


def test_a_compiled_member_or_unknown_weights_do_not_stack():
    model = newtonnet(0)
    compiled = newtonnet(1)
    compiled.atomic_energies = lambda *args: None  # what MLIPCalculator(compile=True) sets
    assert "torch.compile" in stacking_obstacle([model, compiled])
    other = newtonnet(1)
    other.register_buffer("new_weight", torch.ones(2))
    assert "other weights" in stacking_obstacle([model, other])
    model.register_buffer("new_weight", torch.ones(2))  # a weight NewtonNet gained: never silently left out
    with pytest.raises(ValueError, match="new_weight"):
        StackedNewtonNet([model, other])


def test_batch_results_of_several_frames_equal_each_frame_alone():
    """What batched MD replicas of a committee get: per frame, the results of that frame alone."""
    calc = committee([newtonnet(seed, zbl=True) for seed in range(3)])
    data = frames()
    graph = collate([graph_from_atoms(a, ELEMENTS, calc.neighbors, dtype=torch.float64) for a in data])
    batch = calc.batch_results(graph, stress=False)
    assert len(batch) == len(data)
    for atoms, got in zip(data, batch):
        alone = results(calc, atoms)
        assert set(got) == set(alone) - {"stress"}
        for key in got:
            np.testing.assert_allclose(got[key], alone[key], **TIGHT, err_msg=key)

"""``ffpt export committee.json``: one package of the stacked members gives the eager committee's results
(mean, spread, members' own predictions); ``ffpt md`` and ``ffpt eval`` take it; committees that do not
stack are refused with exit status 2 and one line."""

import json

import ase.io
import numpy as np
import pytest
import torch
from ase.build import molecule

import ffpt
from ffpt.cli import main
from ffpt.data import set_labels, write_frames
from ffpt.models import NewtonNet, save_model
from ffpt.models.calculator import MLIPCalculator
from ffpt.models.committee import CommitteeCalculator, ExportedCommittee, write_committee_file
from ffpt.models.exported import ExportedCalculator
from ffpt.models.model_file import ModelFileError
from ffpt.errors import UserError
from ffpt.simulate.uncertainty import is_committee

TOL = 500 * np.finfo(np.float32).eps  # float32 package against the eager float32 committee, relative


def member(seed, **options):
    """A tiny float32 NewtonNet (ZBL prior with an exclusive core); members differ visibly."""
    torch.manual_seed(seed)
    hparams = dict(cutoff=4.0, n_features=8, n_layers=1, n_basis=8, zbl=True, zbl_radius_scale={"H": 1.0},
                   zbl_exclusive_core=True) | options
    model = NewtonNet(elements=[1, 6, 8], **hparams)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
        model.references.copy_(torch.tensor([-13.6, -1029.0, -2041.0]) + torch.randn(3))
        model.energy_scale.fill_(0.5 + 0.3 * seed)
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(members, committee file, package): three members exported once by the verb (float32)."""
    root = tmp_path_factory.mktemp("export_committee")
    models = [member(seed) for seed in range(3)]
    committee = write_committee_file(root / "committee.json",
                                     [save_model(m, root / f"m{k}.pt") for k, m in enumerate(models)])
    package = root / "committee.pt2"
    assert main(["export", str(committee), "--out", str(package)]) == 0
    return models, committee, package


def frames():
    """Ethanol (9 atoms), two ethanols within the cutoff (18 atoms), a periodic water box (stress)."""
    ethanol = molecule("CH3CH2OH")
    ethanol.rattle(0.05, seed=1)
    dimer = ethanol.copy() + ethanol.copy()
    dimer.positions[len(ethanol):] += [3.0, 0.5, 0.0]
    box = molecule("H2O") + molecule("H2O")
    box.positions[3:] += [1.6, 1.4, 0.2]
    box.cell, box.pbc = [3.6, 3.8, 4.0], True
    box.rattle(0.05, seed=2)
    return [ethanol, dimer, box]


def results(calc, atoms):
    atoms = atoms.copy()
    calc.calculate(atoms, ["energy", "forces"] + (["stress"] if atoms.pbc.all() else []))
    return dict(calc.results)


@pytest.mark.slow
def test_exported_committee_gives_the_eager_committees_results(exported):
    models, _, package = exported
    calc = ffpt.load_calculator(package)
    assert isinstance(calc, ExportedCommittee) and len(calc) == 3 and calc.info["committee"] == 3
    assert is_committee(calc)  # MD's uncertainty observer takes it
    eager = CommitteeCalculator([MLIPCalculator(m) for m in models])
    assert eager.stacked is not None
    for atoms in frames():
        got, want = results(calc, atoms), results(eager, atoms)
        assert set(got) == set(want)  # the committee's results keys
        assert want["energy_std"] > 0.1 and want["forces_std_max"] > 0.1  # the members differ: can fail
        for key in want:  # a spread's round-off is that of the members' values it comes from
            source = {"energy_std": "member_energies", "forces_std": "member_forces",
                      "forces_std_max": "member_forces"}.get(key, key)
            scale = max(1.0, float(np.abs(want[source]).max()))
            np.testing.assert_allclose(got[key], want[key], rtol=0, atol=TOL * scale,
                                       err_msg=f"{atoms.get_chemical_formula()}: {key}")
        if atoms.pbc.all():
            assert np.abs(want["stress"]).max() > 1e-4


@pytest.mark.slow
def test_md_and_eval_take_an_exported_committee(exported, tmp_path, capsys):
    _, committee, package = exported
    ethanol = frames()[0]
    ethanol.write(tmp_path / "ethanol.xyz")
    assert main(["md", "--model", str(package), "--structure", str(tmp_path / "ethanol.xyz"), "--steps", "4",
                 "--save-every", "2", "--out", str(tmp_path / "md"), "--no-progress", "--temperature", "300"]) == 0
    last = ase.io.read(tmp_path / "md" / "trajectory.extxyz", index=-1)
    assert last.info["forces_std_max"] > 0.1 and last.arrays["forces_std"].shape == (9,)

    data = frames()[:2]
    for atoms in data:
        set_labels(atoms, -4000.0, np.zeros((len(atoms), 3)))
    write_frames(tmp_path / "data.extxyz", data)
    reports = []
    for model in (committee, package):
        out = tmp_path / f"{model.suffix[1:]}.json"
        assert main(["eval", str(model), str(tmp_path / "data.extxyz"), "--json", str(out)]) == 0
        reports.append(json.loads(out.read_text()))
    for key in ("energy_mae_mev_per_atom", "forces_mae_mev_per_a"):
        assert reports[0][key] > 1.0 and reports[1][key] == pytest.approx(reports[0][key], rel=1e-4)


@pytest.mark.slow
def test_an_exported_committee_is_not_a_member_nor_a_one_model_package(exported):
    _, _, package = exported
    with pytest.raises(UserError, match="cannot be a committee member"):
        ffpt.load_calculator([package, package])
    with pytest.raises(ModelFileError, match="a committee package"):
        ExportedCalculator(package)


def test_a_committee_that_does_not_stack_exits_2_with_one_line(tmp_path, capsys):
    paths = [save_model(member(0), tmp_path / "m0.pt"), save_model(member(1, n_features=12), tmp_path / "m1.pt")]
    committee = write_committee_file(tmp_path / "committee.json", paths)
    out = tmp_path / "committee.pt2"
    assert main(["export", str(committee), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not stack" in err and "n_features" in err
    assert not out.exists()


@pytest.mark.slow
def test_a_package_where_a_model_file_is_needed_is_refused_in_one_line(exported, capsys):
    """A package holds no weights to train or export again (read_model_file, as fine-tuning's init)."""
    _, _, package = exported
    assert main(["export", str(package), "--out", str(package.with_name("again.pt2"))]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(package) in err and "exported package" in err

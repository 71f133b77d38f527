"""Committee calculator: mean and spread equal numpy's over the members' own predictions."""

import json

import numpy as np
import pytest
import torch
from ase.build import molecule

import ffpt
from ffpt.cli import main
from ffpt.models import NewtonNet, save_model
from ffpt.models.committee import COMMITTEE_FILE, CommitteeCalculator, write_committee_file
from ffpt.models.model_file import ModelFileError

from helpers_physics import energy_forces


def _member(seed, elements=(1, 6, 8), cutoff=4.0):
    torch.manual_seed(seed)
    model = NewtonNet(elements=list(elements), cutoff=cutoff, n_features=8, n_layers=1, n_basis=8)
    model.references.copy_(torch.tensor([-13.6, -1029.0, -2041.0][: len(elements)]))
    model.energy_scale.fill_(0.7)
    return model


@pytest.fixture(scope="module")
def member_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("committee")
    return [save_model(_member(seed), root / f"m{seed}" / "model.pt") for seed in range(3)]


@pytest.fixture
def ethanol_frame():
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.05, seed=3)
    return atoms


def test_committee_mean_and_spread_equal_numpy_over_members(member_files, ethanol_frame):
    own = [energy_forces(ffpt.load_calculator(path), ethanol_frame) for path in member_files]
    energies = np.array([e for e, _ in own])
    forces = np.stack([f for _, f in own])
    assert energies.std() > 1e-3  # the members really differ, so the test can fail

    committee = ffpt.load_calculator(member_files)
    atoms = ethanol_frame.copy()
    atoms.calc = committee
    atoms.get_forces()
    r = committee.results
    np.testing.assert_allclose(r["energy"], energies.mean(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(r["forces"], forces.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(r["energy_std"], np.std(energies), atol=1e-6)
    per_atom = np.linalg.norm(np.std(forces, axis=0), axis=-1)  # std of each atom's force vector
    assert r["forces_std"].shape == (len(atoms),)
    np.testing.assert_allclose(r["forces_std"], per_atom, atol=1e-6)
    np.testing.assert_allclose(r["forces_std_max"], per_atom.max(), atol=1e-6)
    np.testing.assert_allclose(r["member_forces"], forces, atol=1e-6)
    assert atoms.get_potential_energy() == pytest.approx(energies.mean(), abs=1e-6)


def test_committee_of_identical_members_has_zero_disagreement(member_files, ethanol_frame):
    committee = ffpt.load_calculator([member_files[0]] * 3)
    atoms = ethanol_frame.copy()
    atoms.calc = committee
    single = energy_forces(ffpt.load_calculator(member_files[0]), ethanol_frame)
    assert atoms.get_potential_energy() == pytest.approx(single[0], abs=1e-6)
    assert committee.results["energy_std"] == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(committee.results["forces_std"], 0.0, atol=1e-9)


def test_committee_forces_are_minus_gradient_of_mean_energy(member_files, ethanol_frame):
    committee = ffpt.load_calculator(member_files, dtype=torch.float64)
    atoms = ethanol_frame.copy()
    atoms.calc = committee
    forces = atoms.get_forces()
    i, h = int(np.argmax(np.abs(forces[:, 0]))), 1e-4
    energies = []
    for sign in (1, -1):
        moved = atoms.copy()
        moved.calc = committee
        moved.positions[i, 0] += sign * h
        energies.append(moved.get_potential_energy())
    assert -(energies[0] - energies[1]) / (2 * h) == pytest.approx(forces[i, 0], rel=1e-5, abs=1e-6)


def test_committee_file_lists_members_relative_to_itself(member_files, ethanol_frame, tmp_path):
    path = write_committee_file(member_files[0].parent.parent / COMMITTEE_FILE, member_files)
    assert all(not m.startswith("/") for m in json.loads(path.read_text())["members"])
    committee = ffpt.load_calculator(path)
    assert isinstance(committee, CommitteeCalculator) and len(committee) == 3
    bad = tmp_path / "bad.json"
    bad.write_text('{"members": []}')
    with pytest.raises(ModelFileError, match="bad.json"):
        ffpt.load_calculator(bad)


def test_members_of_another_family_are_refused(member_files, tmp_path):
    other = save_model(_member(0, cutoff=5.0), tmp_path / "other.pt")
    with pytest.raises(ModelFileError, match="cutoff"):
        ffpt.load_calculator([member_files[0], other])
    with pytest.raises(ModelFileError, match="at least 2"):
        ffpt.load_calculator([member_files[0]])


def test_md_cli_takes_a_committee_and_reports_its_disagreement(member_files, tmp_path):
    start = molecule("CH3CH2OH")
    start.write(tmp_path / "start.xyz")
    out = tmp_path / "md"
    rc = main(["md", "--calculator", *map(str, member_files), "--structure", str(tmp_path / "start.xyz"),
               "--steps", "20", "--out", str(out), "--temperature", "300", "--ensemble", "langevin"])
    assert rc == 0
    stability = json.loads((out / "stability.json").read_text())
    uncertainty = stability["observed"]["uncertainty"]
    assert uncertainty["checks"] >= 2 and uncertainty["forces_std_max"]["max"] > 0
    import ase.io

    frames = ase.io.read(out / "trajectory.extxyz", index=":")
    assert all("forces_std_max" in f.info and f.arrays["forces_std"].shape == (9,) for f in frames)


def test_train_committee_bootstraps_members_and_warm_starts_them(emt_dataset, tmp_path, capsys):
    from ffpt.data.io import read_frames
    from ffpt.models.committee import read_committee_file

    train_path, valid_path = emt_dataset
    config = tmp_path / "cfg.yaml"
    config.write_text("model: {n_features: 8, n_layers: 1, n_basis: 4}\n"
                      "training: {progress_bar: false, max_epochs: 2}\n")
    out = tmp_path / "committee"
    assert main(["train", str(config), "--train", str(train_path), "--valid", str(valid_path),
                 "--committee", "2", "--out", str(out)]) == 0
    members = read_committee_file(out / "committee.json")
    assert [m.parent.name for m in members] == ["member_0", "member_1"]
    sets = [read_frames(out / f"member_{k}" / "train.extxyz") for k in range(2)]
    n = len(read_frames(train_path))
    for frames in sets:  # a resample with replacement: same size, repeated frames
        assert len(frames) == n
        assert len({f.positions.tobytes() for f in frames}) < n
    assert [f.positions.tobytes() for f in sets[0]] != [f.positions.tobytes() for f in sets[1]]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_frames"] == 15 and len(metrics["members"]) == 2

    # fine-tuning the committee: member k warm-starts from member k
    tuned = tmp_path / "tuned"
    assert main(["train", str(config), "--train", str(train_path), "--valid", str(valid_path), "--stage", "finetune",
                 "--init", str(out / "committee.json"), "--committee", "2", "--out", str(tuned)]) == 0
    from ffpt.models.model_file import read_model_file

    for k in range(2):
        parent = read_model_file(tuned / f"member_{k}" / "model.pt")["provenance"]["parent"]["path"]
        assert parent == str(members[k])
    assert main(["train", str(config), "--train", str(train_path), "--stage", "finetune",
                 "--init", str(out / "committee.json"), "--committee", "3", "--out", str(tmp_path / "x")]) == 2
    assert "committee of 2 members, cannot warm-start 3" in capsys.readouterr().err


def test_eval_takes_a_committee_file(member_files, emt_dataset, tmp_path):
    from ffpt.data.io import read_frames
    from ffpt.models.inference import calculator_predictions
    from ffpt.observables.errors import error_table

    path = write_committee_file(tmp_path / COMMITTEE_FILE, member_files)
    _, valid = emt_dataset
    assert main(["eval", str(path), str(valid), "--json", str(tmp_path / "e.json")]) == 0
    report = json.loads((tmp_path / "e.json").read_text())
    frames = read_frames(valid)
    expected = error_table(frames, *calculator_predictions(ffpt.load_calculator(path), frames)).as_dict()
    assert report["forces_mae_mev_per_a"] == pytest.approx(expected["forces_mae_mev_per_a"])

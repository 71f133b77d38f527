"""Data in users' formats: key mapping on extxyz, sGDML/MD17 npz and ASE databases with units, and
``ffpt eval`` on several files (errors per file and config_type, predictions written back)."""

from __future__ import annotations

import json
from pathlib import Path

import ase.db
import ase.io
import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator
from conftest import emt_frames
from test_cli_errors import tiny_model

from ffpt import keys
from ffpt.cli import main
from ffpt.data import DataError, energy_of, forces_of, read_frames, write_frames
from ffpt.data.formats import DataFormat
from ffpt.data.importers import write_npz


def assert_same_frames(got, want, rtol=1e-10, atol=1e-12):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert list(a.numbers) == list(b.numbers)
        np.testing.assert_allclose(a.positions, b.positions, rtol=rtol, atol=atol)
        assert energy_of(a) == pytest.approx(energy_of(b), rel=rtol, abs=atol)
        np.testing.assert_allclose(forces_of(a), forces_of(b), rtol=rtol, atol=atol)


def write_with_ase_keys(path: Path, frames, charge_key: str | None = None) -> Path:
    """The frames with labels under ASE's/MACE's plain ``energy``/``forces`` keys."""
    out = []
    for atoms in frames:
        a = atoms.copy()
        a.calc = SinglePointCalculator(a, energy=energy_of(atoms), forces=forces_of(atoms))
        del a.info[keys.ENERGY], a.arrays[keys.FORCES]
        if charge_key:
            a.info[charge_key] = 0
        out.append(a)
    ase.io.write(path, out, format="extxyz")
    assert "REF_energy" not in path.read_text() and "energy=" in path.read_text()
    return path


@pytest.fixture(scope="module")
def frames():
    return emt_frames(names=("H2O",), n=4)


def test_key_mapping_reads_the_same_frames_as_ffpt_keys(tmp_path, frames):
    ref = read_frames(write_frames(tmp_path / "ref.extxyz", frames))
    path = write_with_ase_keys(tmp_path / "plain.extxyz", frames, charge_key="total_charge")
    fmt = DataFormat(energy_key="energy", forces_key="forces", charge_key="total_charge")
    got = read_frames(path, fmt=fmt)
    assert_same_frames(got, ref)
    assert all(a.info[keys.CHARGE] == 0 and "total_charge" not in a.info for a in got)
    with pytest.raises(DataError, match=r"plain.extxyz, frame 0: missing key 'REF_energy'"):
        read_frames(path)


def test_extxyz_units_are_converted(tmp_path, frames):
    from ase.units import Bohr, Hartree

    scaled = []
    for atoms in frames:
        a = atoms.copy()
        a.positions /= Bohr
        a.info[keys.ENERGY] = energy_of(atoms) / Hartree
        a.arrays[keys.FORCES] = forces_of(atoms) / (Hartree / Bohr)
        scaled.append(a)
    got = read_frames(write_frames(tmp_path / "au.extxyz", scaled),
                      fmt=DataFormat(energy_unit="Hartree", length_unit="bohr"))
    assert_same_frames(got, frames, rtol=1e-6, atol=1e-6)  # extxyz keeps 8 decimals (of Hartree/bohr)


@pytest.mark.parametrize("energy_unit, length_unit", [("kcal/mol", "bohr"), ("kJ/mol", "nm"), ("eV", "A")])
def test_npz_round_trips_units(tmp_path, frames, energy_unit, length_unit):
    path = write_npz(tmp_path / "md17.npz", frames, energy_unit, length_unit)
    with np.load(path) as data:
        assert str(data["e_unit"]) == energy_unit and data["R"].shape == (4, 3, 3)
    assert_same_frames(read_frames(path), frames)  # units the file states
    # units given by the flags for a file that does not state them (MD17 as published)
    with np.load(path) as data:
        bare = {k: data[k] for k in ("R", "z", "E", "F")}
    np.savez(tmp_path / "bare.npz", **bare)
    assert_same_frames(read_frames(tmp_path / "bare.npz",
                                   fmt=DataFormat(energy_unit=energy_unit, length_unit=length_unit)), frames)


def test_npz_errors_name_the_file_and_key(tmp_path, frames):
    path = write_npz(tmp_path / "md17.npz", frames, "kcal/mol", "A")
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    np.savez(tmp_path / "nounit.npz", **{k: v for k, v in arrays.items() if k != "e_unit"})
    with pytest.raises(DataError, match=r"nounit.npz: .*energy_unit"):
        read_frames(tmp_path / "nounit.npz")
    np.savez(tmp_path / "noforces.npz", **{k: v for k, v in arrays.items() if k != "F"})
    with pytest.raises(DataError, match=r"noforces.npz: missing array 'F'"):
        read_frames(tmp_path / "noforces.npz")
    assert len(read_frames(tmp_path / "noforces.npz", require_labels=False)) == 4
    (tmp_path / "frames.cif").write_text("")
    with pytest.raises(DataError, match=r"frames.cif: unknown extension '.cif'"):
        read_frames(tmp_path / "frames.cif")


def test_ase_db_round_trips(tmp_path, frames):
    with ase.db.connect(tmp_path / "calc.db") as db:  # results of a calculator, as ASE stores them
        for atoms in frames:
            a = atoms.copy()
            a.calc = SinglePointCalculator(a, energy=energy_of(atoms), forces=forces_of(atoms))
            db.write(a, config_type="md")
    got = read_frames(tmp_path / "calc.db")
    assert_same_frames(got, frames)
    assert all(a.info[keys.CONFIG_TYPE] == "md" for a in got)
    with ase.db.connect(tmp_path / "kvp.db") as db:  # labels as key-value pairs and data under user keys
        for atoms in frames:
            db.write(atoms.copy(), dft_energy=energy_of(atoms), data={"dft_forces": forces_of(atoms)})
    assert_same_frames(read_frames(tmp_path / "kvp.db", fmt=DataFormat(energy_key="dft_energy",
                                                                       forces_key="dft_forces")), frames)
    with pytest.raises(DataError, match=r"kvp.db, frame 0: missing key 'REF_energy'"):
        read_frames(tmp_path / "kvp.db")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("model") / "tiny.pt")


def test_eval_on_two_files_reports_per_file_and_config_type(tmp_path, model, capsys):
    frames = emt_frames(n=6)
    for k, atoms in enumerate(frames):
        atoms.info[keys.CONFIG_TYPE] = "md" if k % 2 else "nm"
    a = write_frames(tmp_path / "a.extxyz", frames[:4])
    b = write_npz(tmp_path / "b.npz", emt_frames(names=("CH4",), n=2), "kcal/mol", "bohr")
    out, pred = tmp_path / "e.json", tmp_path / "pred.extxyz"
    assert main(["eval", str(model), str(a), str(b), "--json", str(out), "--predictions", str(pred)]) == 0
    report = json.loads(out.read_text())
    assert report["n_frames"] == 6 and report["data"] == [str(a), str(b)]
    assert {k: v["n_frames"] for k, v in report["per_file"].items()} == {str(a): 4, str(b): 2}
    assert {k: v["n_frames"] for k, v in report["per_config_type"].items()} == {"nm": 2, "md": 2, "-": 2}
    assert "per_channel" not in report
    printed = capsys.readouterr().out
    assert "config_type md" in printed and f"file {b}"[-40:] in printed
    written = ase.io.read(pred, ":")
    assert len(written) == 6 and all(keys.PREDICTED_ENERGY in w.info and keys.PREDICTED_FORCES in w.arrays for w in written)
    e_err = [abs(w.info[keys.PREDICTED_ENERGY] - w.info[keys.ENERGY]) / len(w) for w in written]
    assert 1e3 * np.mean(e_err) == pytest.approx(report["energy_mae_mev_per_atom"], rel=1e-6)


def test_eval_energy_and_forces_keys(tmp_path, model, capsys):
    frames = emt_frames(n=3)
    plain = write_with_ase_keys(tmp_path / "plain.extxyz", frames)
    ref = write_frames(tmp_path / "ref.extxyz", frames)
    out = tmp_path / "plain.json"
    assert main(["eval", str(model), str(plain), "--energy-key", "energy", "--forces-key", "forces",
                 "--json", str(out)]) == 0
    assert main(["eval", str(model), str(ref), "--json", str(tmp_path / "ref.json")]) == 0
    got, want = json.loads(out.read_text()), json.loads((tmp_path / "ref.json").read_text())
    assert got["energy_mae_mev_per_atom"] == pytest.approx(want["energy_mae_mev_per_atom"], rel=1e-6)
    capsys.readouterr()
    assert main(["eval", str(model), str(plain), "--energy-key", "E_dft", "--forces-key", "forces",
                 "--json", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("ffpt eval: error:") == 1 and "'E_dft'" in err and "plain.extxyz, frame 0" in err
    assert "Traceback" not in err


def test_format_keys_in_configs(tmp_path):
    from ffpt.jobs.eval import EvalConfig
    from ffpt.teachers.runner import LabelConfig
    from ffpt.training.config import TrainConfig

    train = TrainConfig(data={"train": "t.extxyz", "energy_key": "energy", "energy_unit": "kcal/mol"})
    assert train.data.energy_key == "energy"
    assert EvalConfig(model="m.pt", data="a.extxyz", forces_key="forces").data == [Path("a.extxyz")]
    assert LabelConfig(data="a.npz", out="o.extxyz", teacher="uff", spin_key="mult").spin_key == "mult"
    with pytest.raises(ValueError, match="unknown energy unit 'kcal'"):
        EvalConfig(model="m.pt", data="a.extxyz", energy_unit="kcal")


def test_train_and_label_take_the_same_flags(tmp_path, capsys):
    frames = emt_frames(names=("H2O", "CH4"), n=12)  # molecules UFF can type when distorted
    plain = write_with_ase_keys(tmp_path / "plain.extxyz", frames, charge_key="total_charge")
    assert main(["train", "--train", str(plain), "--energy-key", "energy", "--forces-key", "forces",
                 "--charge-key", "total_charge", "--out", str(tmp_path / "train"), "--max-epochs", "1",
                 "model.n_features=8", "model.n_layers=1", "training.progress_bar=false"]) == 0
    saved = (tmp_path / "train").glob("*.yaml")
    assert any("energy_key: energy" in p.read_text() for p in saved)
    out = tmp_path / "labelled.extxyz"
    assert main(["label", "--data", str(plain), "--charge-key", "total_charge", "--teacher", "uff",
                 "--out", str(out), "--no-progress"]) == 0
    labelled = read_frames(out)
    assert len(labelled) == 12 and all(a.info[keys.CHARGE] == 0 for a in labelled)
    capsys.readouterr()
    assert main(["train", "--train", str(plain), "--energy-key", "E_dft", "--out", str(tmp_path / "t2")]) == 2
    assert "'E_dft'" in capsys.readouterr().err

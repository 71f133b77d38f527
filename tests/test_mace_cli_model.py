"""A model file as ``mace_run_train`` writes it (``torch.save`` of a ``mace.modules`` model, ``.model``) is
served by MACE's own calculator through ``ffpt.load_calculator``, ``ffpt eval`` and ``ffpt md``."""

import json
import warnings

import numpy as np
import pytest
import torch
from ase.build import molecule

pytest.importorskip("mace")

from ffpt import load_calculator  # noqa: E402
from ffpt.errors import UserError  # noqa: E402
from ffpt.models.mace import import_mace  # noqa: E402
from ffpt.models.mace_cli_model import is_mace_cli_model, pickled_class  # noqa: E402

ELEMENTS = [1, 6, 8]


def tiny_mace(seed: int = 0):
    """A small ScaleShiftMACE in float64, built as mace_run_train builds its models."""
    o3, _, Interaction = import_mace()
    from mace.modules import ScaleShiftMACE

    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ScaleShiftMACE(
            r_max=4.0, num_bessel=4, num_polynomial_cutoff=5, max_ell=2, interaction_cls=Interaction,
            interaction_cls_first=Interaction, num_interactions=2, num_elements=len(ELEMENTS),
            hidden_irreps=o3.Irreps("8x0e + 8x1o"), MLP_irreps=o3.Irreps("8x0e"),
            atomic_energies=np.array([-13.6, -1029.0, -2041.0]), avg_num_neighbors=4.0, atomic_numbers=ELEMENTS,
            correlation=2, gate=torch.nn.functional.silu, atomic_inter_scale=1.0, atomic_inter_shift=0.0,
        )
    return model.double()


def save_tiny_model(path, seed: int = 0):
    """Write a tiny MACE model file like mace_run_train's ``NAME.model`` (what the workflow tests use too)."""
    torch.save(tiny_mace(seed), path)
    return path


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("mace_cli") / "tiny.model")


def test_detected_without_unpickling(model_file, tmp_path):
    assert is_mace_cli_model(model_file)
    assert pickled_class(model_file) == "mace.modules.models.ScaleShiftMACE"
    other = tmp_path / "dict.model"
    torch.save({"weights": torch.zeros(3)}, other)
    assert pickled_class(other) != "mace.modules.models.ScaleShiftMACE"
    with pytest.raises(UserError, match=r"dict\.model: not a mace_run_train model file"):
        load_calculator(other)
    text = tmp_path / "text.model"
    text.write_text("hello")
    with pytest.raises(UserError, match=r"text\.model: not a mace_run_train model file \(not a torch.save"):
        load_calculator(text)
    with pytest.raises(UserError, match="no such model file"):
        load_calculator(tmp_path / "missing.model")


def test_calculator_energy_forces_are_the_models(model_file):
    """Forces are minus the finite-difference gradient of the energy; the energy is invariant under a
    rotation; the energy equals the saved model's own forward."""
    calc = load_calculator(model_file)
    atoms = molecule("CH3OH")
    atoms.calc = calc
    e0, f0 = atoms.get_potential_energy(), atoms.get_forces()
    assert np.isfinite(e0) and f0.shape == (6, 3)
    h = 1e-4
    for i, k in [(0, 0), (2, 1), (5, 2)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, k] += h
        minus.positions[i, k] -= h
        plus.calc = minus.calc = calc
        fd = -(plus.get_potential_energy() - minus.get_potential_energy()) / (2 * h)
        assert abs(fd - f0[i, k]) < 1e-6, (i, k, fd, f0[i, k])
    rotated = atoms.copy()
    rotated.rotate(37, "x", center="COM")
    rotated.calc = calc
    assert abs(rotated.get_potential_energy() - e0) < 1e-8
    from mace.data import AtomicData, config_from_atoms
    from mace.tools import AtomicNumberTable, torch_geometric

    model = torch.load(model_file, weights_only=False)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # MACE's data in the model's float type
    try:
        data = AtomicData.from_config(config_from_atoms(atoms), z_table=AtomicNumberTable(ELEMENTS), cutoff=4.0)
    finally:
        torch.set_default_dtype(previous)
    batch = next(iter(torch_geometric.dataloader.DataLoader([data], batch_size=1)))
    own = model(batch.to_dict(), training=False)["energy"].item()
    assert abs(own - e0) < 1e-8


def test_unknown_element_names_the_atom(model_file):
    atoms = molecule("CH3Cl")
    atoms.calc = load_calculator(model_file)
    with pytest.raises(UserError, match=r"atom 1 \(Cl\).*tiny\.model"):
        atoms.get_potential_energy()


def test_committee_and_compile_refused(model_file):
    with pytest.raises(UserError, match="committee member"):
        load_calculator([model_file, model_file])
    with pytest.raises(UserError, match="compile applies to ffpt model files"):
        load_calculator(model_file, compile=True)


def test_eval_and_md_cli(model_file, tmp_path, capsys):
    """``ffpt eval`` and ``ffpt md`` take the file (run in process: the CLI's main); a file that is no
    such model exits 2 with one line naming it."""
    from ase.io import write

    from ffpt.cli import main

    frames = []
    calc = load_calculator(model_file)
    for k in range(3):
        atoms = molecule("CH3OH")
        atoms.rattle(0.02, seed=k)
        atoms.calc = calc
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = None
        atoms.info["REF_energy"], atoms.arrays["REF_forces"] = energy + 0.06, forces  # 10 meV/atom off
        frames.append(atoms)
    data = tmp_path / "data.extxyz"
    write(data, frames)
    assert main(["eval", "--model", str(model_file), "--data", str(data), "--json", str(tmp_path / "errors.json")]) == 0
    errors = json.loads((tmp_path / "errors.json").read_text())
    assert errors["energy_mae_mev_per_atom"] == pytest.approx(10.0, abs=1e-4)  # the offset of the labels
    assert errors["forces_mae_mev_per_a"] < 1e-3
    structure = tmp_path / "start.xyz"
    write(structure, molecule("CH3OH"))
    assert main(["md", "--calculator", str(model_file), "--structure", str(structure), "--steps", "10",
                 "--no-progress", "--out", str(tmp_path / "md")]) == 0
    assert json.loads((tmp_path / "md" / "stability.json").read_text())
    bad = tmp_path / "bad.model"
    bad.write_text("not a model")
    capsys.readouterr()
    assert main(["eval", "--model", str(bad), "--data", str(data)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.model: not a mace_run_train model file" in err[0]

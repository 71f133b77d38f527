"""A model trained by ``mace_run_train`` (``NAME.model``) converts to ffpt's MACE with the same energy and
forces as MACE's own calculator; what ffpt's MACE cannot reproduce is refused in one line (exit 2). The
export of a converted model is tested in test_export_mace.py (one compile per session)."""

import warnings

import numpy as np
import pytest
import torch
from ase.build import molecule

from ffpt.cli import main

from helpers_physics import energy_forces
from test_mace import needs_mace

pytestmark = [needs_mace, pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")]

ELEMENTS = [1, 6, 8]
E0 = [-13.6, -1029.0, -2041.0]  # eV


def mace_run_train_model(scale_shift=True, n_layers=2, residual_first=False, seed=0, **overrides):
    """A small float64 mace-torch model as ``mace_run_train`` builds it (its defaults: no reduced CG;
    ``--model=MACE`` gives the first interaction no residual path), with scale 0.7 and shift -0.3 eV/atom
    for ScaleShiftMACE."""
    from ffpt.models.mace import import_mace

    o3, _, residual = import_mace()
    from mace.modules import MACE, RealAgnosticInteractionBlock, ScaleShiftMACE

    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # mace_run_train --default_dtype=float64
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kwargs = dict(
                r_max=4.0, num_bessel=6, num_polynomial_cutoff=5, max_ell=2, interaction_cls=residual,
                interaction_cls_first=residual if residual_first else RealAgnosticInteractionBlock,
                num_interactions=n_layers, num_elements=len(ELEMENTS), hidden_irreps=o3.Irreps("8x0e + 8x1o"),
                MLP_irreps=o3.Irreps("8x0e"), atomic_energies=np.array(E0), avg_num_neighbors=6.0,
                atomic_numbers=ELEMENTS, correlation=2, gate=torch.nn.functional.silu, radial_MLP=[16, 16],
                use_reduced_cg=False, **overrides,
            )
            if scale_shift:
                return ScaleShiftMACE(atomic_inter_scale=0.7, atomic_inter_shift=-0.3, **kwargs).eval()
            return MACE(**kwargs).eval()
    finally:
        torch.set_default_dtype(previous)


def molecules():
    """Ethanol (9 atoms) and two acetic acids 3 A apart (16 atoms, more edges per atom), rattled."""
    small = molecule("CH3CH2OH")
    small.rattle(0.05, seed=1)
    pair = molecule("CH3COOH") + molecule("CH3COOH")
    pair.positions[8:] += [3.0, 0.5, 0.0]
    pair.rattle(0.05, seed=2)
    return [small, pair]


@pytest.mark.parametrize("scale_shift", [False, True], ids=["MACE", "ScaleShiftMACE"])
def test_converted_model_reproduces_mace_calculator(scale_shift, tmp_path):
    """Energy and forces of the converted model equal MACE's own ASE calculator's (float64) on two sizes;
    MACE's E0s, scale and shift are ffpt's references and energy scale, and no ffpt prior is on."""
    import ffpt
    from ffpt.models.calculator import MLIPCalculator
    from ffpt.models.mace_convert import convert_mace_file

    path = tmp_path / "tiny.model"
    torch.save(mace_run_train_model(scale_shift), path)
    model = convert_mace_file(path)
    assert model.repulsion is None and model.hparams()["reduced_cg"] is False
    assert model.hparams()["residual_first"] is False and model.hparams()["n_layers"] == 2
    scale, shift = (0.7, -0.3) if scale_shift else (1.0, 0.0)
    assert float(model.energy_scale) == scale
    np.testing.assert_allclose(model.references.numpy(), np.array(E0) + shift, rtol=0, atol=1e-12)
    assert model.provenance["converted_from"] == str(path)
    theirs, ours = ffpt.load_calculator(path), MLIPCalculator(model)
    for atoms in molecules():
        e0, f0 = energy_forces(theirs, atoms)
        e1, f1 = energy_forces(ours, atoms)
        assert np.abs(f0).max() > 1e-2  # forces not trivially zero
        assert abs(e1 - e0) <= 1e-8, (len(atoms), e0, e1)
        np.testing.assert_allclose(f1, f0, rtol=0, atol=1e-8)


def test_residual_first_interaction_converts(tmp_path):
    """``--interaction_first=RealAgnosticResidualInteractionBlock`` (the ScaleShiftMACE CLI default) maps to
    ``residual_first``; the model file written by ``save_model`` rebuilds the same model."""
    from ffpt.models import NeighborListBuilder, graph_from_atoms, save_model
    from ffpt.models.mace_convert import convert_mace_file, mace_energy_forces
    from ffpt.models.model_file import load_model

    path = tmp_path / "residual.model"
    mace = mace_run_train_model(residual_first=True)
    torch.save(mace, path)
    model = convert_mace_file(path)
    assert model.hparams()["residual_first"] is True
    reloaded = load_model(save_model(model, tmp_path / "converted.pt"))
    atoms = molecules()[1]
    energy, forces = mace_energy_forces(mace, atoms)
    pred = reloaded(graph_from_atoms(atoms, reloaded.elements, NeighborListBuilder(reloaded.cutoff),
                                     dtype=torch.float64))
    assert abs(float(pred.energy[0]) - energy) <= 1e-8
    torch.testing.assert_close(pred.forces, forces, rtol=0, atol=1e-8)


@pytest.mark.parametrize("overrides, reason", [
    (dict(pair_repulsion=True), "pair repulsion"),
    (dict(heads=["pt_head", "Default"]), "2 heads"),
    (dict(radial_type="gaussian"), "radial basis GaussianBasis"),
], ids=["pair_repulsion", "heads", "radial_type"])
def test_unconvertible_model_exits_2_with_one_line(overrides, reason, tmp_path, capsys):
    path = tmp_path / "other.model"
    torch.save(mace_run_train_model(**overrides), path)
    capsys.readouterr()
    assert main(["export", str(path), "--out", str(tmp_path / "x.pt2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other.model: cannot convert" in err[0] and reason in err[0], err
    assert not (tmp_path / "x.pt2").exists()


def test_model_out_needs_a_mace_run_train_file(tmp_path, capsys):
    from ffpt.models import save_model
    from test_mace import tiny_mace

    path = save_model(tiny_mace(), tmp_path / "model.pt")
    capsys.readouterr()
    assert main(["export", str(path), "--out", str(tmp_path / "x.pt2"), "--model-out", str(tmp_path / "y.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.pt: --model-out" in err[0], err

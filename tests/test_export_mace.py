"""``ffpt export`` of a MACE model file (here one trained by mace_run_train, converted on the way): the package
reproduces the eager model and MACE's own calculator on molecules of other sizes than the probe frames it
was traced on, and checks frames like the NewtonNet package."""

import os

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule
from filelock import FileLock

import ffpt
from ffpt.cli import main
from ffpt.models import NeighborListBuilder, graph_from_atoms
from ffpt.models.calculator import MLIPCalculator
from ffpt.models.exported import ExportedCalculator
from ffpt.models.model_file import load_model

from helpers_physics import energy_forces
from test_mace import needs_mace, tiny_mace
from test_mace_convert import mace_run_train_model

pytestmark = [needs_mace, pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(model, package path, source path): a tiny float64 MACE with one layer (half the traced graph of two,
    half the compile time; benchmarks/speed_export_mace.py exports the two-layer size through the same
    check) as mace_run_train writes it (``tiny.model``), exported by the verb with ``--model-out``; the
    model is the converted ffpt model file read back. Exported once for all pytest-xdist workers of a
    session (the directory above a worker's base temp is the session's; compiling takes minutes), and the
    only MACE export of the suite: it covers ffpt's MACE model files and mace_run_train's files alike."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "mace_export"
    root.mkdir(exist_ok=True)
    source, converted, package = root / "tiny.model", root / "tiny.pt", root / "model.pt2"
    with FileLock(str(root / "lock")):
        if not package.exists():
            torch.save(mace_run_train_model(n_layers=1), source)
            assert main(["export", str(source), "--out", str(package), "--model-out", str(converted)]) == 0
    return load_model(converted), package, source


def test_traceable_twin_is_plain_python_with_the_same_numbers(ethanol):
    """What export traces: no TorchScript left, same energy and forces, the original model untouched and
    e3nn's scripted spherical harmonics back in place after the context."""
    model = tiny_mace()  # imports e3nn the way ffpt does (its Wigner constants need a safe global)
    from e3nn.o3 import _spherical_harmonics as sh

    graph = graph_from_atoms(ethanol, model.elements, NeighborListBuilder(model.cutoff), dtype=torch.float64)
    expected = model(graph)
    scripted = sh._spherical_harmonics
    with model.traceable() as plain:
        assert not isinstance(sh._spherical_harmonics, torch.jit.ScriptFunction)
        assert not any(isinstance(m, torch.jit.ScriptModule) for m in plain.modules())
        assert any(isinstance(m, torch.jit.ScriptModule) for m in model.modules())
        got = plain(graph)
    assert sh._spherical_harmonics is scripted
    assert float(expected.forces.abs().max()) > 1e-3
    torch.testing.assert_close(got.energy, expected.energy, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(got.forces, expected.forces, rtol=1e-9, atol=1e-12)


@pytest.mark.slow
def test_package_reproduces_eager_mace_on_molecules_of_other_sizes(exported, ethanol):
    model, package, _ = exported
    compiled = ffpt.load_calculator(package)
    assert isinstance(compiled, ExportedCalculator)
    assert compiled.architecture == "mace" and compiled.dtype == torch.float64
    eager = MLIPCalculator(model)
    dimer = ethanol.copy() + ethanol.copy()
    dimer.positions[len(ethanol):] += [3.0, 0.5, 0.0]  # within the cutoff: more edges per atom
    water = molecule("H2O")  # fewer atoms than either probe frame
    sizes = set()
    for atoms in (ethanol, dimer, water):
        sizes.add((len(atoms), len(compiled.neighbors(atoms.positions, atoms.cell.array, atoms.pbc)[0][0])))
        e0, f0 = energy_forces(eager, atoms)
        e1, f1 = energy_forces(compiled, atoms)
        assert np.abs(f0).max() > 1e-3  # forces not trivially zero
        assert abs(e1 - e0) <= 1e-9 * abs(e0), (len(atoms), e0, e1)  # float64 round-off of ~1e4 eV totals
        np.testing.assert_allclose(f1, f0, rtol=0, atol=1e-7)
    assert len({n for n, _ in sizes}) == 3 and len({e for _, e in sizes}) == 3  # atom and edge counts differ


@pytest.mark.slow
def test_mace_package_refuses_elements_it_does_not_know(exported):
    _, package, _ = exported
    calc = ffpt.load_calculator(package)
    assert calc.elements == [1, 6, 8]
    neon = Atoms("NeH", positions=[[0, 0, 0], [0, 0, 1.0]])
    neon.calc = calc
    with pytest.raises(KeyError, match="Ne"):
        neon.get_potential_energy()


@pytest.mark.slow
def test_package_of_a_mace_run_train_file_reproduces_mace_calculator(exported, ethanol):
    """The package exported from ``tiny.model`` agrees with MACE's own calculator serving that file
    (float64) on two sizes; its metadata names the file and the conversion."""
    _, package, source = exported
    compiled, theirs = ffpt.load_calculator(package), ffpt.load_calculator(source)
    assert compiled.info["source"] == str(source)
    assert compiled.info["provenance"]["converted_from"] == str(source)
    dimer = ethanol.copy() + ethanol.copy()
    dimer.positions[len(ethanol):] += [3.0, 0.5, 0.0]
    for atoms in (ethanol, dimer):
        e0, f0 = energy_forces(theirs, atoms)
        e1, f1 = energy_forces(compiled, atoms)
        assert np.abs(f0).max() > 1e-2
        assert abs(e1 - e0) <= 1e-8, (len(atoms), e0, e1)
        np.testing.assert_allclose(f1, f0, rtol=0, atol=1e-7)

"""ffpt models in OpenMM through openmmml: ``MLPotential("ffpt", model=...)``.

OpenMM's energy and forces (kJ/mol, kJ/mol/nm) equal the ASE calculator's (eV, eV/A) converted with
``ffpt.units``, at the start and after 5 Verlet steps, and in a periodic box; an ML subset in a
mixed ML/MM System sees the model on the subset only; the ``openmmml.potentials`` entry point of
pyproject.toml is what openmmml discovers at import.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import numpy as np
import openmm
import pytest
from ase import Atoms
from ase.build import molecule
from openmm import app, unit
from openmmml import MLPotential
from test_cli_errors import tiny_model

from ffpt import load_calculator
from ffpt.models.calculator import UnknownElementError
from ffpt.models.potential import ModelInputError
from ffpt.units import KJ_PER_MOL, NM_PER_A

ROOT = Path(__file__).resolve().parents[1]
GROUP = "openmmml.potentials"


def _entry_point() -> EntryPoint:
    """The ``ffpt`` entry point of the group openmmml reads, as pyproject.toml declares it."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return EntryPoint("ffpt", project["entry-points"][GROUP]["ffpt"], GROUP)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    # register as openmmml does at import for installed entry points (this checkout may not be installed)
    MLPotential.registerImplFactory("ffpt", _entry_point().load()())
    return tiny_model(tmp_path_factory.mktemp("openmm") / "model.pt")


def _topology(*molecules):
    """One residue per ASE molecule; positions (A) of all atoms, in topology order."""
    top = app.Topology()
    chain = top.addChain()
    for mol in molecules:
        res = top.addResidue("MOL", chain)
        for z in mol.numbers:
            top.addAtom(app.Element.getByAtomicNumber(int(z)).symbol, app.Element.getByAtomicNumber(int(z)), res)
    return top, np.concatenate([m.positions for m in molecules])


def _context(system, positions_a):
    context = openmm.Context(system, openmm.VerletIntegrator(0.5 * unit.femtosecond),
                             openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions_a * NM_PER_A * unit.nanometer)
    return context


def _openmm_energy_forces(context, groups=-1):
    """Energy (kJ/mol), forces (kJ/mol/nm), positions (A) of ``context``."""
    s = context.getState(getEnergy=True, getForces=True, getPositions=True, groups=groups)
    return (s.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole),
            s.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer),
            s.getPositions(asNumpy=True).value_in_unit(unit.nanometer) / NM_PER_A)


def _ase_energy_forces(atoms, model_path):
    """The ASE calculator's energy and forces in OpenMM's units (kJ/mol, kJ/mol/nm)."""
    atoms = atoms.copy()
    atoms.calc = load_calculator(model_path)
    return atoms.get_potential_energy() / KJ_PER_MOL, atoms.get_forces() / KJ_PER_MOL / NM_PER_A


def test_openmm_steps_match_the_ase_calculator(model_path, ethanol):
    top, pos = _topology(ethanol)
    system = MLPotential("ffpt", model=str(model_path)).createSystem(top)
    context = _context(system, pos)
    e_omm, f_omm, _ = _openmm_energy_forces(context)
    e_ase, f_ase = _ase_energy_forces(ethanol, model_path)
    assert abs(f_ase).max() > 1.0  # an untrained model still has forces to compare
    np.testing.assert_allclose(e_omm, e_ase, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(f_omm, f_ase, rtol=1e-5, atol=1e-3)

    context.getIntegrator().step(5)
    e_omm, f_omm, moved = _openmm_energy_forces(context)
    assert np.abs(moved - pos).max() > 1e-6  # the atoms moved under the model's forces
    after = ethanol.copy()
    after.positions = moved
    e_ase, f_ase = _ase_energy_forces(after, model_path)
    np.testing.assert_allclose(e_omm, e_ase, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(f_omm, f_ase, rtol=1e-5, atol=1e-3)


def test_mixed_system_puts_the_model_on_the_ml_atoms_only(model_path, ethanol):
    water = molecule("H2O")
    water.positions += [4.0, 0.0, 0.0]
    top, pos = _topology(water, ethanol)
    mm = openmm.System()
    nonbonded = openmm.NonbondedForce()  # Coulomb + LJ between all atoms, no cutoff
    for atom in top.atoms():
        mm.addParticle(atom.element.mass)
        nonbonded.addParticle(0.3 if atom.element.symbol == "H" else -0.4, 0.3, 0.5)
    mm.addForce(nonbonded)
    ml_atoms = list(range(len(water), len(water) + len(ethanol)))
    mixed = MLPotential("ffpt", model=str(model_path)).createMixedSystem(top, mm, ml_atoms, forceGroup=1)
    e_ml, f_ml, _ = _openmm_energy_forces(_context(mixed, pos), groups={1})
    e_ase, f_ase = _ase_energy_forces(ethanol, model_path)
    np.testing.assert_allclose(e_ml, e_ase, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(f_ml[ml_atoms], f_ase, rtol=1e-5, atol=1e-3)
    assert np.all(f_ml[: len(water)] == 0)  # the water is left to the MM force field


def test_a_periodic_box_is_the_models_cell(model_path):
    waters = [molecule("H2O") for _ in range(3)]
    for i, w in enumerate(waters):
        w.positions += [2.0 * i, 0.3 * i, 0.0]  # the first and last water are neighbours across the box
    top, pos = _topology(*waters)
    top.setPeriodicBoxVectors(np.eye(3) * 0.6 * unit.nanometer)
    system = MLPotential("ffpt", model=str(model_path)).createSystem(top)
    e_omm, f_omm, _ = _openmm_energy_forces(_context(system, pos))
    box = Atoms(numbers=np.concatenate([w.numbers for w in waters]), positions=pos, cell=np.eye(3) * 6.0, pbc=True)
    e_ase, f_ase = _ase_energy_forces(box, model_path)
    np.testing.assert_allclose(e_omm, e_ase, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(f_omm, f_ase, rtol=1e-5, atol=1e-3)
    box.pbc = False
    assert abs(_ase_energy_forces(box, model_path)[0] - e_omm) > 0.1  # the images matter here


def test_inputs_the_model_cannot_take_are_user_errors(model_path, ethanol):
    with pytest.raises(ModelInputError, match="model=PATH"):
        MLPotential("ffpt")
    top, _ = _topology(molecule("NH3"))  # the tiny model knows H, C, O only
    with pytest.raises(UnknownElementError, match=r"OpenMM topology, atom 0 \(N\).*model.pt"):
        MLPotential("ffpt", model=str(model_path)).createSystem(top)
    top, _ = _topology(ethanol)  # a triplet for a model without spin input
    with pytest.raises(ModelInputError, match=r"OpenMM topology: spin multiplicity 3.*no spin input"):
        MLPotential("ffpt", model=str(model_path), spin=1).createSystem(top, spin=3)


def test_openmmml_discovers_the_entry_point(tmp_path):
    """An installed ffpt (here: a dist-info holding pyproject's entry point) registers "ffpt" at import."""
    ep = _entry_point()
    info = tmp_path / "ffpt_openmm_probe-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ffpt-openmm-probe\nVersion: 0\n")
    (info / "entry_points.txt").write_text(f"[{GROUP}]\nffpt = {ep.value}\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT / "src"),
                                                        os.environ.get("PYTHONPATH", "")])}
    code = ("from openmmml import MLPotential; from ffpt.models.openmm import FfptPotentialImplFactory as F; "
            "print(type(MLPotential._implFactories['ffpt']) is F)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "True", out.stderr[-2000:]

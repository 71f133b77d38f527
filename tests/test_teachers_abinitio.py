"""PySCF DFT and tblite GFN2-xTB teachers: gradients, invariances, reference values, failures."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.units import Bohr, Hartree
from pyscf import dft

from ffpt import teachers
from ffpt.data import DataError
from ffpt.teachers import LabelFailure
from ffpt.teachers.base import electronic_state
from ffpt.teachers.pyscf_dft import PySCFTeacher
from ffpt.teachers.xtb import GFN2Teacher

# cheap settings: tiny basis, plain integrals, no search for lower SCF states unless a test needs it
FAST = {"xc": "pbe", "basis": "sto-3g", "density_fit": False, "stability": False, "spin_flip_guess": False}


def directional_derivative(teacher, atoms: Atoms, direction: np.ndarray, h: float) -> float:
    """dE/ds along the unit ``direction`` by central differences, eV/A."""
    plus, minus = atoms.copy(), atoms.copy()
    plus.positions += h * direction
    minus.positions -= h * direction
    return (teacher.label(plus).energy - teacher.label(minus).energy) / (2 * h)


def random_direction(shape, seed: int) -> np.ndarray:
    d = np.random.default_rng(seed).normal(size=shape)
    return d / np.linalg.norm(d)


def rotation(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


# ---------------------------------------------------------------- electronic state from info


def test_electronic_state_defaults_and_errors():
    water, oh = molecule("H2O"), molecule("OH")
    assert electronic_state(water) == (0, 1)
    assert electronic_state(oh) == (0, 2)  # 9 electrons: lowest multiplicity is a doublet
    oh.info["charge"] = -1
    assert electronic_state(oh) == (0 - 1, 1)
    oh.info.update(charge=0, spin=4)
    assert electronic_state(oh) == (0, 4)
    oh.info["spin"] = 1
    with pytest.raises(DataError, match=r"frame HO: spin multiplicity 1 is impossible with 9 electrons"):
        electronic_state(oh)
    water.info["charge"] = 0.5
    with pytest.raises(DataError, match=r"frame H2O: info\['charge'\]=0.5 is not an integer"):
        electronic_state(water)


# ---------------------------------------------------------------- PySCF


def test_registry_builds_pyscf_with_provenance():
    teacher = teachers.get("pyscf", xc="pbe", basis="sto-3g", threads=1)
    assert isinstance(teacher, PySCFTeacher)
    info = teacher.info
    assert (info.name, info.level) == ("pyscf", "PBE/sto-3g")
    assert info.options["grids_level"] == 2 and info.options["nlcgrids_level"] == 1
    assert info.options["stability"] and info.options["spin_flip_guess"] and info.options["density_fit"]
    assert "threads" not in info.options  # does not change labels, so not in cache keys
    assert teachers.get("pyscf").info.level == "WB97X-V/cc-pvtz"
    with pytest.raises(TypeError, match="colour"):
        teachers.get("pyscf", colour="red")
    with pytest.raises(TypeError, match="density_fit"):
        teachers.get("pyscf", density_fit="false")


def test_pyscf_hartree_fock_h2_matches_szabo_ostlund():
    # H2 at R = 1.4 bohr, HF/STO-3G: E = -1.1167 hartree (Szabo & Ostlund, Modern Quantum Chemistry)
    h2 = Atoms("H2", positions=[[0, 0, 0], [0, 0, 1.4 * Bohr]])
    label = PySCFTeacher(xc="hf", basis="sto-3g", density_fit=False).label(h2)
    assert label.energy / Hartree == pytest.approx(-1.1167, abs=2e-4)
    # 1.4 bohr is longer than the STO-3G minimum (1.346 bohr): the atoms attract, along the bond
    assert label.forces[0, 2] > 0 > label.forces[1, 2]
    np.testing.assert_allclose(label.forces[:, :2], 0.0, atol=1e-8)
    np.testing.assert_allclose(label.forces.sum(axis=0), 0.0, atol=1e-8)


def test_pyscf_forces_are_minus_energy_gradient_closed_and_open_shell():
    # DFT grids do not move with the atoms (no grid response): agreement to a few meV/A
    for name, density_fit in (("H2O", True), ("OH", False)):
        atoms = molecule(name)
        teacher = PySCFTeacher(**{**FAST, "density_fit": density_fit})
        direction = random_direction(atoms.positions.shape, seed=1)
        forces = teacher.label(atoms).forces
        assert directional_derivative(teacher, atoms, direction, 2e-3) == pytest.approx(
            -np.sum(forces * direction), abs=5e-3
        )


def test_pyscf_open_shell_is_uks_and_spin_changes_the_state():
    teacher = PySCFTeacher(**FAST)
    oh = molecule("OH")
    doublet = teacher.scf(oh)
    assert isinstance(doublet, dft.uks.UKS) and doublet.mol.spin == 1
    anion = oh.copy()
    anion.info["charge"] = -1
    assert isinstance(teacher.scf(anion), dft.rks.RKS)
    quartet = oh.copy()
    quartet.info["spin"] = 4
    assert teacher.label(quartet).energy > doublet.e_tot * Hartree + 1.0  # an excited state, eV
    oh.info["spin"] = 3
    with pytest.raises(DataError, match="spin multiplicity"):
        teacher.label(oh)


def test_pyscf_is_an_ase_calculator_invariant_under_rotation():
    water = molecule("H2O")
    teacher = PySCFTeacher(**FAST)
    label = teacher.label(water)
    rotated = water.copy()
    rot = rotation(seed=3)
    rotated.positions = (water.positions - water.get_center_of_mass()) @ rot.T + [1.0, -2.0, 0.5]
    rotated.calc = teacher
    assert rotated.get_potential_energy() == pytest.approx(label.energy, abs=2e-4)
    np.testing.assert_allclose(rotated.get_forces(), label.forces @ rot.T, atol=5e-3)


def test_pyscf_unconverged_scf_is_a_failure_and_newton_fallback_rescues_it():
    water = molecule("H2O")
    reference = PySCFTeacher(**FAST).label(water).energy
    with pytest.raises(LabelFailure, match="not converged in 3 cycles"):
        PySCFTeacher(**FAST, max_cycle=3, fallback=False).label(water)
    rescued = PySCFTeacher(**FAST, max_cycle=3, fallback=True).label(water)
    assert rescued.energy == pytest.approx(reference, abs=1e-6)
    with pytest.raises(LabelFailure, match="Newton"):
        PySCFTeacher(**FAST, max_cycle=1, fallback=True).label(water)


def test_pyscf_stability_and_spin_flip_guess_find_lower_states_of_stretched_ho2():
    # HO2 with the H pulled 2 A away: the default UHF guess lands on a higher, unstable solution
    ho2 = Atoms("OOH", positions=[[0.4508, 0.2742, 0.0], [-0.6736, -0.1492, 0.0], [2.10, -1.30, 0.0]])
    hf = {**FAST, "xc": "hf", "threads": 1}  # one thread: the same SCF path on every run
    plain = PySCFTeacher(**hf).label(ho2).energy
    followed = PySCFTeacher(**{**hf, "stability": True}).label(ho2).energy
    flipped = PySCFTeacher(**{**hf, "spin_flip_guess": True}).label(ho2).energy
    both = PySCFTeacher(**{**hf, "stability": True, "spin_flip_guess": True}).label(ho2).energy
    assert followed < plain - 0.1 and flipped < plain - 0.1  # eV
    assert both <= min(followed, flipped) + 1e-6  # the lowest solution is kept


def test_pyscf_hydrogen_atom_hartree_fock_reference():
    # one electron, one orbital, nothing to rotate: HF/STO-3G gives -0.46658 hartree
    label = PySCFTeacher(xc="hf", basis="sto-3g").label(Atoms("H"))
    assert label.energy / Hartree == pytest.approx(-0.46658, abs=1e-5)
    np.testing.assert_allclose(label.forces, 0.0, atol=1e-10)


def test_pyscf_rejects_periodic_frames():
    box = molecule("H2O", cell=[5.0, 5.0, 5.0], pbc=True)
    with pytest.raises(LabelFailure, match="periodic"):
        PySCFTeacher(**FAST).label(box)


# ---------------------------------------------------------------- GFN2-xTB


def test_gfn2_reproduces_tblite_reference_energy():
    # tblite's documented example (positions in bohr): -31.716159156026254 hartree
    numbers = [1, 1, 6, 5, 1, 15, 8, 17, 13, 15, 5, 1, 9, 15, 1, 15]
    bohr = np.array([
        [+2.79274810283778, +3.82998228828316, -2.79287054959216],
        [-1.43447454186833, +0.43418729987882, +5.53854345129809],
        [-3.26268343665218, -2.50644032426151, -1.56631149351046],
        [+2.14548759959147, -0.88798018953965, -2.24592534506187],
        [-4.30233097423181, -3.93631518670031, -0.48930754109119],
        [+0.06107643564880, -3.82467931731366, -2.22333344469482],
        [+0.41168550401858, +0.58105573172764, +5.56854609916143],
        [+4.41363836635653, +3.92515871809283, +2.57961724984000],
        [+1.33707758998700, +1.40194471661647, +1.97530004949523],
        [+3.08342709834868, +1.72520024666801, -4.42666116106828],
        [-3.02346932078505, +0.04438199934191, -0.27636197425010],
        [+1.11508390868455, -0.97617412809198, +6.25462847718180],
        [+0.61938955433011, +2.17903547389232, -6.21279842416963],
        [-2.67491681346835, +3.00175899761859, +1.05038813614845],
        [-4.13181080289514, -2.34226739863660, -3.44356159392859],
        [+2.85007173009739, -2.64884892757600, +0.71010806424206],
    ])
    energy = GFN2Teacher().label(Atoms(numbers=numbers, positions=bohr * Bohr)).energy
    assert energy / Hartree == pytest.approx(-31.716159156026254, abs=1e-6)


def test_gfn2_molecule_forces_invariances_and_silence(capfd):
    ethanol = molecule("CH3CH2OH")
    ethanol.rattle(0.05, seed=4)
    teacher = teachers.get("gfn2", accuracy=0.01)  # tight SCC for finite differences
    assert (teacher.info.name, teacher.info.level) == ("gfn2", "GFN2-xTB")
    label = teacher.label(ethanol)
    assert capfd.readouterr().out == ""
    direction = random_direction(ethanol.positions.shape, seed=5)
    assert directional_derivative(teacher, ethanol, direction, 1e-3) == pytest.approx(
        -np.sum(label.forces * direction), abs=1e-5
    )
    np.testing.assert_allclose(label.forces.sum(axis=0), 0.0, atol=1e-6)
    rot = rotation(seed=6)
    turned = ethanol.copy()
    turned.positions = ethanol.positions @ rot.T + 3.0
    moved = teacher.label(turned)
    assert moved.energy == pytest.approx(label.energy, abs=1e-7)
    np.testing.assert_allclose(moved.forces, label.forces @ rot.T, atol=1e-6)


def test_gfn2_periodic_forces_stress_and_lattice_translation():
    box = Atoms(
        "OH2OH2",
        positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0], [2.0, 2.0, 2.0], [2.96, 2.0, 2.0], [1.76, 2.93, 2.0]],
        cell=[[4.2, 0.3, 0.0], [0.0, 4.0, 0.0], [0.2, 0.0, 4.4]],
        pbc=True,
    )
    box.rattle(0.05, seed=7)
    teacher = GFN2Teacher()
    box.calc = teacher
    energy, forces, stress = box.get_potential_energy(), box.get_forces(), box.get_stress(voigt=False)
    # stress = (1/V) dE/d(strain): central differences along one symmetric strain
    strain = np.array([[0.01, 0.004, -0.003], [0.004, -0.02, 0.006], [-0.003, 0.006, 0.015]])
    h, e = 1e-2, []
    for sign in (1, -1):
        strained = box.copy()
        strained.set_cell(box.cell.array @ (np.eye(3) + sign * h * strain), scale_atoms=True)
        e.append(teacher.label(strained).energy)
    assert (e[0] - e[1]) / (2 * h) / box.get_volume() == pytest.approx(np.sum(stress * strain), rel=2e-3)
    direction = random_direction(box.positions.shape, seed=8)
    assert directional_derivative(teacher, box, direction, 1e-3) == pytest.approx(
        -np.sum(forces * direction), abs=1e-5
    )
    shifted = box.copy()
    shifted.positions += box.cell[0] + 0.37 * box.cell[2]  # a whole-cell shift changes nothing
    assert teacher.label(shifted).energy == pytest.approx(energy, abs=1e-7)


def test_gfn2_spin_charge_and_failures():
    teacher = GFN2Teacher()
    oh = molecule("OH")
    doublet = teacher.label(oh).energy
    quartet = oh.copy()
    quartet.info["spin"] = 4
    assert teacher.label(quartet).energy > doublet
    oh.info["spin"] = 1
    with pytest.raises(DataError, match="spin multiplicity"):
        teacher.label(oh)
    with pytest.raises(LabelFailure, match="not converged"):
        GFN2Teacher(max_iter=1).label(molecule("H2O"))
    slab = molecule("H2O", cell=[5.0, 5.0, 5.0], pbc=[True, True, False])
    with pytest.raises(LabelFailure, match="pbc"):
        teacher.label(slab)

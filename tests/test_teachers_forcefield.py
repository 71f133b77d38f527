"""Classical force-field teachers (RDKit MMFF94/UFF, OpenMM SPC/Fw), evaluated per isolated molecule."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import molecule

from ffpt import teachers
from ffpt.data import DataError, isolate_molecules
from ffpt.teachers.topology import Topology, TypingError
from ffpt.teachers.water import KB_KCAL, KTHETA_KCAL, R0, THETA0_DEG
from helpers_physics import finite_difference_forces


def water(o=(0.0, 0.0, 0.0), r=0.98, angle=106.0, axis=0.0) -> Atoms:
    """A water molecule with O at ``o``, bond length ``r`` (A), HOH ``angle`` (deg), rotated by ``axis`` (deg)."""
    half = np.deg2rad(angle) / 2
    h = r * np.array([[np.sin(half), np.cos(half), 0.0], [-np.sin(half), np.cos(half), 0.0]])
    atoms = Atoms("OH2", positions=np.vstack([[0, 0, 0], h]))
    atoms.rotate(axis, "z")
    atoms.translate(o)
    return atoms


def distorted(atoms: Atoms, scale: float = 0.05, seed: int = 0) -> Atoms:
    out = atoms.copy()
    out.positions += np.random.default_rng(seed).normal(scale=scale, size=out.positions.shape)
    return out


def water_box(n_side: int = 2, spacing: float = 3.1, seed: int = 0) -> Atoms:
    """A periodic box of n_side^3 randomly oriented waters, shifted so molecules straddle the boundary."""
    rng = np.random.default_rng(seed)
    box = Atoms(cell=[n_side * spacing] * 3, pbc=True)
    for i in range(n_side):
        for j in range(n_side):
            for k in range(n_side):
                w = water(r=0.95 + 0.1 * rng.random(), angle=100 + 10 * rng.random())
                w.rotate(rng.normal(size=3), rng.uniform(0, 360))
                w.translate(np.array([i, j, k]) * spacing)
                box += w
    box.translate([0.2, 0.2, 0.2])  # H atoms of the first molecules cross the boundary
    box.wrap()
    return box


COMBUSTION = {
    "H": Atoms("H", positions=[[0, 0, 0]]),
    "O": Atoms("O", positions=[[0, 0, 0]]),
    "OH": Atoms("OH", positions=[[0, 0, 0], [0.97, 0, 0]]),
    "H2": Atoms("H2", positions=[[0, 0, 0], [0.74, 0, 0]]),
    "O2": Atoms("O2", positions=[[0, 0, 0], [1.21, 0, 0]]),
    "H2O": water(),
    "HO2": Atoms("HOO", positions=[[-0.2, 0.93, 0], [0, 0, 0], [1.33, 0, 0]]),
    "H2O2": molecule("H2O2"),
}


@pytest.mark.parametrize(
    "name, atoms",
    [
        ("mmff94", molecule("CH3CH2OH")),
        ("uff", molecule("CH3CH2OH")),
        ("uff", COMBUSTION["HO2"]),  # radical
        ("uff", COMBUSTION["O2"]),
        ("spcfw", water()),
    ],
    ids=["mmff94-ethanol", "uff-ethanol", "uff-HO2", "uff-O2", "spcfw-water"],
)
def test_forces_are_minus_energy_gradient(name, atoms):
    teacher = teachers.get(name)
    frame = distorted(atoms, seed=1)
    label = teacher.label(frame)
    assert np.abs(label.forces).max() > 0.1  # a distorted geometry has real forces to compare
    tolerance = 2e-5 * max(1, np.abs(label.forces).max())
    np.testing.assert_allclose(label.forces, finite_difference_forces(teacher, frame, h=1e-4), atol=tolerance)


@pytest.mark.parametrize("name", ["uff", "spcfw"])
def test_periodic_box_forces_are_minus_energy_gradient(name):
    box = water(o=(0.1, 5.9, 3.0), axis=30) + water(o=(3.0, 3.0, 5.9), r=1.05, angle=100, axis=-50)
    box.set_cell([6.0, 6.0, 6.0])
    box.pbc = True
    box.wrap()  # both molecules straddle a boundary
    teacher = teachers.get(name, ignore_cell=True)  # the cell joins the molecules cut by its boundary
    label = teacher.label(box)
    np.testing.assert_allclose(label.forces, finite_difference_forces(teacher, box, h=1e-4), atol=1e-4)


@pytest.mark.parametrize("name", ["mmff94", "uff"])
def test_molecules_far_apart_or_in_contact_get_identical_labels(name):
    ethanol = molecule("CH3CH2OH")
    o_eth = ethanol.positions[ethanol.numbers == 8][0]
    hydrogen_bonded = water(o=o_eth + [0.0, 0.0, 2.75])  # O...O 2.75 A, O-H...O hydrogen-bond contact
    far = water(o=o_eth + [0.0, 0.0, 30.0])
    teacher = teachers.get(name)
    near_label = teacher.label(ethanol + hydrogen_bonded)
    far_label = teacher.label(ethanol + far)
    assert len(Topology.perceive(ethanol + hydrogen_bonded).molecules) == 2
    assert near_label.energy == pytest.approx(far_label.energy, abs=1e-10)
    np.testing.assert_allclose(near_label.forces, far_label.forces, atol=1e-10)
    alone = teacher.label(ethanol).energy + teacher.label(hydrogen_bonded).energy
    assert near_label.energy == pytest.approx(alone, abs=1e-10)


@pytest.mark.parametrize("name", ["uff", "spcfw"])
def test_water_box_energy_is_sum_over_isolated_molecules(name):
    """With ``ignore_cell`` (a periodic frame is refused without it: see the next test)."""
    box = water_box()
    teacher = teachers.get(name, ignore_cell=True)
    label = teacher.label(box)
    molecules = isolate_molecules(box)
    assert len(molecules) == 8
    energy = 0.0
    forces = np.zeros((len(box), 3))
    for mol in molecules:
        mol_label = teacher.label(mol)
        energy += mol_label.energy
        forces[mol.info["parent_atoms"]] = mol_label.forces
    assert abs(label.energy) > 1e-3
    assert label.energy == pytest.approx(energy, rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(label.forces, forces, atol=1e-10)


def test_spcfw_matches_the_published_potential():
    teacher = teachers.get("spcfw")
    rest = water(r=R0, angle=THETA0_DEG)
    label = teacher.label(rest)
    assert label.energy == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(label.forces, 0.0, atol=1e-9)
    frame = water(r=1.05, angle=104.0)
    expected = (
        2 * 0.5 * KB_KCAL * (1.05 - R0) ** 2 + 0.5 * KTHETA_KCAL * np.deg2rad(104.0 - THETA0_DEG) ** 2
    ) * units.kcal / units.mol
    assert teacher.label(frame).energy == pytest.approx(expected, rel=1e-9)


def test_every_combustion_species_is_typed_by_uff():
    teacher = teachers.get("uff")
    for name, atoms in COMBUSTION.items():
        label = teacher.label(atoms)
        assert np.isfinite(label.energy) and np.all(np.isfinite(label.forces)), name
        if len(atoms) == 1:  # a lone atom has no force-field term
            assert label.energy == 0.0 and not label.forces.any()
    assert teachers.get("spcfw").label(COMBUSTION["H2O"]).energy >= 0.0


def test_labels_are_invariant_under_rotation_and_translation():
    teacher = teachers.get("mmff94")
    frame = distorted(molecule("CH3CH2OH"), seed=3)
    moved = frame.copy()
    moved.rotate(73, (1, 2, 3))
    moved.translate([4.0, -2.0, 7.0])
    centred = [x.positions - x.positions.mean(0) for x in (frame, moved)]
    rotation = np.linalg.lstsq(centred[0], centred[1], rcond=None)[0]  # centred[0] @ rotation = centred[1]
    a, b = teacher.label(frame), teacher.label(moved)
    assert a.energy == pytest.approx(b.energy, abs=1e-9)
    np.testing.assert_allclose(a.forces @ rotation, b.forces, atol=1e-8)


def test_labels_do_not_depend_on_the_geometry_that_built_the_cache():
    target = distorted(molecule("CH3CH2OH"), scale=0.1, seed=5)
    fresh = teachers.get("uff").label(target)
    primed_teacher = teachers.get("uff")
    primed_teacher.label(distorted(molecule("CH3CH2OH"), scale=0.3, seed=6))
    primed = primed_teacher.label(target)
    assert fresh.energy == primed.energy
    np.testing.assert_array_equal(fresh.forces, primed.forces)


def test_untypable_molecules_are_refused_with_a_message_naming_them():
    ethanol = molecule("CH3CH2OH")
    frame = ethanol + Atoms("O2", positions=[[10, 0, 0], [11.21, 0, 0]])
    with pytest.raises(TypingError, match=r"mmff94: frame .*molecule O2 \(atoms \[9, 10\].*cannot be typed: MMFF94"):
        teachers.get("mmff94").label(frame)
    hypervalent = Atoms("CH6", positions=np.vstack([np.zeros(3), np.eye(3), -np.eye(3)]))
    with pytest.raises(TypingError, match=r"uff: frame CH6: molecule CH6 \(atoms \[0, 1, 2, 3, 4, 5, 6\].*no valid bond orders"):
        teachers.get("uff").label(hypervalent)
    with pytest.raises(TypingError, match=r"spcfw: frame .*molecule C2H6O \(atoms \[0, 1, 2, 3, 4, 5, 6, 7, 8\].*not a water"):
        teachers.get("spcfw").label(ethanol + water(o=(10, 0, 0)))


def test_reference_topology_keeps_bonds_of_a_reactive_geometry():
    reactant = COMBUSTION["HO2"]
    stretched = reactant.copy()
    stretched.positions[0] = [-0.6, 2.6, 0.0]  # H 2.67 A from its O: perceived as a lone atom
    perceived = teachers.get("uff").label(stretched)
    kept = teachers.get("uff", topology=reactant).label(stretched)
    assert not perceived.forces[0].any()
    pull = kept.forces[0] @ (stretched.positions[1] - stretched.positions[0])
    assert pull > 0.1  # the kept O-H term pulls H back toward its O
    assert kept.energy > perceived.energy + 0.5
    info = teachers.get("uff", topology=reactant).info
    assert info.name == "uff" and info.options["topology"] == [[0, 1], [1, 2]] and info.version


def test_reference_topology_must_match_the_frame():
    teacher = teachers.get("uff", topology=COMBUSTION["HO2"])
    with pytest.raises(DataError, match="atom 0: element O differs"):
        teacher.label(Atoms("OOH", positions=COMBUSTION["HO2"].positions))
    with pytest.raises(DataError, match="has 2 atoms, the topology reference has 3"):
        teacher.label(COMBUSTION["OH"])


def test_charge_and_spin_are_checked():
    hydroxide = COMBUSTION["OH"].copy()
    hydroxide.info["charge"] = -1
    assert np.isfinite(teachers.get("uff").label(hydroxide).energy)
    two = hydroxide + Atoms("H2", positions=[[5, 0, 0], [5.74, 0, 0]])
    with pytest.raises(TypingError, match="charge -1 cannot be assigned to one of its 2 molecules"):
        teachers.get("uff").label(two)
    radical = COMBUSTION["OH"].copy()
    radical.info["spin"] = 1
    with pytest.raises(DataError, match="spin multiplicity 1 is impossible with 9 electrons"):
        teachers.get("uff").label(radical)


def test_teacher_is_an_ase_calculator_with_provenance():
    teacher = teachers.get("mmff94", variant="MMFF94s")
    atoms = distorted(molecule("CH3CH2OH"))
    atoms.calc = teacher
    assert atoms.get_potential_energy() == pytest.approx(teacher.label(atoms).energy)
    np.testing.assert_allclose(atoms.get_forces(), teacher.label(atoms).forces)
    atoms.positions[0, 0] += 0.01  # the calculator notices the move (exact state comparison)
    assert atoms.get_potential_energy() == pytest.approx(teacher.label(atoms).energy)
    info = teacher.info
    assert (info.name, info.options["variant"]) == ("mmff94", "MMFF94s") and "MMFF94s" in info.level
    from ffpt.sampling import from_smiles

    aniline = from_smiles("Nc1ccccc1", seed=2).atoms  # MMFF94s differs from MMFF94 at a conjugated NH2
    assert teacher.label(aniline).energy != pytest.approx(teachers.get("mmff94").label(aniline).energy, abs=1e-6)
    import openmm

    assert teachers.get("spcfw").info.version == openmm.__version__


@pytest.mark.parametrize("name", ["mmff94", "uff", "spcfw"])
def test_teachers_survive_pickling_for_worker_processes(name):
    import pickle

    teacher = teachers.get(name, topology=water())
    frame = distorted(water(), seed=4)
    before = teacher.label(frame)  # fills the backend cache, which cannot be pickled
    after = pickle.loads(pickle.dumps(teacher)).label(frame)
    assert after.energy == before.energy
    np.testing.assert_array_equal(after.forces, before.forces)


@pytest.mark.parametrize("name", ["uff", "mmff94", "spcfw", "tip3p"])
def test_a_misspelt_option_of_a_classical_teacher_is_refused(name):
    """ASE calculators take any keyword; ffpt's classical teachers must not swallow a typo."""
    from ffpt.teachers import TeacherOptionError, get

    with pytest.raises(TeacherOptionError, match="colour"):
        get(name, colour="red")


@pytest.mark.parametrize("name", ["uff", "mmff94", "spcfw"])
def test_a_periodic_frame_is_refused_unless_the_cell_is_ignored(name):
    """A teacher of isolated molecules has no periodic images: a periodic frame is an input error
    naming the frame and the option, not a silent isolated-molecule label; the option is in the
    teacher's provenance (and so in label cache keys) only when given."""
    box = water_box(n_side=1, spacing=6.0)
    with pytest.raises(DataError, match=rf"{name}: frame H2O: periodic frame .*ignore_cell=true"):
        teachers.get(name).label(box)
    assert "ignore_cell" not in teachers.get(name).info.options
    assert teachers.get(name, ignore_cell=True).info.options["ignore_cell"] is True
    (alone,) = isolate_molecules(box)  # the molecule made whole across the boundary, no cell
    energy = teachers.get(name, ignore_cell=True).label(box).energy
    assert abs(energy) > 1e-3 and energy == pytest.approx(teachers.get(name).label(alone).energy, abs=1e-9)

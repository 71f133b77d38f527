"""Labelled data: extxyz and npz round-trips, bad input, splits, molecule perception."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.units import kcal, mol

from ffpt.data import (
    DataError,
    bonds,
    energy_of,
    forces_of,
    isolate_molecules,
    molecule_indices,
    read_frames,
    set_labels,
    split,
    subset,
    write_frames,
)
from ffpt.systems.h2combustion import load_h2combustion, read_npz, write_npz


def labelled_water(seed=0):
    rng = np.random.default_rng(seed)
    a = molecule("H2O")
    a.positions += rng.normal(0, 0.05, a.positions.shape)
    set_labels(a, -14.2 + rng.normal(), rng.normal(size=(3, 3)))
    a.info.update(charge=0, spin=1, config_type="test")
    return a


def test_extxyz_round_trip_keeps_values(tmp_path):
    frames = [labelled_water(k) for k in range(4)]
    back = read_frames(write_frames(tmp_path / "w.extxyz", frames))
    assert len(back) == 4
    for a, b in zip(frames, back):
        np.testing.assert_allclose(b.positions, a.positions, atol=1e-8)
        assert energy_of(b) == pytest.approx(energy_of(a), abs=1e-8)
        np.testing.assert_allclose(forces_of(b), forces_of(a), atol=1e-8)
        assert b.info["spin"] == 1 and b.info["config_type"] == "test"


def write_combustion_npz(path, n=5, seed=0, **overrides):
    rng = np.random.default_rng(seed)
    R = np.zeros((n, 6, 3))
    Z = np.zeros((n, 6), dtype=int)
    R[:, :3] = np.array([[0, 0, 0], [0.97, 0, 0], [-0.3, 0.93, 0]]) + rng.normal(0, 0.02, (n, 3, 3))
    Z[:, :3] = [8, 1, 1]
    arrays = dict(
        R=R, Z=Z, N=np.full((n, 1), 3), E=rng.normal(-200, 5, (n, 1)),
        F=np.where(Z[..., None] > 0, rng.normal(0, 20, (n, 6, 3)), 0.0), RXN=np.full((n, 1), "08"),
    )
    arrays.update(overrides)
    np.savez(path, **arrays)
    return arrays


def test_npz_import_converts_kcal_to_ev_and_keeps_channel(tmp_path):
    arrays = write_combustion_npz(tmp_path / "08_aimd.npz")
    frames = read_npz(tmp_path / "08_aimd.npz", multiplicities={"08": 1})
    assert len(frames) == 5 and len(frames[0]) == 3
    ev_per_kcal_mol = kcal / mol
    assert ev_per_kcal_mol == pytest.approx(0.0433641, rel=1e-5)
    assert energy_of(frames[2]) == pytest.approx(arrays["E"][2, 0] * ev_per_kcal_mol)
    np.testing.assert_allclose(forces_of(frames[2]), arrays["F"][2, :3] * ev_per_kcal_mol)
    assert frames[0].info["channel"] == "08" and frames[0].info["method"] == "aimd" and frames[0].info["spin"] == 1


def test_npz_round_trip(tmp_path):
    write_combustion_npz(tmp_path / "08_irc.npz")
    frames = read_npz(tmp_path / "08_irc.npz")
    write_npz(tmp_path / "again.npz", frames)
    again = read_npz(tmp_path / "again.npz")
    for a, b in zip(frames, again):
        assert energy_of(a) == pytest.approx(energy_of(b), abs=1e-10)
        np.testing.assert_allclose(forces_of(a), forces_of(b), atol=1e-10)
        np.testing.assert_allclose(a.positions, b.positions)


def test_channel_ids_survive_extxyz(tmp_path):
    write_combustion_npz(tmp_path / "08_aimd.npz")
    frames = read_npz(tmp_path / "08_aimd.npz")
    back = read_frames(write_frames(tmp_path / "c.extxyz", frames))
    assert back[0].info["channel"] == "08" and back[0].info["method"] == "aimd"


def test_load_picks_lower_energy_of_two_states(tmp_path):
    root = tmp_path / "npz"
    root.mkdir()
    write_combustion_npz(root / "08_aimd.npz")
    a = write_combustion_npz(root / "06a_irc.npz", seed=3, RXN=np.full((5, 1), "06a"))
    b = dict(a, E=a["E"] + np.array([[1.0], [-1.0], [1.0], [-1.0], [1.0]]), RXN=np.full((5, 1), "06b"))
    np.savez(root / "06b_irc.npz", **b)
    frames = load_h2combustion(root, methods=("aimd", "irc"))
    irc = [f for f in frames if f.info["method"] == "irc"]
    assert len(frames) == 10 and len(irc) == 5
    assert [f.info["spin"] for f in irc] == [1, 3, 1, 3, 1]
    assert load_h2combustion(root, methods=("aimd",), channels=["08"])[0].info["channel"] == "08"


@pytest.mark.parametrize(
    "override, message",
    [
        ({"N": np.full((5, 1), 4)}, "frame 0: key 'N'"),
        ({"E": np.array([[1.0], [np.nan], [1.0], [1.0], [1.0]])}, "frame 1: key 'E' is not finite"),
        ({"F": np.full((5, 6, 3), np.inf)}, "frame 0, atom 0: key 'F' is not finite"),
    ],
)
def test_bad_npz_names_frame_and_key(tmp_path, override, message):
    write_combustion_npz(tmp_path / "08_aimd.npz", **override)
    with pytest.raises(DataError, match=message):
        read_npz(tmp_path / "08_aimd.npz")


def test_npz_missing_key(tmp_path):
    arrays = write_combustion_npz(tmp_path / "x.npz")
    arrays.pop("F")
    np.savez(tmp_path / "08_nm.npz", **arrays)
    with pytest.raises(DataError, match=r"08_nm.npz: missing key 'F'"):
        read_npz(tmp_path / "08_nm.npz")


def test_npz_overlap(tmp_path):
    arrays = write_combustion_npz(tmp_path / "x.npz")
    R = arrays["R"].copy()
    R[3, 1] = R[3, 0] + 0.01
    write_combustion_npz(tmp_path / "08_aimd.npz", R=R)
    with pytest.raises(DataError, match=r"frame 3: atoms 0 and 1 overlap"):
        read_npz(tmp_path / "08_aimd.npz")


def _write_raw(path, frames):
    write_frames(path, frames)
    return path


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda a: a.info.pop("REF_energy"), r"frame 1: missing key 'REF_energy'"),
        (lambda a: a.arrays.pop("REF_forces"), r"frame 1: missing key 'REF_forces'"),
        (lambda a: a.info.__setitem__("REF_energy", float("nan")), r"frame 1: key 'REF_energy' is not finite"),
        (lambda a: a.arrays["REF_forces"].__setitem__((2, 1), np.nan), r"frame 1, atom 2: key 'REF_forces' is not finite"),
        (lambda a: a.positions.__setitem__(1, a.positions[0] + 0.01), r"frame 1: atoms 0 and 1 overlap"),
    ],
)
def test_bad_extxyz_frames_are_named(tmp_path, mutate, message):
    frames = [labelled_water(0), labelled_water(1)]
    mutate(frames[1])
    path = _write_raw(tmp_path / "bad.extxyz", frames)
    with pytest.raises(DataError, match=r"bad.extxyz, " + message):
        read_frames(path)


def test_forces_shape_mismatch_is_named(tmp_path):
    path = tmp_path / "shape.extxyz"
    good = _write_raw(tmp_path / "good.extxyz", [labelled_water(0)]).read_text().splitlines()
    # drop the force columns of the last atom line: extxyz parser or validation must name the file
    text = "\n".join(good[:-1] + [" ".join(good[-1].split()[:4])]) + "\n"
    path.write_text(text)
    with pytest.raises(DataError, match=r"shape.extxyz"):
        read_frames(path)


def test_unknown_element_is_named(tmp_path):
    path = tmp_path / "elem.extxyz"
    text = _write_raw(tmp_path / "good.extxyz", [labelled_water(0)]).read_text().replace("\nO ", "\nXq ", 1)
    path.write_text(text)
    with pytest.raises(DataError, match=r"elem.extxyz"):
        read_frames(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match=r"nothere.extxyz: no such file"):
        read_frames(tmp_path / "nothere.extxyz")


def test_splits_are_reproducible_and_disjoint():
    items = list(range(100))
    a, b, c = split(items, [0.6, 0.2, 20], seed=3)
    assert (len(a), len(b), len(c)) == (60, 20, 20)
    assert set(a) | set(b) | set(c) == set(items) and not set(a) & set(b)
    assert split(items, [0.6, 0.2, 20], seed=3) == (a, b, c)
    assert split(items, [0.6, 0.2, 20], seed=4) != (a, b, c)
    assert subset(items, 10, seed=1) == subset(items, 30, seed=1)[:10]  # nested budgets
    with pytest.raises(ValueError):
        split(items, [80, 30])


def water_box(n_side=2, spacing=3.1, seed=0):
    rng = np.random.default_rng(seed)
    box = Atoms(cell=np.eye(3) * n_side * spacing, pbc=True)
    for x in range(n_side):
        for y in range(n_side):
            for z in range(n_side):
                w = molecule("H2O")
                w.rotate(rng.uniform(0, 360), rng.normal(size=3))
                w.positions += np.array([x, y, z]) * spacing + 0.3
                box += w
    box.wrap()
    return box


def test_molecule_perception_and_isolation_across_boundaries():
    box = water_box()
    mols = molecule_indices(box)
    assert len(mols) == 8 and all(len(m) == 3 for m in mols)
    assert len(bonds(box)) == 16
    isolated = isolate_molecules(box)
    assert len(isolated) == 8
    for w in isolated:
        assert sorted(w.get_chemical_symbols()) == ["H", "H", "O"]
        d = w.get_all_distances()
        o = w.get_chemical_symbols().index("O")
        oh = sorted(d[o][np.arange(3) != o])
        np.testing.assert_allclose(oh, [0.9686, 0.9686], atol=1e-3)  # whole: no box-length bonds
        assert not w.pbc.any()


def test_perception_of_radicals():
    ho2 = Atoms("HOO", positions=[[0, 0, 0], [0.97, 0, 0], [1.3, 1.25, 0]])
    far_h = Atoms("H", positions=[[8, 8, 8]])
    frame = ho2 + far_h
    assert [list(m) for m in molecule_indices(frame)] == [[0, 1, 2], [3]]

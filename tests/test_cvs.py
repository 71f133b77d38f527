"""Collective variables: PLUMED's rational switching function, analytic gradients, pair labels, channels."""

import json

import numpy as np
import pytest
from ase import Atoms
from scipy.spatial.transform import Rotation

from ffpt.simulate.cvs import (
    Coordination,
    CVError,
    Distance,
    Position,
    atom_from_label,
    channel_cvs,
    coordination_from_labels,
    pair_from_label,
    rational_switch,
)
from ffpt.data import DataError
from ffpt.systems.h2combustion import load_channel


def numerical_gradient(cv, atoms, h=1e-5):
    grad = np.zeros((len(atoms), 3))
    for i in range(len(atoms)):
        for k in range(3):
            values = []
            for sign in (1, -1):
                a = atoms.copy()
                a.positions[i, k] += sign * h
                values.append(cv.compute(a)[0])
            grad[i, k] = (values[0] - values[1]) / (2 * h)
    return grad


@pytest.mark.parametrize("n,m,d0", [(6, 0, 0.0), (6, 10, 0.0), (8, 12, 0.3), (4, 0, 0.2)])
def test_switch_derivative_matches_finite_differences(n, m, d0):
    r0 = 1.1
    r = np.concatenate([np.linspace(d0 + 0.05, d0 + 3 * r0, 40), d0 + r0 * (1 + np.array([-3e-7, 0.0, 4e-7]))])
    h = 1e-6
    _, ds = rational_switch(r, r0, d0, n, m)
    numeric = (rational_switch(r + h, r0, d0, n, m)[0] - rational_switch(r - h, r0, d0, n, m)[0]) / (2 * h)
    np.testing.assert_allclose(ds, numeric, rtol=1e-5, atol=1e-7)


def test_switch_values_follow_plumed_definition():
    r0, n = 0.97, 6
    r = np.array([0.5, 0.97, 1.5, 40.0])
    s, _ = rational_switch(r, r0, n=n)  # m = 0 -> 2n: s = 1 / (1 + x^n)
    np.testing.assert_allclose(s, 1.0 / (1.0 + (r / r0) ** n), rtol=1e-12)
    assert s[1] == pytest.approx(0.5)  # n/m at the removable singularity
    assert rational_switch(np.array([r0]), r0, n=6, m=10)[0][0] == pytest.approx(0.6)
    eps = np.array([-1.1e-6, -0.9e-6, 0.9e-6, 1.1e-6])  # either side of the switch to the series at x = 1
    s_near = rational_switch(r0 * (1 + eps), r0, n=6, m=10)[0]
    np.testing.assert_allclose(s_near, 0.6 + 0.5 * 6 * (6 - 10) / 10 * eps, atol=1e-10)
    assert rational_switch(np.array([0.2]), 1.0, d0=0.3)[0][0] == 1.0  # inside d0
    assert s[-1] < 1e-8


def test_switch_rejects_bad_parameters():
    with pytest.raises(CVError, match="r0"):
        rational_switch(1.0, 0.0)
    with pytest.raises(CVError, match="differ"):
        rational_switch(1.0, 1.0, n=6, m=6)


def water_dimer(shift=(0, 0, 0)):
    pos = np.array([[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0], [2.9, 0.1, 0.2], [3.5, 0.8, 0.1], [3.3, -0.7, 0.3]])
    return Atoms("OHHOHH", positions=pos + np.asarray(shift))


def test_coordination_gradient_matches_finite_differences():
    atoms = water_dimer()
    atoms.rattle(0.05, seed=1)
    cv = Coordination(pairs=((0, 1), (0, 2), (0, 4), (3, 2)), r0=1.2, n=6, m=10)
    value, grad = cv.compute(atoms)
    np.testing.assert_allclose(grad, numerical_gradient(cv, atoms), atol=1e-8)
    d = atoms.get_all_distances()
    expected = sum(rational_switch(np.array([d[i, j]]), 1.2, n=6, m=10)[0][0] for i, j in cv.pairs)
    assert value == pytest.approx(expected)


def test_cvs_use_the_minimum_image_in_periodic_cells():
    atoms = Atoms("OH", positions=[[0.2, 1, 1], [4.6, 1, 1]], cell=[5, 5, 5], pbc=True)  # 0.6 A apart via the wall
    for cv in (Distance(0, 1), Coordination(pairs=((0, 1),), r0=1.0)):
        value, grad = cv.compute(atoms)
        np.testing.assert_allclose(grad, numerical_gradient(cv, atoms), atol=1e-8)
    assert Distance(0, 1).compute(atoms)[0] == pytest.approx(0.6)


def test_cvs_are_invariant_under_rigid_motion_and_exert_no_net_force_or_torque():
    atoms = water_dimer()
    cv = coordination_from_labels(["O1_H3", "O2_H2", "O1_O2"], atoms, r0=1.5)
    value, grad = cv.compute(atoms)
    moved = atoms.copy()
    rot = Rotation.from_rotvec([0.3, -1.1, 0.7])
    moved.positions = rot.apply(atoms.positions) + [1.0, -2.0, 0.5]
    assert cv.compute(moved)[0] == pytest.approx(value, rel=1e-12)
    np.testing.assert_allclose(grad.sum(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(np.cross(atoms.positions, grad).sum(axis=0), 0, atol=1e-12)


def test_position_and_distance_gradients():
    atoms = water_dimer()
    for cv in (Position(4, axis=1), Distance(0, 4)):
        np.testing.assert_allclose(cv.compute(atoms)[1], numerical_gradient(cv, atoms), atol=1e-8)
    assert Position(4, axis=1).compute(atoms)[0] == pytest.approx(0.8)


def test_pair_labels_count_atoms_within_each_element():
    atoms = Atoms("OOH", positions=np.eye(3))
    assert pair_from_label("O2_H1", atoms) == (1, 2)
    assert atom_from_label("O1", atoms) == 0
    with pytest.raises(CVError, match="O3_H1|has 2 O"):
        pair_from_label("O3_H1", atoms)
    with pytest.raises(CVError, match="'O1H1'"):
        pair_from_label("O1H1", atoms)
    with pytest.raises(CVError, match="'Xx1'"):
        atom_from_label("Xx1", atoms)
    with pytest.raises(CVError, match="out of range"):
        Distance(0, 7).compute(atoms)


def test_channel_cvs_sum_listed_pairs(tmp_path):
    table = {
        "_about": "test",
        "08": {"reaction": "H + OH -> H2O", "multiplicity": 1, "natoms": 3,
               "cv": [["O1_H2", "O1_H1"], ["O1_H2"]], "r0": [0.96, 0.96]},
    }
    path = tmp_path / "reactions.json"
    path.write_text(json.dumps(table))
    channel = load_channel(path, "08")  # parsed in ffpt.systems.h2combustion
    atoms = Atoms("HOH", positions=[[0.9, 0.3, 0], [0, 0, 0], [-1.7, 0.4, 0.1]])
    cn1, cn2 = channel_cvs(channel, atoms)
    assert cn1.pairs == ((1, 2), (1, 0)) and cn2.pairs == ((1, 2),)
    single = [Coordination(pairs=(p,), r0=0.96).compute(atoms)[0] for p in cn1.pairs]
    assert cn1.compute(atoms)[0] == pytest.approx(sum(single))
    assert channel.multiplicity == 1
    with pytest.raises(DataError, match="no channel '99'.*08"):
        load_channel(path, "99")
    with pytest.raises(CVError, match="2 atoms, channel has 3"):
        channel_cvs(channel, atoms[:2])

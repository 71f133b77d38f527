"""One molecule perception (ffpt.data.molecules) used by teachers' topologies; one spin check naming the frame."""

import inspect

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule

from ffpt.data import DataError, read_frames, spin_of, validate_frame, write_frames
import ffpt.data.molecules as perception
from ffpt.data.molecules import isolate_molecules, molecule_indices, molecules
from ffpt.teachers import topology
from ffpt.teachers.base import electronic_state
from ffpt.teachers.topology import Topology


def wrapped_water_box() -> Atoms:
    """Three waters in a 6 A box, two of them cut by the cell boundary."""
    waters = []
    for shift in ([0.2, 3.0, 3.0], [5.9, 1.0, 1.0], [3.0, 5.95, 0.1]):
        w = molecule("H2O")
        w.positions += shift
        waters.append(w)
    box = waters[0] + waters[1] + waters[2]
    box.cell, box.pbc = np.eye(3) * 6.0, True
    box.wrap()
    return box


def test_topology_is_the_data_perception():
    box = wrapped_water_box()
    topo = Topology.perceive(box)
    assert topo.molecules == molecules(box)  # the same records, not a second implementation
    assert [list(m.indices) for m in topo.molecules] == [list(idx) for idx in molecule_indices(box)]
    assert topology.Molecule is perception.Molecule
    assert Topology.from_bonds(box.numbers, topo.bonds) == topo
    source = inspect.getsource(topology)
    assert "connected_components" not in source and "neighbor_list" not in source


def test_whole_molecules_across_the_cell():
    box = wrapped_water_box()
    for mol in isolate_molecules(box):
        d = np.linalg.norm(mol.positions[:, None] - mol.positions[None], axis=-1)
        assert d.max() < 1.7 and not mol.pbc.any()  # O-H 0.97 A, H-H 1.5 A: whole, not split by the cell
    assert sorted(len(m) for m in isolate_molecules(box)) == [3, 3, 3]


def test_spin_of_validates_and_names_the_frame(tmp_path):
    oh = molecule("OH")
    assert spin_of(oh) is None and spin_of(oh, default=2) == 2
    oh.info.update(spin=4, seed_name="radical")
    assert spin_of(oh) == 4 and electronic_state(oh) == (0, 4)
    for bad, message in [(1, "spin multiplicity 1 is impossible with 9 electrons"), (11, "spin multiplicity 11 is impossible with 9"),
                         (2.5, r"info\['spin'\]=2.5 is not a multiplicity"), ("two", r"info\['spin'\]='two' is not a multiplicity")]:
        oh.info["spin"] = bad
        with pytest.raises(DataError, match=r"^frame HO \(seed_name=radical\): " + message):
            spin_of(oh)
        with pytest.raises(DataError, match=r"^frame HO \(seed_name=radical\): " + message):
            electronic_state(oh)  # teachers use the same check
    oh.info.update(spin=2, charge=0.5)
    with pytest.raises(DataError, match=r"info\['charge'\]=0.5 is not an integer"):
        spin_of(oh)
    # reading a data set names its file and frame
    good, bad = molecule("H2O"), molecule("OH")
    for a in (good, bad):
        a.info["REF_energy"] = 0.0
        a.arrays["REF_forces"] = np.zeros((len(a), 3))
    bad.info["spin"] = 3
    path = write_frames(tmp_path / "frames.extxyz", [good, bad])
    with pytest.raises(DataError, match=r"frames.extxyz, frame 1: spin multiplicity 3 is impossible with 9"):
        read_frames(path)
    with pytest.raises(DataError, match="frame 7: spin multiplicity 3"):
        validate_frame(bad, index=7)

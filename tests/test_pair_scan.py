"""Pair-energy scans (issue 16): the scan is exact on analytic pair potentials, the ZBL remedy repels
two H atoms pushed to 0.3 A, the compressed-contact sampler probes short contacts with finite
single-molecule UFF labels, and ``ffpt scan`` writes its files or exits 2 on bad input."""

from __future__ import annotations

import json

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.calculators.lj import LennardJones
from ase.calculators.morse import MorsePotential

from ffpt import teachers
from ffpt.analysis.pair_scan import legend_labels
from ffpt.cli import main
from ffpt.data import write_frames
from ffpt.observables.pair_scan import PairScanConfig, at_distance, isolated_pair, parse_pair, scan_pair, scan_system
from ffpt.sampling.compressed import compressed_frames, compression_ratios

DISTANCES = np.linspace(0.8, 2.5, 18)


def test_scan_matches_lennard_jones_and_morse():
    """E(r) and the radial force -dE/dr of an isolated pair are the analytic pair potential's."""
    pair = isolated_pair(("Ar", "Ar"))
    eps, sigma = 0.0104, 1.2
    lj = scan_pair(LennardJones(epsilon=eps, sigma=sigma, rc=10.0, smooth=False), pair, 0, 1, DISTANCES)
    shift = 4 * eps * ((sigma / 10.0) ** 12 - (sigma / 10.0) ** 6)  # ASE shifts E to zero at rc
    s6 = (sigma / DISTANCES) ** 6
    np.testing.assert_allclose(lj.energies, 4 * eps * (s6**2 - s6) - shift, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(lj.radial_forces, 24 * eps * (2 * s6**2 - s6) / DISTANCES, rtol=1e-10)

    d, a, r0 = 0.5, 2.0, 1.1
    morse = scan_pair(MorsePotential(epsilon=d, rho0=a * r0, r0=r0, rcut1=10.0, rcut2=11.0), pair, 0, 1, DISTANCES)
    x = np.exp(-a * (DISTANCES - r0))
    np.testing.assert_allclose(morse.energies, d * (x**2 - 2 * x), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(morse.radial_forces, 2 * a * d * (x**2 - x), rtol=1e-9, atol=1e-12)
    assert morse.distances[morse.energies.argmin()] == pytest.approx(r0, abs=0.05)
    # above the well: the Morse minimum -d lies on the grid's 1.1 A point
    x08 = np.exp(-a * (0.8 - r0))
    assert morse.above_well(0.8, well=(0.8, 2.5)) == pytest.approx(d * (x08**2 - 2 * x08) + d, rel=1e-9)
    assert morse.above_well(0.82, well=(0.8, 2.5)) == morse.above_well(0.8, well=(0.8, 2.5))  # nearest point
    assert morse.above_well(r0, well=(0.8, 2.5)) == pytest.approx(0.0, abs=1e-12)  # the well itself
    assert morse.above_well(r0, well=(1.5, 2.5)) < 0  # a well range missing the minimum: a "hole"


def test_embedded_scan_moves_only_the_pair_along_its_axis():
    """Inside a geometry, the two atoms move symmetrically along their axis; the rest stays put."""
    water = molecule("H2O")
    moved = at_distance(water, 1, 2, 0.4)
    assert moved.get_distance(1, 2) == pytest.approx(0.4)
    np.testing.assert_allclose(moved.positions[0], water.positions[0])
    np.testing.assert_allclose(moved.positions[1] + moved.positions[2], water.positions[1] + water.positions[2])
    axis = water.positions[2] - water.positions[1]
    np.testing.assert_allclose(np.cross(moved.positions[2] - moved.positions[1], axis), 0.0, atol=1e-12)
    # for a sum of pair terms the radial force is -dE/dr of the scanned pair's own term plus the rest's
    lj = LennardJones(epsilon=0.01, sigma=1.0, rc=10.0, smooth=False)
    scan = scan_pair(lj, water, 1, 2, [0.9, 0.9 + 1e-5])
    assert scan.radial_forces[0] == pytest.approx(-(scan.energies[1] - scan.energies[0]) / 1e-5, rel=1e-3)


def test_structure_scan_takes_the_given_spin_and_otherwise_the_structure_s_own(tmp_path):
    """A TS scanned in its channel's multiplicity: ``spin`` overrides the structure's info["spin"]."""
    water = molecule("H2O")
    water.info["spin"] = 1
    config = dict(calculators=["uff"], structure=tmp_path / "w.extxyz", atoms=(1, 2))
    atoms, i, j = scan_system(PairScanConfig(**config, spin=3), water)
    assert (atoms.info["spin"], i, j, water.info["spin"]) == (3, 1, 2, 1)  # the input is not changed
    assert scan_system(PairScanConfig(**config), water)[0].info["spin"] == 1


def test_parse_pair_refuses_non_elements():
    assert parse_pair("O-H") == ("O", "H")
    for bad in ("OH", "H-Xx", "H-", "H-H-H"):
        with pytest.raises(ValueError, match="pair"):
            parse_pair(bad)


@pytest.fixture(scope="module")
def zbl_model(tmp_path_factory):
    """A tiny NewtonNet with the ZBL prior, trained 2 epochs on UFF frames of H2, OH and H2O near
    their bond lengths (no frame has two atoms closer than 0.6 A)."""
    from ffpt.config import parse_config
    from ffpt.sampling.displacements import random_frames
    from ffpt.training import TrainConfig, train

    d = tmp_path_factory.mktemp("zbl")
    uff = teachers.get("uff")
    rng = np.random.default_rng(0)
    frames = [f for name in ("H2", "OH", "H2O") for f in random_frames(molecule(name), uff, 0.05, 8, rng)]
    assert min(min(f.get_all_distances()[np.triu_indices(len(f), 1)]) for f in frames) > 0.6
    train_path = write_frames(d / "train.extxyz", frames[::2])
    valid_path = write_frames(d / "valid.extxyz", frames[1::2])
    config = parse_config(TrainConfig, {
        "data": {"train": str(train_path), "valid": str(valid_path)},
        "model": {"n_features": 8, "n_layers": 1, "n_basis": 4, "cutoff": 4.0, "options": {"zbl": True}},
        "training": {"stage": "scratch", "max_epochs": 2, "batch_size": 4, "lr": 1e-2, "progress_bar": False},
        "out": str(d / "run"),
    })
    return train(config).model_path


def test_zbl_model_repels_two_h_atoms_pushed_to_0_3_angstrom(zbl_model):
    """Force at 0.3 A points apart and the energy there lies above the 1 A value (the same training
    without zbl gave a flat, slightly attractive curve: E(0.3) - E(1.0) = -0.002 eV, f(0.3) = -0.002 eV/A)."""
    import ffpt

    calc = ffpt.load_calculator(zbl_model)
    scan = scan_pair(calc, isolated_pair(("H", "H")), 0, 1, [0.3, 1.0])
    assert scan.radial_forces[0] > 0
    assert scan.energies[0] > scan.energies[1] + 1.0  # eV: a wall, not noise


@pytest.mark.parametrize("name", ["H2", "OH", "O2", "H2O2", "HO2"])
def test_compressed_sampler_probes_short_contacts_with_finite_uff_labels(name):
    # HO2 (not in ASE's g2 set): O0-O1 1.33 A, O0-H2 0.98 A, angle 104 degrees
    seed = Atoms("OOH", positions=[[0.0, 0.0, 0.0], [1.33, 0.0, 0.0], [-0.3, 0.93, 0.0]]) if name == "HO2" else molecule(name)
    frames = compressed_frames(seed, teachers.get("uff"), 12, np.random.default_rng(3), min_factor=0.5, max_factor=0.9)
    again = compressed_frames(seed, teachers.get("uff"), 12, np.random.default_rng(3), min_factor=0.5, max_factor=0.9)
    np.testing.assert_array_equal(frames[5].positions, again[5].positions)  # seeded
    for frame in frames:
        ratios = compression_ratios(frame, seed)
        assert 0.5 - 1e-9 <= ratios.min() <= 0.9 + 1e-9
        assert np.isfinite(frame.info["REF_energy"]) and np.isfinite(frame.arrays["REF_forces"]).all()
        assert frame.info["config_type"] == "compressed_0.5-0.9"
    if len(seed) > 2:  # non-bonded pairs are pushed together too (H...H of H2O2, O...H of HO2)
        bonded = {(0, 1), (0, 2)} if name == "HO2" else {(0, 1), (0, 2), (1, 3)}  # H2O2: O O H H
        pairs = list(zip(*np.triu_indices(len(seed), 1)))
        squeezed = {pairs[int(compression_ratios(f, seed).argmin())] for f in frames}
        assert squeezed - bonded, "no non-bonded pair was compressed"


def test_sampling_config_runs_the_compressed_sampler(tmp_path):
    from ffpt.config import parse_config
    from ffpt.sampling import SamplingConfig, sample

    config = parse_config(SamplingConfig, {
        "seeds": [{"smiles": "OO"}], "out": str(tmp_path / "s.extxyz"), "md": None, "normal_modes": None,
        "random": None, "compressed": {"frames": 4, "min_factor": 0.6, "max_factor": 0.8},
    })
    frames = ase.io.read(sample(config, progress=False), index=":")
    assert len(frames) == 4 and {f.info["config_type"] for f in frames} == {"compressed_0.6-0.8"}


def test_cli_scan_writes_json_and_png(tmp_path, capsys):
    out = tmp_path / "oh.json"
    assert main(["scan", "--calculator", "uff", "--pair", "O-H", "--points", "5", "--units", "kcal/mol",
                 "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    scan = payload["scans"]["uff"]
    assert scan["distance_A"] == pytest.approx([0.2, 0.65, 1.1, 1.55, 2.0])
    assert scan["radial_force_eV_per_A"][0] > 0 > scan["radial_force_eV_per_A"][-1]  # UFF's harmonic O-H bond
    assert payload["symbols"] == ["O", "H"] and (tmp_path / "oh.png").stat().st_size > 1000


def test_cli_scan_inside_a_structure(tmp_path):
    """Two H of water pulled together: UFF (water's own bonding) pushes them apart at 0.6 A."""
    out = tmp_path / "hh.json"
    assert main(["scan", "--calculator", "uff", "--structure", _water(tmp_path), "--atoms", "1", "2",
                 "--r-min", "0.6", "--r-max", "1.6", "--points", "3", "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert payload["atoms"] == [1, 2] and payload["symbols"] == ["O", "H", "H"]
    assert payload["scans"]["uff"]["radial_force_eV_per_A"][0] > 0


def _tiny_model(tmp_path):
    import torch

    from ffpt.models import save_model
    from ffpt.models.newtonnet import NewtonNet

    torch.manual_seed(0)
    return str(save_model(NewtonNet(elements=[1, 8], cutoff=4.0, n_features=8, n_layers=1, n_basis=4),
                          tmp_path / "ho.pt"))


def _water(tmp_path):
    path = tmp_path / "water.xyz"
    ase.io.write(path, molecule("H2O"))
    return str(path)


CASES = {
    "no-system": (lambda t: ["scan", "--calculator", "uff"], "pair"),
    "both-systems": (lambda t: ["scan", "--calculator", "uff", "--pair", "H-H", "--structure", _water(t),
                                "--atoms", "0", "1"], "pair"),
    "bad-element": (lambda t: ["scan", "--calculator", "uff", "--pair", "H-Qq"], "Qq"),
    "no-calculator": (lambda t: ["scan", "--pair", "H-H"], "calculators"),
    "unknown-calculator": (lambda t: ["scan", "--calculator", "nope.pt", "--pair", "H-H"], "nope.pt"),
    "atom-out-of-range": (lambda t: ["scan", "--calculator", "uff", "--structure", _water(t), "--atoms", "0", "9"],
                          "atom 9"),
    "same-atom": (lambda t: ["scan", "--calculator", "uff", "--structure", _water(t), "--atoms", "1", "1"], "same"),
    "structure-without-atoms": (lambda t: ["scan", "--calculator", "uff", "--structure", _water(t)], "atoms"),
    "missing-structure": (lambda t: ["scan", "--calculator", "uff", "--structure", str(t / "nope.xyz"),
                                     "--atoms", "0", "1"], "nope.xyz"),
    "bad-range": (lambda t: ["scan", "--calculator", "uff", "--pair", "H-H", "--r-min", "2", "--r-max", "1"],
                  "r_min"),
    "element-unknown-to-model": (lambda t: ["scan", "--calculator", _tiny_model(t), "--pair", "N-H"], "pair N-H"),
    "bad-key": (lambda t: ["scan", "--calculator", "uff", "--pair", "H-H", "pionts=3"], "pionts"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_cli_scan_bad_input_exits_2_with_one_line(case, tmp_path, capsys):
    argv, fragment = CASES[case]
    code = main([*argv(tmp_path), "--out", str(tmp_path / "s.json")])
    out, err = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.startswith("ffpt scan: error:")]
    assert len(lines) == 1 and fragment in lines[0], err


def test_legend_labels_keep_only_what_tells_model_paths_apart():
    names = ["pyscf", "runs/x/ffpt-ft_n100_s0/model/model.pt", "runs/x/scratch_n100_s0/model/model.pt"]
    assert legend_labels(names) == ["pyscf", "ffpt-ft_n100_s0", "scratch_n100_s0"]
    assert legend_labels(["uff", "runs/a/model.pt"]) == ["uff", "runs/a/model.pt"]
    assert legend_labels(["runs/a/model.pt", "runs/a/model.pt"]) == ["model.pt", "model.pt"]

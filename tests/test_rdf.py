"""Partial RDFs: ideal-gas limit, exact coordination shells with periodic images, pair asymmetry."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule

from ffpt.analysis.rdf import clipped_height, plot_rdf
from ffpt.observables.rdf import RDF, compute_rdf, pair_name


def simple_cubic(n: int, a: float) -> Atoms:
    grid = np.array([[i, j, k] for i in range(n) for j in range(n) for k in range(n)], dtype=float)
    return Atoms("Ar" * len(grid), positions=a * grid, cell=[n * a] * 3, pbc=True)


def test_ideal_gas_rdf_is_one():
    """Uniformly random points: g(r) = (N-1)/N (ordered pairs i != j over N_A N_B) at every r."""
    rng = np.random.default_rng(0)
    n, box = 300, 12.0
    frames = [Atoms("Ar" * n, positions=rng.random((n, 3)) * box, cell=[box] * 3, pbc=True) for _ in range(10)]
    rdf = compute_rdf(frames, rmax=5.0, bins=25)
    g = rdf.g["Ar-Ar"][rdf.r > 1.5]
    assert rdf.n_frames == 10
    assert abs(g.mean() - (n - 1) / n) < 0.01
    # per-bin Poisson noise: relative error ~ 1/sqrt(counts); no bin deviates by more than 5 sigma
    counts = n * (n - 1) / box**3 * 4 / 3 * np.pi * np.diff(rdf.edges**3)[rdf.r > 1.5] * len(frames)
    assert np.all(np.abs(g - 1) < 5 / np.sqrt(counts) + 1 / n)


@pytest.mark.parametrize("n_cells", [1, 3])
def test_simple_cubic_shells_count_periodic_images(n_cells):
    """Simple cubic, a = 2 A: shells of 6, 12, 8, 6 neighbours at a, a*sqrt(2), a*sqrt(3), 2a,
    also when rmax exceeds half the box (images of the atom itself for a one-atom cell)."""
    a = 2.0
    atoms = simple_cubic(n_cells, a)
    rdf = compute_rdf([atoms], rmax=4.5, bins=90)
    density = len(atoms) / atoms.get_volume()
    expected = {2.1: 6, 2.9: 18, 3.5: 26, 4.1: 32}
    for r_cut, count in expected.items():
        assert rdf.coordination("Ar-Ar", r_cut, density) == pytest.approx(count, abs=1e-9)
    assert rdf.coordination("Ar-Ar", 1.9, density) == 0.0


def test_water_pair_coordination_is_asymmetric():
    """g_OH normalised by N_O N_H: each O sees 2 H within 1.2 A, each H sees 1 O."""
    water = molecule("H2O")
    box = 9.0
    frame = Atoms(cell=[box] * 3, pbc=True)
    for x in (1.5, 6.0):
        for y in (1.5, 6.0):
            w = water.copy()
            w.translate([x, y, 4.5])
            frame += w
    rdf = compute_rdf([frame], rmax=4.0, bins=80, pairs=["H-O", "O-O", "H-H"])
    assert set(rdf.g) == {"O-H", "O-O", "H-H"}
    volume = frame.get_volume()
    n_o, n_h = 4, 8
    assert rdf.coordination("O-H", 1.2, n_h / volume) == pytest.approx(2.0)
    assert rdf.coordination("O-H", 1.2, n_o / volume) == pytest.approx(1.0)  # H-centred view
    assert rdf.coordination("O-O", 1.2, n_o / volume) == 0.0
    assert rdf.coordination("H-H", 1.7, n_h / volume) == pytest.approx(1.0)  # intramolecular H-H 1.52 A


def test_error_is_integrated_absolute_difference(tmp_path):
    edges = np.linspace(0, 6, 61)
    ones = RDF(edges, {"O-O": np.ones(60), "O-H": np.ones(60)}, 1)
    zeros = RDF(edges, {"O-O": np.zeros(60), "O-H": np.zeros(60)}, 1)
    assert ones.error(zeros) == pytest.approx(12.0)  # 2 pairs x 6 A
    assert ones.error(zeros, ["O-H"]) == pytest.approx(6.0)
    loaded = RDF.load(ones.save(tmp_path / "ref.json"))
    assert loaded.error(ones) == 0.0 and loaded.n_frames == 1
    with pytest.raises(ValueError, match="different bins"):
        ones.error(RDF(np.linspace(0, 5, 61), ones.g, 1))


def test_bad_input_is_named(tmp_path):
    gas = Atoms("Ar2", positions=[[0, 0, 0], [1, 0, 0]])
    with pytest.raises(ValueError, match="frame 0: RDF needs a frame periodic"):
        compute_rdf([gas])
    with pytest.raises(ValueError, match="unknown element 'Xx'"):
        pair_name("Xx", "O")
    with pytest.raises(ValueError, match="pair 'O-H' but the frame has 0 O"):
        compute_rdf([simple_cubic(2, 2.0)], pairs=["O-H"])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="bad.json: not an ffpt RDF json"):
        RDF.load(tmp_path / "bad.json")


def test_plot_writes_png(tmp_path):
    rdf = compute_rdf([simple_cubic(3, 2.0)], rmax=4.0, bins=40)
    path = plot_rdf({"sc": rdf, "copy": rdf}, tmp_path / "plots" / "rdf.png", title="sc")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_bond_peak_is_clipped_so_the_hydrogen_bond_peak_shows():
    r = np.linspace(0.05, 6.0, 120)
    bond = 60 * np.exp(-((r - 0.97) / 0.03) ** 2)  # O-H bond, 60 high
    hbond = 1.5 * np.exp(-((r - 1.8) / 0.15) ** 2) + np.where(r > 2.2, 1.0, 0.0)  # H-bond peak, then g = 1
    top = clipped_height([bond + hbond, 0.9 * (bond + hbond)])
    assert top == pytest.approx(1.3 * 1.5, rel=0.05)  # the H-bond peak fills the panel
    liquid_oo = 2.8 * np.exp(-((r - 2.8) / 0.15) ** 2) + np.where(r > 3.2, 1.0, 0.0)
    assert clipped_height([liquid_oo]) is None  # an intermolecular first peak stays whole

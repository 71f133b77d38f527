"""Each stability monitor fires on a case built to break it and stays quiet on a stable run."""

import json

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.singlepoint import SinglePointCalculator
from ase.neighborlist import neighbor_list

from ffpt.observables.rdf import compute_rdf
from ffpt.simulate.config import MDConfig, MonitorConfig
from ffpt.simulate.md import run_md
from ffpt.simulate.monitors import (
    BondMonitor,
    FiniteMonitor,
    MinDistanceMonitor,
    PairDistanceMonitor,
    RDFMonitor,
    RelaxedReference,
    SpeciesMonitor,
    build_monitors,
)


class HarmonicBonds(Calculator):
    """Elastic network: E = sum over pairs of k/2 (|r_ij| - r0_ij)^2 (eV, A); by default every pair
    closer than ``cutoff`` in the reference (bonds and angles), lengths from the reference."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, reference: Atoms, k: float = 30.0, pairs=None, r0=None, cutoff: float = 2.6):
        super().__init__()
        if pairs is None:
            i, j = neighbor_list("ij", reference, cutoff)
            pairs = np.stack([i[i < j], j[i < j]], axis=1)
        self.pairs = np.asarray(pairs)
        if r0 is None:
            r0 = np.linalg.norm(reference.positions[self.pairs[:, 1]] - reference.positions[self.pairs[:, 0]], axis=1)
        self.r0 = np.asarray(r0, dtype=float)
        self.k = k

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        i, j = self.pairs[:, 0], self.pairs[:, 1]
        d = self.atoms.positions[j] - self.atoms.positions[i]
        r = np.linalg.norm(d, axis=1)
        stretch = r - self.r0
        forces = np.zeros((len(self.atoms), 3))
        f = (self.k * stretch / r)[:, None] * d  # force on i
        np.add.at(forces, i, f)
        np.add.at(forces, j, -f)
        self.results = {"energy": 0.5 * self.k * float(np.sum(stretch**2)), "forces": forces}


def ethanol() -> Atoms:
    atoms = molecule("CH3CH2OH")
    atoms.center(vacuum=4.0)
    return atoms


def test_harmonic_bonds_forces_are_minus_energy_gradient():
    atoms = ethanol()
    calc = HarmonicBonds(atoms)
    atoms.rattle(0.05, seed=1)
    atoms.calc = calc
    forces = atoms.get_forces()
    h = 1e-5
    for a, c in [(0, 0), (3, 1), (8, 2)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[a, c] += h
        minus.positions[a, c] -= h
        numeric = -(calc.get_potential_energy(plus) - calc.get_potential_energy(minus)) / (2 * h)
        assert forces[a, c] == pytest.approx(numeric, rel=1e-6, abs=1e-8)


def with_results(atoms: Atoms, energy: float, forces: np.ndarray) -> Atoms:
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
    return atoms


def test_finite_monitor():
    atoms = ethanol()
    forces = np.zeros((len(atoms), 3))
    assert FiniteMonitor().check(with_results(atoms, -1.0, forces), 0.0) is None
    forces[4, 1] = np.nan
    assert FiniteMonitor().check(with_results(atoms, -1.0, forces), 0.0) == "non-finite force on atom 4"
    assert "energy" in FiniteMonitor().check(with_results(atoms, np.inf, np.zeros((len(atoms), 3))), 0.0)


def test_min_distance_monitor_with_periodic_images():
    monitor = MinDistanceMonitor(0.5)
    assert monitor.check(ethanol(), 0.0) is None
    close = Atoms("H2", positions=[[0, 0, 0], [0.3, 0, 0]])
    assert monitor.check(close, 0.0) == "atoms 0 and 1 at 0.300 A < min distance 0.5 A"
    # 0.2 A apart only through the periodic boundary
    box = Atoms("H2", positions=[[0.1, 1, 1], [4.9, 1, 1]], cell=[5, 5, 5], pbc=True)
    assert "0.200 A" in monitor.check(box, 0.0)
    box.pbc = False
    assert monitor.check(box, 0.0) is None


def test_pair_distance_monitor_only_watches_its_pairs_across_the_boundary():
    monitor = build_monitors(MonitorConfig(min_distance=None, min_pair_distance={"O-O": 2.2}), ethanol())[-1]
    assert isinstance(monitor, PairDistanceMonitor)
    # two waters: O...O 2.0 A through the periodic boundary; the O-H and H...H contacts are not watched
    water = molecule("H2O")
    box = water.copy() + water.copy()
    box.positions[3:] += [8.0, 0.0, 0.0]
    box.set_cell([10.0, 10.0, 10.0])
    box.pbc = True
    assert monitor.check(box, 0.0) == "atoms 0 and 3 (O-O) at 2.000 A < 2.2 A"
    box.positions[3:] += [-3.0, 0.0, 0.0]  # 5 A apart
    assert monitor.check(box, 0.0) is None
    with pytest.raises(ValueError, match="must be > 0"):
        PairDistanceMonitor({"H-O": 0.0})


def test_bond_monitor_threshold_and_minimum_image():
    start = ethanol()
    monitor = BondMonitor(start, 0.5)
    o, h = 2, 3  # the hydroxyl O-H of ASE's ethanol
    assert {o, h} in [set(p) for p in monitor.pairs.tolist()]
    direction = (start.positions[h] - start.positions[o]) / start.get_distance(o, h)
    stretched = start.copy()
    stretched.positions[h] += 0.4 * direction
    assert monitor.check(stretched, 0.0) is None
    stretched.positions[h] += 0.2 * direction
    reason = monitor.check(stretched, 0.0)
    assert reason.startswith(f"bond {o}-{h} (O-H)") and "(> 0.5 A)" in reason
    # a molecule split across a periodic boundary keeps its bonds (minimum image)
    water = molecule("H2O", cell=[6, 6, 6], pbc=True)
    water.translate([0.2, 3, 3])
    water.wrap()
    assert BondMonitor(water, 0.5).check(water, 0.0) is None
    assert len(BondMonitor(water, 0.5).pairs) == 2


def test_species_monitor_uses_hill_formulas():
    water = molecule("H2O")
    ho2 = Atoms("OOH", positions=[[6, 0, 0], [7.33, 0, 0], [5.77, 0.94, 0]])
    system = water + ho2
    monitor = SpeciesMonitor(["H2O", "OOH"])  # OOH normalised to Hill formula HO2
    assert monitor.check(system, 0.0) is None
    system.positions[1] += [0, 0, 4.0]  # pull one H off the water: HO + H
    reason = monitor.check(system, 0.0)
    assert reason.startswith("species HO (atoms [0, 2])")  # molecules in order of their first atom
    assert "not in allowed set ['H2O', 'HO2']" in reason
    assert SpeciesMonitor(["H", "HO", "H2O", "HO2"]).check(system, 0.0) is None


def test_species_monitor_patience_lets_transient_complexes_pass():
    """A foreign species must be seen at every check for patience_fs before the run fails."""
    apart = Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [5, 0, 0]])  # HO + H
    complex_ = Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.96, 0, 0]])  # H2O, foreign here
    monitor = SpeciesMonitor(["HO", "H"], patience_fs=20.0)
    assert [monitor.check(complex_, t) for t in (0.0, 10.0)] == [None, None]
    assert monitor.check(apart, 15.0) is None  # the complex broke up: the clock restarts
    assert [monitor.check(complex_, t) for t in (20.0, 30.0)] == [None, None]
    resumed = SpeciesMonitor(["HO", "H"], patience_fs=20.0)
    resumed.load_state_dict(json.loads(json.dumps(monitor.state_dict())))
    assert resumed.check(complex_, 40.0).endswith("(foreign species since 20 fs)")


def thermal_lattice(rng, scale=1.0, noise=0.08):
    grid = np.array([[i, j, k] for i in range(4) for j in range(4) for k in range(4)], dtype=float)
    positions = 2.5 * scale * grid + rng.normal(0, noise, (64, 3))
    return Atoms("Ar64", positions=positions, cell=[10.0 * scale] * 3, pbc=True)


def test_rdf_monitor_window_threshold_and_state():
    rng = np.random.default_rng(3)
    reference = compute_rdf([thermal_lattice(rng) for _ in range(20)], rmax=4.5, bins=45)
    monitor = RDFMonitor(reference, threshold=1.0, window=5)
    for t in range(10):
        assert monitor.check(thermal_lattice(rng), float(t)) is None
    assert 0 < monitor.last_error < 1.0
    # melted/gas-like frames: the window only fails once it is full of them... or mostly them
    fresh = RDFMonitor(reference, threshold=1.0, window=5)
    gas = [Atoms("Ar64", positions=rng.random((64, 3)) * 10, cell=[10] * 3, pbc=True) for _ in range(5)]
    results = [fresh.check(frame, float(t)) for t, frame in enumerate(gas)]
    assert results[:4] == [None] * 4
    assert results[4].startswith("RDF error") and "exceeds 1.0 A" in results[4]
    # resuming restores the window: the same next check gives the same error
    restored = RDFMonitor(reference, threshold=1.0, window=5)
    restored.load_state_dict(json.loads(json.dumps(fresh.state_dict())))
    probe = thermal_lattice(rng)
    assert restored.check(probe, 5.0) == fresh.check(probe, 5.0)
    assert restored.last_error == fresh.last_error
    with pytest.raises(ValueError, match="reference RDF has no pair O-H"):
        RDFMonitor(reference, pairs=["H-O"])


def stretched_ethanol(by: float = 0.3) -> tuple[Atoms, int, int]:
    """Ethanol with its C-C bond stretched by ``by`` A (the methyl group moved out along the bond, so
    no other bond changes): a hot snapshot as the start. Returns the frame and the two carbons."""
    atoms = ethanol()
    a, b = 0, 1  # the methyl carbon (bonded to H 6, 7, 8) and the CH2 carbon of ASE's ethanol
    direction = (atoms.positions[a] - atoms.positions[b]) / atoms.get_distance(a, b)
    atoms.positions[[a, 6, 7, 8]] += by * direction
    return atoms, a, b


def test_bond_reference_from_the_relaxed_structure():
    """A start with one bond stretched by 0.3 A: references from the relaxed structure put that bond
    back at its minimum, so the equilibrium frame is no 0.3 A deviation (with a 0.25 A threshold, the
    start-frame reference fails it) and 0.3 A beyond the start is 0.6 A, a failure."""
    minimum = ethanol()
    start, a, b = stretched_ethanol(0.3)
    equilibrium = minimum.get_distance(a, b)
    relaxed = BondMonitor(start, 0.25, relax=RelaxedReference(HarmonicBonds(minimum), fmax=0.01))
    assert relaxed.check(minimum, 0.0) is None
    assert relaxed.note.startswith("relaxed with the run's calculator")
    k = [set(p) for p in relaxed.pairs.tolist()].index({a, b})
    assert relaxed.reference_lengths[k] == pytest.approx(equilibrium, abs=0.01)
    assert BondMonitor(start, 0.25).check(minimum, 0.0).startswith(f"bond {a}-{b} (C-C)")
    further, _, _ = stretched_ethanol(0.6)
    reason = relaxed.check(further, 0.0)
    assert reason.startswith(f"bond {a}-{b} (C-C)") and f"reference {equilibrium:.2f}" in reason
    assert BondMonitor(start, 0.5).check(further, 0.0) is None  # the start reference calls it 0.3 A
    # the references travel in the state: a restored monitor never relaxes again
    def never(atoms):
        raise AssertionError("relaxed again on resume")

    restored = BondMonitor(start, 0.25, relax=never)
    restored.load_state_dict(relaxed.state_dict())
    assert np.array_equal(restored.reference(), relaxed.reference_lengths) and restored.note == relaxed.note


def test_bond_reference_falls_back_to_the_start_frame_with_a_note():
    start, _, _ = stretched_ethanol(0.3)
    monitor = BondMonitor(start, 0.5, relax=RelaxedReference(HarmonicBonds(ethanol()), steps=1))
    with pytest.warns(UserWarning, match="did not converge in 1 steps"):
        assert monitor.check(start, 0.0) is None
    assert monitor.note.startswith("start frame: relaxation did not converge")
    assert np.allclose(monitor.reference_lengths, BondMonitor(start, 0.5).reference_lengths)
    assert monitor.state_dict()["reference"] == monitor.note


def test_relaxed_bond_reference_resumes_bit_identical(tmp_path):
    """A run continued from its checkpoint (relaxed references stored there) equals the straight run."""
    start, _, _ = stretched_ethanol(0.3)
    config = MDConfig(steps=40, timestep_fs=0.5, temperature_K=300, ensemble="langevin", check_every=5,
                      save_every=10, monitors=MonitorConfig(max_bond_deviation=0.5))
    straight = run_md(start, HarmonicBonds(ethanol()), config.model_copy(update={"steps": 80}), tmp_path / "a",
                      progress=False)
    run_md(start, HarmonicBonds(ethanol()), config, tmp_path / "b", progress=False)
    state = json.loads((tmp_path / "b" / "checkpoint.json").read_text())["observers"]["0:monitors"]
    bond = next(v for k, v in state.items() if k.endswith(":bond"))
    assert bond["reference"].startswith("relaxed") and len(bond["reference_lengths"]) == 8
    resumed = run_md(start, HarmonicBonds(ethanol()), config.model_copy(update={"steps": 80}), tmp_path / "b",
                     progress=False)
    assert resumed.stable and straight.stable and resumed.steps == straight.steps == 80
    a, b = (ase.io.read(tmp_path / d / "trajectory.extxyz", ":") for d in "ab")
    assert len(a) == len(b) and all(np.array_equal(x.positions, y.positions) for x, y in zip(a, b))


def test_build_monitors_from_config(tmp_path):
    start = ethanol()
    assert [m.name for m in build_monitors(MonitorConfig(), start)] == ["finite", "min_distance"]
    water_box = compute_rdf([thermal_lattice(np.random.default_rng(0))], rmax=4.0, bins=40)
    config = MonitorConfig(max_bond_deviation=0.5, allowed_species=["C2H6O"],
                           reference_rdf=water_box.save(tmp_path / "ref.json"), rdf_rmax=4.0, rdf_bins=40)
    assert [m.name for m in build_monitors(config, start, HarmonicBonds(start))] == [
        "finite", "min_distance", "bond", "species", "rdf"]
    with pytest.raises(ValueError, match="bond_reference 'relaxed' needs the run's calculator"):
        build_monitors(config, start)
    assert build_monitors(config.model_copy(update={"bond_reference": "start"}), start)[2].name == "bond"
    # a reference trajectory instead of a json: the RDF is computed with rdf_rmax / rdf_bins
    ase.io.write(tmp_path / "ref.extxyz", [thermal_lattice(np.random.default_rng(k)) for k in range(3)])
    from_traj = build_monitors(MonitorConfig(reference_rdf=tmp_path / "ref.extxyz", rdf_rmax=3.0, rdf_bins=30), start)
    assert from_traj[-1].reference.n_frames == 3 and len(from_traj[-1].reference.r) == 30
    with pytest.raises(ValueError, match="missing.json: no such reference"):
        build_monitors(MonitorConfig(reference_rdf=tmp_path / "missing.json"), start)


# ----------------------------------------------------------------- monitors inside MD runs


def test_stable_molecule_run_keeps_all_monitors_quiet(tmp_path):
    start = ethanol()
    config = MDConfig(steps=200, timestep_fs=0.5, temperature_K=300, check_every=5, save_every=50,
                      monitors=MonitorConfig(max_bond_deviation=0.5, allowed_species=["C2H6O"]))
    result = run_md(start, HarmonicBonds(start), config, tmp_path, progress=False)
    assert result.stable and result.reason is None and result.simulated_fs == 100.0
    assert json.loads((tmp_path / "stability.json").read_text())["stable"] is True


def test_hot_molecule_breaks_bond_monitor(tmp_path):
    """At 20000 K the harmonic bonds stretch beyond 0.5 A: the bond monitor stops the run."""
    start = ethanol()
    config = MDConfig(steps=400, timestep_fs=0.2, temperature_K=20000, check_every=2, save_every=100,
                      monitors=MonitorConfig(max_bond_deviation=0.5, min_distance=None))
    result = run_md(start, HarmonicBonds(start, k=5.0), config, tmp_path, progress=False)
    assert not result.stable and result.monitor == "bond"
    assert result.failed_at_fs == result.simulated_fs < 80.0
    stability = json.loads((tmp_path / "stability.json").read_text())
    assert stability["failed_at_fs"] == result.failed_at_fs and stability["reason"].startswith("bond ")


def test_collapse_fires_min_distance_at_the_analytic_time(tmp_path):
    """Two H atoms on a zero-length spring, starting 1 A apart at rest: d(t) = cos(w t) with
    w = sqrt(2k/m); they pass 0.5 A at t = pi / (3 w)."""
    from ase import units

    start = Atoms("H2", positions=[[0, 0, 0], [1.0, 0, 0]])
    k = 2.0
    calc = HarmonicBonds(start, k=k, pairs=[[0, 1]], r0=[0.0])
    dt = 0.1
    config = MDConfig(steps=2000, timestep_fs=dt, temperature_K=0, check_every=1, save_every=1000)
    result = run_md(start, calc, config, tmp_path, progress=False)
    omega = np.sqrt(2 * k / start.get_masses()[0]) * units.fs  # 1/fs
    expected = np.pi / (3 * omega)
    assert result.monitor == "min_distance"
    assert expected <= result.failed_at_fs <= expected + dt + 1e-9


class NaNAfter(Calculator):
    """Wraps a calculator: NaN forces after ``nan_after`` calls, or an exception after ``raise_after``."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, inner, nan_after=None, raise_after=None):
        super().__init__()
        self.inner, self.nan_after, self.raise_after, self.calls = inner, nan_after, raise_after, 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.calls += 1
        if self.raise_after is not None and self.calls > self.raise_after:
            raise RuntimeError("neighbour list overflow")
        energy = self.inner.get_potential_energy(self.atoms)
        forces = self.inner.get_forces(self.atoms).copy()
        if self.nan_after is not None and self.calls > self.nan_after:
            forces[0, 0] = np.nan
        self.results = {"energy": energy, "forces": forces}


@pytest.mark.parametrize("mode", ["nan", "raise"])
def test_nonfinite_and_crashing_calculators_stop_the_run(tmp_path, mode):
    start = ethanol()
    inner = HarmonicBonds(start)
    calc = NaNAfter(inner, nan_after=31 if mode == "nan" else None, raise_after=31 if mode == "raise" else None)
    config = MDConfig(steps=100, timestep_fs=0.5, check_every=10, save_every=10)
    result = run_md(start, calc, config, tmp_path, progress=False)
    assert not result.stable
    if mode == "nan":
        # force evaluation 32 is step 31; the next check is at step 40 (20 fs)
        assert result.monitor == "finite" and result.failed_at_fs == 20.0
        assert result.n_frames == 5  # steps 0, 10, 20, 30 and the failing 40
    else:
        assert result.monitor == "calculator" and result.failed_at_fs == 15.5
        assert result.reason == "RuntimeError: neighbour list overflow"
        assert json.loads((tmp_path / "stability.json").read_text())["monitor"] == "calculator"


class Violent(Calculator):
    """Harmonic bonds, then a runaway force on atom 0 (growing as the cube of its distance from the
    origin, energy left finite) after ``after`` calls; like a neighbour list, it refuses non-finite
    positions."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, inner, after):
        super().__init__()
        self.inner, self.after, self.calls = inner, after, 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if not np.isfinite(self.atoms.positions).all():
            raise ValueError("positions must be finite")
        self.calls += 1
        energy, forces = self.inner.get_potential_energy(self.atoms), self.inner.get_forces(self.atoms).copy()
        if self.calls > self.after:
            with np.errstate(over="ignore"):
                forces[0] = 1e100 * (1.0 + np.abs(self.atoms.positions[0]) ** 3)
        self.results = {"energy": energy, "forces": forces}


def test_a_blow_up_the_calculator_refuses_is_recorded_as_non_finite_not_as_a_calculator_error(tmp_path):
    start = ethanol()
    config = MDConfig(steps=100, timestep_fs=0.5, check_every=10, save_every=10)
    result = run_md(start, Violent(HarmonicBonds(start), after=31), config, tmp_path, progress=False)
    assert not result.stable and result.monitor == "finite"
    assert result.reason.startswith("non-finite position of atom 0")
    assert "ValueError: positions must be finite" in result.reason
    assert result.failed_at_fs < 20.0  # before the next monitor check: the step that could not be evaluated

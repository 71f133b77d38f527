"""The thin engine: ASE's integrator steps without ASE's copies equal ASE's bit for bit, the
calculator's cached per-step path equals the graph of every frame, a run through the engine equals
one stepped by ASE itself, and monitors checked every k steps stop within k steps of the failure."""

import json

import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.build import molecule
from ase.calculators.calculator import compare_atoms
from ase.calculators.emt import EMT
from ase.constraints import FixBondLengths, FixCom
from ase.md.bussi import Bussi
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import thermalize_momenta
from ase.md.verlet import VelocityVerlet
from ase.neighborlist import neighbor_list

from ffpt.dynamics import engine
from ffpt.dynamics.ase_steps import lean_step
from ffpt.dynamics.engine import CHECKPOINT_FILE, Observer
from ffpt.models import NewtonNet
from ffpt.models.calculator import MLIPCalculator, UnknownElementError
from ffpt.models.graph import graph_from_atoms
from ffpt.simulate.config import MDConfig, MonitorConfig
from ffpt.simulate.md import run_md
from ffpt.simulate.monitors import ClosePairs
from test_engine import Attraction  # two atoms pulled together: they pass through each other and part again
from test_md import ShiftedForceLJ, argon

STEPS = 60


def start(constraints=()):
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.05, seed=1)
    thermalize_momenta(atoms, 600, rng=np.random.default_rng(2))
    atoms.set_constraint(list(constraints))
    atoms.calc = EMT()
    return atoms


def integrator(kind, atoms, seed=3):
    dt = 0.5 * units.fs
    if kind == "nve":
        return VelocityVerlet(atoms, timestep=dt)
    if kind == "langevin":
        return Langevin(atoms, timestep=dt, temperature_K=500, friction=0.02 / units.fs, fixcm=False,
                        rng=np.random.default_rng(seed))
    return Bussi(atoms, timestep=dt, temperature_K=500, taut=20 * units.fs, rng=np.random.default_rng(seed))


@pytest.mark.parametrize("fix_com", [False, True])
@pytest.mark.parametrize("kind", ["nve", "langevin", "bussi"])
def test_lean_steps_equal_ase_bit_for_bit(kind, fix_com):
    constraints = [FixCom()] if fix_com else []
    reference, lean = start(constraints), start(constraints)
    ase_dyn, lean_dyn = integrator(kind, reference), integrator(kind, lean)
    step = lean_step(lean_dyn)
    assert step != lean_dyn.step  # the lean path is taken
    for _ in range(STEPS):
        ase_dyn.step()
        step()
    assert np.array_equal(lean.positions, reference.positions)
    assert np.array_equal(lean.get_momenta(), reference.get_momenta())
    assert np.abs(lean.positions - start().positions).max() > 0.05  # it moved
    if kind != "nve":
        assert lean_dyn.rng.bit_generator.state == ase_dyn.rng.bit_generator.state
    if kind == "bussi":
        assert lean_dyn.transferred_energy == ase_dyn.transferred_energy != 0.0
    if fix_com:
        com = reference.get_center_of_mass()
        assert np.allclose(lean.get_center_of_mass(), com, atol=1e-12)


def test_other_constraints_and_integrators_step_through_ase():
    rigid = start([FixBondLengths([(0, 1)])])
    dyn = integrator("nve", rigid)
    assert lean_step(dyn) == dyn.step
    old = Langevin(start(), timestep=units.fs, temperature_K=300, friction=0.01, fixcm=True)
    assert lean_step(old) == old.step


# ----------------------------------------------------------------- the calculator's per-step path


def tiny_calculator():
    torch.manual_seed(0)
    model = NewtonNet(elements=[1, 6, 8], cutoff=4.0, n_features=8, n_layers=1, n_basis=8)
    return MLIPCalculator(model, dtype=torch.float64)


def assert_same_graph(a, b):
    for name in ("positions", "species", "batch", "edge_index", "shifts", "cell", "n_atoms", "spin"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and torch.equal(x, y), name


def test_calculator_graph_equals_graph_of_every_frame_and_rechecks_what_changed():
    calc = tiny_calculator()
    atoms = molecule("CH3CH2OH")
    box = atoms.copy()
    box.cell, box.pbc = [6.0, 6.5, 7.0], True
    for frame in (atoms, box, atoms):  # fixed inputs made anew when cell and pbc change, and back
        for k in range(3):
            frame.positions[k] += 0.1
            assert_same_graph(calc.graph(frame), graph_from_atoms(frame, calc.elements, calc.neighbors,
                                                                  dtype=calc.dtype))
    spun = atoms.copy()
    spun.info["spin"] = 3  # a spin the model has no input for: checked again, refused
    with pytest.raises(Exception, match="spin multiplicity 3"):
        calc.graph(spun)
    nitrogen = atoms.copy()
    nitrogen.numbers[0] = 7
    with pytest.raises(UnknownElementError, match="atom 0 \\(N\\)"):
        calc.graph(nitrogen)


def test_calculator_state_checks_and_forces_equal_a_fresh_calculation_every_step():
    calc = tiny_calculator()
    atoms = molecule("CH3CH2OH")
    atoms.calc = calc
    atoms.get_forces()
    rng = np.random.default_rng(0)
    for _ in range(4):
        atoms.positions += rng.normal(0, 0.02, atoms.positions.shape)
        assert calc.check_state(atoms) == ["positions"]
        forces, energy = atoms.get_forces(), atoms.get_potential_energy()
        assert calc.check_state(atoms) == []  # the same frame: answered from the cache
        expected = calc.evaluate(graph_from_atoms(atoms, calc.elements, calc.neighbors, dtype=calc.dtype), False)
        assert energy == expected[0] and np.array_equal(forces, expected[1])
    charged = atoms.copy()
    charged.info["charge"] = 1
    assert calc.check_state(charged) == ["charge"]


# ----------------------------------------------------------------- monitors


@pytest.mark.parametrize("pbc, n", [(False, 40), (False, 80), (True, 40), ((True, False, True), 40)])
def test_close_pairs_are_ase_neighbour_list_pairs(pbc, n):
    rng = np.random.default_rng(4)
    atoms = Atoms(f"H{n}", positions=rng.uniform(0, 6, (n, 3)), cell=[6.0, 6.0, 6.0], pbc=pbc)
    for cutoff in (0.5, 1.3, 2.9):
        i, j, d = ClosePairs(cutoff)(atoms)
        ai, aj, ad = neighbor_list("ijd", atoms, cutoff)
        ours, theirs = sorted(zip(i, j, d)), sorted(zip(ai, aj, ad))
        assert [p[:2] for p in ours] == [p[:2] for p in theirs] and len(ours) > 0
        np.testing.assert_allclose([p[2] for p in ours], [p[2] for p in theirs], rtol=0, atol=1e-14)


def test_calculator_reports_the_changes_ase_reports():
    calc = tiny_calculator()
    base = molecule("CH3CH2OH")
    calc.get_forces(base)
    tweaks = {
        "below tolerance": lambda a: a.positions.__setitem__((0, 0), a.positions[0, 0] + 1e-16),
        "positions": lambda a: a.positions.__setitem__((0, 0), a.positions[0, 0] + 1e-3),
        "non-finite": lambda a: a.positions.__setitem__((1, 1), np.nan),
        "cell": lambda a: a.set_cell([5.0, 5.0, 5.0]),
        "pbc": lambda a: a.set_pbc(True),
        "numbers": lambda a: a.numbers.__setitem__(0, 1),
        "initial_charges": lambda a: a.set_initial_charges(np.full(len(a), 0.1)),
    }
    for what, tweak in tweaks.items():
        atoms = base.copy()
        tweak(atoms)
        assert sorted(calc.check_state(atoms)) == sorted(compare_atoms(calc.atoms, atoms)), what


# ----------------------------------------------------------------- the engine around them


def run_argon(out, ensemble, **overrides):
    config = MDConfig(**{**dict(steps=40, timestep_fs=5.0, temperature_K=40, ensemble=ensemble, seed=5,
                               save_every=10, check_every=5), **overrides})
    return run_md(argon(), ShiftedForceLJ(), config, out, progress=False)


@pytest.mark.parametrize("ensemble", ["nve", "langevin", "bussi"])
def test_a_run_equals_the_run_stepped_by_ase_itself(tmp_path, monkeypatch, ensemble):
    lean = run_argon(tmp_path / "lean", ensemble)
    monkeypatch.setattr(engine, "lean_step", lambda dyn: dyn.step)  # the engine's path before the thin engine
    stepped = run_argon(tmp_path / "ase", ensemble)
    assert lean.stable and stepped.stable and lean.n_frames == stepped.n_frames == 5
    a, b = (json.loads((tmp_path / name / CHECKPOINT_FILE).read_text()) for name in ("lean", "ase"))
    for key in ("step", "positions", "momenta", "rng", "bath_energy"):
        assert a[key] == b[key], key
    assert a["observers"]["1:trajectory"]["frames"] == b["observers"]["1:trajectory"]["frames"]
    without_wall = [[line.split(" wall_s=")[0] + line.split(" wall_s=")[-1].partition(" ")[2] for line in
                     (tmp_path / name / "trajectory.extxyz").read_text().splitlines()] for name in ("lean", "ase")]
    assert without_wall[0] == without_wall[1]  # frames written alike (wall time aside)


def test_frames_reach_the_disk_before_the_checkpoint_that_counts_them(tmp_path, monkeypatch):
    events = []
    real_fsync, real_write = engine.fsync_file, engine.atomic_write_text

    def fsync(path):
        events.append(("fsync", path.name))
        real_fsync(path)

    def write(path, text):
        if path.name == CHECKPOINT_FILE:
            events.append(("checkpoint", json.loads(text)["step"]))
        return real_write(path, text)

    monkeypatch.setattr(engine, "fsync_file", fsync)
    monkeypatch.setattr(engine, "atomic_write_text", write)
    run_argon(tmp_path, "langevin", steps=20)
    assert events == [("fsync", "trajectory.extxyz"), ("checkpoint", 0), ("fsync", "trajectory.extxyz"),
                      ("checkpoint", 10), ("fsync", "trajectory.extxyz"), ("checkpoint", 20)]


class Distances(Observer):
    """Records the dimer's distance at every step (A)."""

    name = "distances"

    def __init__(self):
        self.values = []

    def on_step(self, state):
        self.values.append(state.atoms.get_distance(0, 1))


DIMER_CONFIG = MDConfig(steps=120, timestep_fs=0.5, temperature_K=30, ensemble="nve", seed=0, save_every=1000,
                        zero_rotation=False, monitors=MonitorConfig(min_distance=None))


def dimer():
    return Atoms("H2", positions=[[0, 0, 0], [1.5, 0, 0]])


@pytest.fixture(scope="module")
def free_distances(tmp_path_factory):
    """Per-step distances of the dimer's run without a distance monitor."""
    distances = Distances()
    free = run_md(dimer(), Attraction(), DIMER_CONFIG, tmp_path_factory.mktemp("free"), observers=[distances],
                  progress=False)
    assert free.stable and min(distances.values) < 0.5
    return distances.values


@pytest.mark.parametrize("every", [1, 4, 7])
def test_a_monitor_checked_every_k_steps_stops_at_the_first_checked_step_past_the_failure(tmp_path, every,
                                                                                        free_distances):
    checked = DIMER_CONFIG.model_copy(update={"check_every": every, "monitors": MonitorConfig(min_distance=0.5)})
    result = run_md(dimer(), Attraction(), checked, tmp_path, progress=False)
    expected = next(s for s, d in enumerate(free_distances) if d < 0.5 and s % every == 0)
    assert not result.stable and result.monitor == "min_distance" and result.steps == expected
    assert next(s for s, d in enumerate(free_distances) if d < 0.5) <= expected  # a closer pass between checks
    # is not seen (every=7: steps 9-12): the cadence trades detection delay for speed, never checks off-grid
    last = ase.io.read(tmp_path / "trajectory.extxyz", -1)
    assert last.info["step"] == expected and last.get_distance(0, 1) == pytest.approx(free_distances[expected],
                                                                                     abs=1e-7)

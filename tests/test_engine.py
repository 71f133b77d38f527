"""The one MD engine: bit-identical resume of md and metad after a kill, observers that plug in,
metadynamics stopped by a stability monitor, input errors that are not instabilities."""

import json

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from ffpt.config import ConfigError
from ffpt.errors import UserError
from ffpt.jobs.md import run_batch
from ffpt.simulate.config import MDConfig, MonitorConfig
from ffpt.simulate.cvs import Distance, Position
from ffpt.dynamics.engine import CHECKPOINT_FILE, CheckpointError, MDResult, Observer, Stop
from ffpt.simulate.md import run_md
from ffpt.simulate.metad import MetadParameters, run_metadynamics
from test_md import ShiftedForceLJ, argon


class KilledAfter(Calculator):
    """Wraps a calculator; raises KeyboardInterrupt (as a kill would stop the process) on call ``n + 1``."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, inner, n):
        super().__init__()
        self.inner, self.n, self.calls = inner, n, 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.calls += 1
        if self.calls > self.n:
            raise KeyboardInterrupt
        self.inner.calculate(self.atoms, ["energy", "forces"], system_changes)
        self.results = dict(self.inner.results)


class UnknownElement(UserError):
    """What a model raises for an element it was not trained on."""


class RejectsStart(Calculator):
    implemented_properties = ["energy", "forces"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        raise UnknownElement("model.ffpt: element Ar (atom 0) is not in the model's elements [H, O]")


def checkpoint(out):
    return json.loads((out / CHECKPOINT_FILE).read_text())


def frames(path):
    return ase.io.read(path, ":")


def assert_same_trajectory(a, b):
    fa, fb = frames(a), frames(b)
    assert [f.info["step"] for f in fa] == [f.info["step"] for f in fb]
    for x, y in zip(fa, fb):
        assert np.array_equal(x.positions, y.positions) and np.array_equal(x.get_momenta(), y.get_momenta())
        assert x.info["epot"] == y.info["epot"]


# ----------------------------------------------------------------- md


@pytest.mark.parametrize("ensemble", ["nve", "langevin", "bussi"])
def test_md_resumes_bit_identically_after_a_kill(tmp_path, ensemble):
    config = MDConfig(steps=60, timestep_fs=5.0, temperature_K=40, ensemble=ensemble, seed=5, save_every=10,
                      check_every=5)
    full = run_md(argon(), ShiftedForceLJ(), config, tmp_path / "full", progress=False)
    out = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):  # killed in step 38: frames 0-30 and the step-30 checkpoint exist
        run_md(argon(), KilledAfter(ShiftedForceLJ(), 38), config, out, progress=False)
    assert checkpoint(out)["step"] == 30 and not (out / "stability.json").exists()
    with open(out / "trajectory.extxyz", "a") as handle:  # a frame torn by the kill
        handle.write("32\nLattice=\"10.52 0 0 0 10.52 0 0 0 10.52\" Properties=species:S:1:pos:R:3\nAr 0.0 0.")
    resumed = run_md(argon(), ShiftedForceLJ(), config, out, progress=False)
    assert resumed.stable and resumed.steps == full.steps == 60 and resumed.n_frames == full.n_frames == 7
    a, b = checkpoint(out), checkpoint(tmp_path / "full")
    for key in ("step", "positions", "momenta", "rng", "bath_energy"):
        assert a[key] == b[key], key  # JSON floats round-trip exactly: bitwise equal
    assert_same_trajectory(out / "trajectory.extxyz", tmp_path / "full" / "trajectory.extxyz")


class Uncertainty(Observer):
    """A stand-in for committee MD: counts the steps it saw (resumable state) and stops at a threshold."""

    name = "uncertainty"

    def __init__(self, stop_at):
        self.stop_at, self.seen = stop_at, 0

    def on_step(self, state):
        self.seen += 1
        if state.step >= self.stop_at:
            return Stop(self.name, f"spread too large at step {state.step}")
        return None

    def state_dict(self):
        return {"seen": self.seen}

    def load_state_dict(self, state):
        self.seen = state["seen"]


def test_an_observer_plugs_in_checkpoints_its_state_and_stops_the_run(tmp_path):
    config = MDConfig(steps=40, timestep_fs=5.0, temperature_K=40, ensemble="langevin", save_every=5)
    first = Uncertainty(stop_at=1000)
    run_md(argon(), ShiftedForceLJ(), config.model_copy(update={"steps": 20}), tmp_path, observers=[first],
           progress=False)
    assert first.seen == 21 and checkpoint(tmp_path)["observers"]["1:uncertainty"] == {"seen": 21}
    second = Uncertainty(stop_at=33)
    result = run_md(argon(), ShiftedForceLJ(), config, tmp_path, observers=[second], progress=False)
    assert second.seen == 21 + 13  # restored, then steps 21-33
    assert not result.stable and result.monitor == "uncertainty" and result.failed_at_fs == 165.0
    assert frames(tmp_path / "trajectory.extxyz")[-1].info["step"] == 33  # the stopping frame is saved



class Stepwise(Observer):
    """Records the steps it is called on; acts (stops the run) only on multiples of ``every`` when given."""

    name = "stepwise"

    def __init__(self, every=None, stop_at=None):
        if every is not None:
            self.every = every
        self.stop_at, self.steps = stop_at, []

    def on_step(self, state):
        self.steps.append(state.step)
        if self.stop_at is not None and state.step >= self.stop_at and state.step % self.every == 0:
            return Stop(self.name, f"step {state.step}")
        return None


def test_observers_are_called_on_the_steps_they_act_on_and_results_do_not_change(tmp_path):
    """Observers that declare a stride are called only where some observer acts (every multiple of
    a stride, the last step, a stop); one without a stride sees every step; the trajectory, momenta
    and stop are those of a run where every step is observed."""
    config = MDConfig(steps=23, timestep_fs=5.0, temperature_K=40, ensemble="langevin", save_every=5, check_every=4)
    thin = Stepwise(every=6)
    run_md(argon(), ShiftedForceLJ(), config, tmp_path / "thin", observers=[thin], progress=False)
    assert thin.steps == [s for s in range(24) if s % 4 == 0 or s % 5 == 0 or s % 6 == 0 or s == 23]
    every = Stepwise()
    run_md(argon(), ShiftedForceLJ(), config, tmp_path / "every", observers=[every], progress=False)
    assert every.steps == list(range(24))
    assert_same_trajectory(tmp_path / "thin" / "trajectory.extxyz", tmp_path / "every" / "trajectory.extxyz")
    stopper = Stepwise(every=7, stop_at=10)
    result = run_md(argon(), ShiftedForceLJ(), config, tmp_path / "stop", observers=[stopper], progress=False)
    assert result.monitor == "stepwise" and result.steps == 14 and stopper.steps[-1] == 14
    assert frames(tmp_path / "stop" / "trajectory.extxyz")[-1].info["step"] == 14  # the stopping frame

def test_an_input_error_on_the_start_frame_is_raised_not_recorded_as_instability(tmp_path):
    config = MDConfig(steps=10, temperature_K=40)
    with pytest.raises(UnknownElement, match="not in the model"):
        run_md(argon(), RejectsStart(), config, tmp_path / "one", progress=False)
    assert not (tmp_path / "one" / "stability.json").exists()
    with pytest.raises(UnknownElement):
        run_batch(argon(), RejectsStart, [0, 1], config, tmp_path / "batch", progress=False)
    assert not (tmp_path / "batch" / "batch.json").exists()


def test_a_corrupted_or_foreign_checkpoint_is_a_user_error_naming_it(tmp_path):
    config = MDConfig(steps=10, temperature_K=40, save_every=5)
    run_md(argon(), ShiftedForceLJ(), config, tmp_path, progress=False)
    (tmp_path / CHECKPOINT_FILE).write_text('{"step": 3, "posit')
    with pytest.raises(CheckpointError, match=f"{CHECKPOINT_FILE}: corrupted checkpoint"):
        run_md(argon(), ShiftedForceLJ(), config, tmp_path, progress=False)
    (tmp_path / CHECKPOINT_FILE).write_text('{"step": 3}')
    with pytest.raises(CheckpointError, match="not an ffpt MD checkpoint"):
        run_md(argon(), ShiftedForceLJ(), config, tmp_path, progress=False)


# ----------------------------------------------------------------- metadynamics


class DoubleWell(Calculator):
    """One particle: U = h ((x/a)^2 - 1)^2 + (y^2 + z^2) / 2 (eV, A)."""

    implemented_properties = ["energy", "forces"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        x, y, z = self.atoms.positions[0]
        u = x * x - 1
        self.results = {"energy": 0.1 * u * u + 0.5 * (y * y + z * z),
                        "forces": np.array([[-0.4 * u * x, -y, -z]])}


def particle():
    atoms = Atoms("H", positions=[[-1.0, 0.0, 0.0]])
    atoms.set_masses([4.0])
    return atoms


PARAMS = dict(steps=300, temperature=300.0, sigma=(0.1,), height=0.005, pace=5, biasfactor=4.0, timestep=10.0,
              friction=0.02, seed=3, colvar_stride=5, trajectory_stride=20, checkpoint_every=50)


def metad(out, calc, **overrides):
    params = MetadParameters(**{**PARAMS, **overrides})
    return run_metadynamics(particle(), calc, [Position(0, 0, name="x")], params, out, progress=False)


def test_metad_resumes_bit_identically_after_a_kill(tmp_path):
    full = metad(tmp_path / "full", DoubleWell())
    out = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):  # killed in step 174: outputs run past the step-150 checkpoint
        metad(out, KilledAfter(DoubleWell(), 174))
    assert checkpoint(out)["step"] == 150
    with open(out / "HILLS", "a") as fh:  # and a line torn by the kill
        fh.write("2.51 0.3")
    resumed = metad(out, DoubleWell())
    assert resumed.steps == full.steps == 300 and resumed.stability.stable
    assert len(resumed.hills) == len(full.hills) == 61
    for key in ("time", "center", "sigma", "height"):
        assert np.array_equal(getattr(resumed.hills, key), getattr(full.hills, key)), key
    for name in ("HILLS", "COLVAR"):
        assert (out / name).read_text() == (tmp_path / "full" / name).read_text(), name
    a, b = checkpoint(out), checkpoint(tmp_path / "full")
    assert a["positions"] == b["positions"] and a["momenta"] == b["momenta"] and a["rng"] == b["rng"]
    assert_same_trajectory(out / "trajectory.extxyz", tmp_path / "full" / "trajectory.extxyz")
    again = metad(out, DoubleWell())  # a finished run is not rerun
    assert np.array_equal(again.hills.height, full.hills.height) and again.stability == resumed.stability


def test_metad_refuses_a_folder_of_another_config(tmp_path):
    metad(tmp_path / "a", DoubleWell(), steps=20)
    with pytest.raises(ConfigError, match=f"{tmp_path / 'a'}: cannot resume, config differs .* in pace, seed"):
        metad(tmp_path / "a", DoubleWell(), steps=40, pace=10, seed=4)
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "checkpoint.npz").write_bytes(b"PK")  # the format of earlier ffpt versions
    with pytest.raises(CheckpointError, match="checkpoint.npz: a run of an earlier ffpt cannot be resumed"):
        metad(tmp_path / "old", DoubleWell(), steps=20)


class Attraction(Calculator):
    """Two atoms pulled together: U = k |r|^2 (eV, A); nothing stops them colliding."""

    implemented_properties = ["energy", "forces"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        d = self.atoms.positions[1] - self.atoms.positions[0]
        self.results = {"energy": float(2.0 * d @ d), "forces": np.array([4.0 * d, -4.0 * d])}


def test_metad_stops_on_a_monitor_failure_like_md(tmp_path):
    dimer = Atoms("H2", positions=[[0, 0, 0], [1.5, 0, 0]])
    params = MetadParameters(steps=2000, temperature=300.0, sigma=(0.1,), height=0.001, pace=10, timestep=0.2,
                             friction=0.001, colvar_stride=1, trajectory_stride=50, check_every=1)
    result = run_metadynamics(dimer, Attraction(), [Distance(0, 1, name="d")], params, tmp_path, progress=False,
                              monitors=MonitorConfig(min_distance=0.5))
    stability = json.loads((tmp_path / "stability.json").read_text())
    assert set(stability) == set(MDResult.__dataclass_fields__)  # the record ffpt md writes
    assert stability["stable"] is False and stability["monitor"] == "min_distance"
    assert result.stability.failed_at_fs == pytest.approx(stability["failed_at_fs"]) and result.steps < 2000
    last = frames(tmp_path / "trajectory.extxyz")[-1]
    assert last.info["step"] == result.steps and last.get_distance(0, 1) < 0.5  # the failing frame is saved
    rows = [line for line in (tmp_path / "COLVAR").read_text().splitlines() if not line.startswith("#")]
    assert len(rows) == result.steps + 1  # nothing after the failure

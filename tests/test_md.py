"""MD physics (NVE conservation, canonical thermostats), seeding, resume after a kill, batch survival."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT

from ffpt.analysis.survival import plot_survival, survival_curve
from ffpt.data import set_labels
from ffpt.jobs.md import run_batch
from ffpt.config import ConfigError
from ffpt.simulate.config import MDConfig, MonitorConfig
from ffpt.simulate.md import CHECKPOINT_FILE, run_md
from ffpt.simulate.monitors import Monitor


class ShiftedForceLJ(Calculator):
    """Lennard-Jones (argon defaults) with energy and force shifted to zero at ``rc`` (smooth);
    cubic periodic box by minimum image (rc < L/2) or an open cluster. eV, A."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, epsilon=0.0104, sigma=3.4, rc=5.2, delay_s=0.0):
        super().__init__()
        self.epsilon, self.sigma, self.rc, self.delay_s = epsilon, sigma, rc, delay_s

    def _v_dv(self, r):
        sr6 = (self.sigma / r) ** 6
        return 4 * self.epsilon * (sr6**2 - sr6), 4 * self.epsilon * (6 * sr6 - 12 * sr6**2) / r

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        time.sleep(self.delay_s)  # lets a test kill a run midway
        d = self.atoms.positions[None, :, :] - self.atoms.positions[:, None, :]  # r_j - r_i
        if self.atoms.pbc.all():
            lengths = self.atoms.cell.lengths()
            d -= lengths * np.round(d / lengths)
        r = np.linalg.norm(d, axis=-1)
        np.fill_diagonal(r, np.inf)
        inside = r < self.rc
        v, dv = self._v_dv(np.where(inside, r, self.rc))
        vc, dvc = self._v_dv(self.rc)
        energy = 0.5 * np.sum(np.where(inside, v - vc - (r - self.rc) * dvc, 0.0))
        dedr = np.where(inside, dv - dvc, 0.0)
        self.results = {"energy": float(energy), "forces": np.sum((dedr / r)[:, :, None] * d, axis=1)}


def argon(rattle=0.0):
    atoms = bulk("Ar", "fcc", a=5.26, cubic=True).repeat(2)  # 32 atoms, L = 10.52 A
    if rattle:
        atoms.rattle(rattle, seed=0)
    return atoms


def frames_of(out: Path, fmt="extxyz"):
    return ase.io.read(out / f"trajectory.{fmt}", ":")


def series(frames, key):
    return np.array([f.info[key] for f in frames], dtype=float)


def test_test_calculator_forces_are_minus_energy_gradient():
    atoms = argon(rattle=0.2)
    calc = ShiftedForceLJ()
    forces = calc.get_forces(atoms)
    h = 1e-5
    for a, c in [(0, 0), (7, 1), (31, 2)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[a, c] += h
        minus.positions[a, c] -= h
        numeric = -(calc.get_potential_energy(plus) - calc.get_potential_energy(minus)) / (2 * h)
        assert forces[a, c] == pytest.approx(numeric, rel=1e-6, abs=1e-9)
    assert np.abs(forces.sum(axis=0)).max() < 1e-12  # Newton's third law


def test_nve_energy_drift_is_below_bound(tmp_path):
    """Bound: |d(E_tot/N)/dt| < 0.02 meV/atom/ps and RMS(E_tot/N) < 0.02 meV/atom for EMT Cu
    (32 atoms, periodic, 300 K, dt = 2 fs, 0.5 ps)."""
    config = MDConfig(steps=250, timestep_fs=2.0, temperature_K=300, save_every=5, check_every=50)
    result = run_md(bulk("Cu", cubic=True).repeat(2), EMT(), config, tmp_path, progress=False)
    frames = frames_of(tmp_path)
    assert result.stable and result.n_frames == len(frames) == 51
    t_ps = series(frames, "time_fs") / 1000
    assert np.allclose(t_ps, np.arange(51) * 0.01)
    e = series(frames, "etot") / 32
    assert abs(np.polyfit(t_ps, e, 1)[0]) < 2e-5
    assert e.std() < 2e-5
    assert series(frames, "temperature_K").std() > 10  # energy really flows between E_kin and E_pot


def test_verlet_energy_error_scales_with_dt_squared(tmp_path):
    """Velocity Verlet is second order: halving dt cuts the energy fluctuation about 4x."""
    rms = {}
    for dt in (10.0, 5.0):
        config = MDConfig(steps=int(2000 / dt), timestep_fs=dt, temperature_K=40, save_every=4, check_every=100)
        run_md(argon(), ShiftedForceLJ(), config, tmp_path / f"dt{dt}", progress=False)
        rms[dt] = series(frames_of(tmp_path / f"dt{dt}"), "etot").std()
    assert 3.0 < rms[10.0] / rms[5.0] < 5.5


@pytest.mark.parametrize("ensemble", ["langevin", "bussi"])
def test_thermostat_samples_canonical_temperature(tmp_path, ensemble):
    """<T> = T0 within 4 block-average standard errors plus 1 % (time-step bias); Var(T)/<T>^2 =
    2/N_dof (canonical kinetic energy; N_dof = 3N - 3 with the centre of mass fixed) within 35 %.
    Over seeds 1-8 the observed ranges were |z| < 2.9 and 0.85-1.25 for the variance ratio; NVE gives
    a ratio of about 0.5 and a Berendsen-like thermostat about 0."""
    t0 = 40.0
    config = MDConfig(steps=2000, timestep_fs=5.0, temperature_K=t0, ensemble=ensemble, friction_per_fs=0.01,
                      taut_fs=100, seed=1, save_every=10, check_every=100)
    run_md(argon(), ShiftedForceLJ(), config, tmp_path, progress=False)
    frames = frames_of(tmp_path)
    temps = series(frames, "temperature_K")[20:]  # drop 1 ps of equilibration
    blocks = temps[: len(temps) // 10 * 10].reshape(10, -1).mean(axis=1)
    stderr = blocks.std(ddof=1) / np.sqrt(10)
    assert abs(temps.mean() - t0) < 4 * stderr + 0.01 * t0
    n_dof = 3 * 32 - 3
    assert abs(temps.var() / temps.mean() ** 2 / (2 / n_dof) - 1) < 0.35
    if ensemble == "bussi":  # E_tot minus the energy the thermostat put in is conserved
        conserved = (series(frames, "etot") - series(frames, "bath_energy")) / 32
        assert np.ptp(conserved) < 1e-5


def test_same_seed_same_trajectory_other_seed_differs(tmp_path):
    config = MDConfig(steps=40, timestep_fs=5.0, temperature_K=40, ensemble="langevin", save_every=20)
    labelled = argon()
    set_labels(labelled, -1.0, np.zeros((32, 3)))  # stale reference labels must not reach the trajectory
    for name, seed in [("a", 3), ("b", 3), ("c", 4)]:
        run_md(labelled, ShiftedForceLJ(), config.model_copy(update={"seed": seed}), tmp_path / name, progress=False)
    a, b, c = (frames_of(tmp_path / n)[-1] for n in "abc")
    assert np.array_equal(a.positions, b.positions) and np.array_equal(a.get_momenta(), b.get_momenta())
    assert not np.allclose(a.positions, c.positions)
    assert "REF_energy" not in a.info and "REF_forces" not in a.arrays


def test_initial_velocities_have_no_drift_or_rotation(tmp_path):
    cluster = argon(rattle=0.1)
    cluster.pbc = False
    cluster.cell = None
    config = MDConfig(steps=1, temperature_K=300, save_every=1)
    run_md(cluster, ShiftedForceLJ(), config, tmp_path, progress=False)
    start = frames_of(tmp_path)[0]
    p = start.get_momenta()
    assert np.abs(p.sum(axis=0)).max() < 1e-6  # extxyz keeps 8 decimals
    r = start.positions - start.get_center_of_mass()
    assert np.abs(np.cross(r, p).sum(axis=0)).max() < 1e-5
    assert 150 < start.info["temperature_K"] < 450


# ----------------------------------------------------------------- resume


RESUME_CONFIG = dict(steps=200, timestep_fs=5.0, temperature_K=40, ensemble="langevin", seed=7,
                     save_every=5, check_every=5)


def assert_same_frames(resumed, reference):
    assert [f.info["step"] for f in resumed] == [f.info["step"] for f in reference]
    for x, y in zip(resumed, reference):
        assert np.allclose(x.positions, y.positions, atol=2e-8)
        assert np.allclose(x.get_momenta(), y.get_momenta(), atol=2e-8)


def test_killed_process_resumes_to_full_length_without_duplicates(tmp_path):
    """SIGKILL a real MD process midway; calling run_md again finishes the run, and the frames
    equal those of an uninterrupted run (same seed) with no step duplicated or missing."""
    out = tmp_path / "killed"
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_md import ShiftedForceLJ, argon
        from ffpt.simulate.config import MDConfig
        from ffpt.simulate.md import run_md
        run_md(argon(), ShiftedForceLJ(delay_s=0.004), MDConfig(**{RESUME_CONFIG!r}), {str(out)!r}, progress=False)
    """))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    step = 0
    try:
        while step < 40:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.time() < deadline, "the MD process made no progress"
            time.sleep(0.05)
            try:
                step = json.loads((out / CHECKPOINT_FILE).read_text())["step"]
            except (FileNotFoundError, json.JSONDecodeError):
                pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed_at = json.loads((out / CHECKPOINT_FILE).read_text())["step"]
    assert 40 <= killed_at < 200 and not (out / "stability.json").exists()

    result = run_md(argon(), ShiftedForceLJ(), MDConfig(**RESUME_CONFIG), out, progress=False)
    reference = run_md(argon(), ShiftedForceLJ(), MDConfig(**RESUME_CONFIG), tmp_path / "ref", progress=False)
    assert result.stable and result.simulated_fs == reference.simulated_fs == 1000.0
    assert result.n_frames == reference.n_frames == 41
    assert_same_frames(frames_of(out), frames_of(tmp_path / "ref"))


class Interrupt(Monitor):
    """Simulates a kill: raises once the run reaches ``at_fs``."""

    name = "interrupt"

    def __init__(self, at_fs):
        self.at_fs = at_fs

    def check(self, atoms, time_fs):
        if time_fs >= self.at_fs:
            raise KeyboardInterrupt
        return None


@pytest.mark.parametrize("fmt", ["extxyz", "traj"])
def test_resume_discards_frames_written_after_the_checkpoint(tmp_path, fmt):
    config = MDConfig(**{**RESUME_CONFIG, "steps": 60, "check_every": 1, "trajectory_format": fmt})
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_md(argon(), ShiftedForceLJ(), config, out, extra_monitors=[Interrupt(137.0)], progress=False)
    # a kill after the frame write but before the checkpoint: a torn extxyz frame / an extra traj frame
    path = out / f"trajectory.{fmt}"
    if fmt == "extxyz":
        with open(path, "a") as handle:
            handle.write("32\nLattice=\"10.52 0 0 0 10.52 0 0 0 10.52\" Properties=species:S:1:pos:R:3\nAr 0.0 0.")
    else:
        with ase.io.Trajectory(path, "a") as traj:
            traj.write(argon())
    result = run_md(argon(), ShiftedForceLJ(), config, out, progress=False)
    run_md(argon(), ShiftedForceLJ(), config, tmp_path / "ref", progress=False)
    assert result.stable and result.n_frames == 13
    assert_same_frames(frames_of(out, fmt), frames_of(tmp_path / "ref", fmt))


def test_resume_rules(tmp_path):
    config = MDConfig(**{**RESUME_CONFIG, "steps": 20})
    first = run_md(argon(), ShiftedForceLJ(), config, tmp_path, progress=False)
    again = run_md(argon(), ShiftedForceLJ(), config, tmp_path, progress=False)
    assert again == first  # a finished run is not rerun
    longer = run_md(argon(), ShiftedForceLJ(), config.model_copy(update={"steps": 40}), tmp_path, progress=False)
    assert longer.simulated_fs == 200.0 and longer.n_frames == 9
    assert [f.info["step"] for f in frames_of(tmp_path)] == list(range(0, 41, 5))
    with pytest.raises(ConfigError, match="differs from md_config.yaml in seed, temperature_K"):
        run_md(argon(), ShiftedForceLJ(), config.model_copy(update={"seed": 1, "temperature_K": 50}), tmp_path)
    with pytest.raises(ConfigError, match="different structure"):
        run_md(bulk("Cu", cubic=True).repeat(2), ShiftedForceLJ(), config, tmp_path)


# ----------------------------------------------------------------- survival and batches


def test_kaplan_meier_survival_with_censoring():
    # failures at 2, 6, 8 fs; one run stable until it stopped at 4 fs (censored)
    curve = survival_curve([2.0, 4.0, 6.0, 8.0], [True, False, True, True])
    assert curve.at(1.0) == 1.0
    assert curve.at(3.0) == pytest.approx(0.75)
    assert curve.at(6.0) == pytest.approx(0.375)  # 0.75 * (1 - 1/2): only 2 runs still at risk
    assert curve.at(9.0) == 0.0
    assert curve.median_fs == 6.0 and curve.n_failed == 3
    stable = survival_curve([10.0, 10.0], [False, False])
    assert stable.median_fs is None and stable.at(10.0) == 1.0
    with pytest.raises(ValueError, match="equal, non-empty"):
        survival_curve([1.0], [True, False])


def test_batch_survival_of_a_collapsing_dimer(tmp_path):
    """An attractive-only H2 'model' collapses at a seed-dependent time; the batch records each
    failure, the survival curve and its median, and does not rerun finished seeds."""

    class Spring(Calculator):
        implemented_properties = ["energy", "forces"]

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            d = self.atoms.positions[1] - self.atoms.positions[0]
            self.results = {"energy": float(d @ d), "forces": np.array([2 * d, -2 * d])}

    dimer = Atoms("H2", positions=[[0, 0, 0], [1.5, 0, 0]])
    config = MDConfig(steps=400, timestep_fs=0.2, temperature_K=1000, ensemble="langevin",
                      friction_per_fs=0.05, check_every=1, save_every=50, monitors=MonitorConfig(min_distance=0.5))
    batch = run_batch(dimer, Spring, [0, 1, 2, 3], config, tmp_path, progress=False, label="dimer")
    times = batch.time_to_failure_fs
    assert all(t is not None and 0 < t < 80 for t in times) and len(set(times)) > 1
    assert batch.survival.median_fs == sorted(times)[1]  # Kaplan-Meier median of 4 failures
    summary = json.loads((tmp_path / "batch.json").read_text())
    assert summary["time_to_failure_fs"] == times and summary["fraction_stable_at_end"] == 0.0
    assert (tmp_path / "survival.png").read_bytes()[:4] == b"\x89PNG"
    assert all((tmp_path / f"seed_{s}" / "stability.json").exists() for s in range(4))
    assert run_batch(dimer, Spring, [0, 1, 2, 3], config, tmp_path, progress=False).results == batch.results
    assert plot_survival({"a": batch.survival}, tmp_path / "s.png").exists()

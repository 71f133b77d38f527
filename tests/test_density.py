"""Mass density of periodic frames (g/cm^3) and the equilibrium density of NPT runs."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from scipy import stats

from ffpt.observables.density import RunDensity, mass_density, summarize_density

AMU_G = 1.66053906660e-24  # g (CODATA 2018)


def water_box(density_g_cm3: float, n: int = 32) -> Atoms:
    """``n`` water molecules in a cube whose side gives ``density_g_cm3`` (H2O = 18.015 amu)."""
    side_cm = (n * 18.015 * AMU_G / density_g_cm3) ** (1 / 3)
    atoms = Atoms()
    for k in range(n):
        w = molecule("H2O")
        w.translate([3.0 * (k % 4), 3.0 * (k // 4 % 4), 3.0 * (k // 16)])
        atoms += w
    atoms.set_cell([side_cm * 1e8] * 3)
    atoms.pbc = True
    return atoms


def test_liquid_water_box_has_its_density():
    assert mass_density(water_box(0.997)) == pytest.approx(0.997, rel=1e-4)
    box = water_box(0.997)
    box.set_cell(box.cell * 2 ** (1 / 3), scale_atoms=True)  # twice the volume: half the density
    assert mass_density(box) == pytest.approx(0.997 / 2, rel=1e-4)


def test_density_needs_a_3d_cell():
    slab = water_box(1.0)
    slab.pbc = [True, True, False]
    with pytest.raises(ValueError, match="periodic in all three"):
        mass_density(slab)


def test_equilibrium_density_is_the_mean_over_runs_with_a_t_interval():
    runs = [RunDensity([0, 100, 200, 300], [0.80, 0.95, 1.00, 1.02]),
            RunDensity([0, 100, 200, 300], [0.85, 0.97, 0.98, 0.96]),
            RunDensity([0, 100, 200, 300], [0.90, 1.01, 1.03, 1.01]),
            RunDensity([0, 100], [0.90, 0.50])]  # failed at 100 fs: no equilibrium density
    summary = summarize_density(runs, from_fs=200)
    assert summary.run_means == pytest.approx([1.01, 0.97, 1.02])
    assert summary.n_ended_before == 1
    assert summary.mean == pytest.approx(1.0)
    low, high = stats.t.interval(0.95, 2, loc=1.0, scale=stats.sem([1.01, 0.97, 1.02]))
    assert summary.ci95 == pytest.approx([low, high])
    assert summarize_density(runs[:1], from_fs=200).ci95 is None  # one run: no spread to give
    assert summarize_density(runs[3:], from_fs=200).mean is None


def correlated_series(rng, n_frames: int, every_fs: float, sigma: float, tau_fs: float) -> np.ndarray:
    """Stationary AR(1) noise: standard deviation ``sigma``, correlation time ``tau_fs``."""
    phi = np.exp(-every_fs / tau_fs)
    x = np.empty(n_frames)
    x[0] = rng.normal(0, sigma)
    for k in range(1, n_frames):
        x[k] = phi * x[k - 1] + np.sqrt(1 - phi**2) * sigma * rng.normal()
    return x


def npt_run(rng, drift_per_ps: float = 0.0, level: float = 0.95, sigma: float = 0.02, tau_fs: float = 100.0,
            end_fs: float = 20000.0, every_fs: float = 20.0) -> RunDensity:
    """A density series (g/cm^3) saved every ``every_fs``: ``level`` plus a linear drift and correlated noise."""
    time = np.arange(0.0, end_fs + every_fs / 2, every_fs)
    density = level + drift_per_ps * (time - time.mean()) / 1000 + correlated_series(rng, len(time), every_fs,
                                                                                      sigma, tau_fs)
    return RunDensity(time.tolist(), density.tolist())


def test_a_flat_noisy_density_plateaus_and_a_drifting_one_does_not():
    rng = np.random.default_rng(0)
    flat = npt_run(rng).plateau(from_fs=10000)  # 10 ps window, 5 blocks of 2 ps, noise 0.02 g/cm^3
    assert flat.plateau and flat.n_frames == 501 and flat.n_blocks == 5
    assert flat.ci95[0] < 0.95 < flat.ci95[1] and flat.ci95[1] - flat.ci95[0] < 0.02
    assert flat.drift_ci95[0] < 0 < flat.drift_ci95[1]
    drifting = npt_run(rng, drift_per_ps=0.02).plateau(from_fs=10000)  # 0.2 g/cm^3 over the window
    assert not drifting.plateau
    assert drifting.drift_ci95[0] < 0.02 < drifting.drift_ci95[1] and drifting.drift_ci95[0] > 0.01
    # a drift below the tolerance, measured well enough, is a plateau at that tolerance and not at a tighter one
    slow = npt_run(rng, drift_per_ps=0.002, sigma=0.002)
    assert slow.plateau(10000).plateau and not slow.plateau(10000, tolerance=0.001).plateau
    # a short noisy run is not shown to plateau (its drift interval is wide)
    short = npt_run(rng, sigma=0.05, tau_fs=500, end_fs=2000).plateau(from_fs=1000)
    assert not short.plateau and short.drift_ci95[0] < 0 < short.drift_ci95[1]


def test_plateau_intervals_cover_the_truth_at_about_95_percent():
    """Block averaging: for correlated noise (correlation time 0.1 ps, blocks of 2 ps) the mean's and the
    drift's 95 % intervals hold the true values in about 95 % of flat runs."""
    rng = np.random.default_rng(1)
    tests = [npt_run(rng, end_fs=10000).plateau(from_fs=0) for _ in range(400)]
    mean_cover = np.mean([t.ci95[0] <= 0.95 <= t.ci95[1] for t in tests])
    drift_cover = np.mean([t.drift_ci95[0] <= 0 <= t.drift_ci95[1] for t in tests])
    assert 0.9 <= mean_cover <= 0.99 and 0.9 <= drift_cover <= 0.99
    # frames as if independent would understate the spread of the mean: the block interval is wider
    naive = [stats.sem(run.density) for run in [npt_run(rng, end_fs=10000, tau_fs=400) for _ in range(20)]]
    blocked = [npt_run(rng, end_fs=10000, tau_fs=400).plateau(0) for _ in range(20)]
    assert np.median([(b.ci95[1] - b.ci95[0]) / 2 / stats.t.ppf(0.975, 4) for b in blocked]) > 2 * np.median(naive)


def test_the_arm_plateaus_when_its_runs_drift_by_less_than_the_tolerance_together():
    rng = np.random.default_rng(2)
    flat = [npt_run(rng, sigma=0.04, tau_fs=300) for _ in range(8)]
    summary = summarize_density(flat, from_fs=10000)
    assert summary.plateau and summary.drift_ci95[1] - summary.drift_ci95[0] < 0.02
    assert len(summary.run_plateaus) == 8 and summary.runs_plateaued == sum(p.plateau for p in summary.run_plateaus)
    assert summary.run_means == pytest.approx([p.mean for p in summary.run_plateaus], abs=1e-3)  # unequal blocks
    drifting = summarize_density([npt_run(rng, drift_per_ps=-0.03) for _ in range(8)], from_fs=10000)
    assert drifting.plateau is False and drifting.runs_plateaued == 0
    assert drifting.drift == pytest.approx(-0.03, abs=0.005)
    one = summarize_density(flat[:1], from_fs=10000)
    assert one.drift_ci95 == one.run_plateaus[0].drift_ci95 and one.plateau == one.run_plateaus[0].plateau
    few = RunDensity([0, 100, 200, 300], [0.80, 0.95, 1.00, 1.02])
    assert few.plateau(from_fs=0) is None  # 4 frames, 5 blocks: nothing to test
    assert summarize_density([few], from_fs=0).plateau is None
    assert summarize_density([few], from_fs=0).as_dict()["run_plateaus"] == []
    assert summarize_density(flat[:2], from_fs=10000).as_dict()["run_plateaus"][0]["n_blocks"] == 5
    with pytest.raises(ValueError, match="n_blocks >= 3"):
        few.plateau(from_fs=0, n_blocks=2)

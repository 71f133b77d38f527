"""FES convergence of metadynamics: the change between successive FES estimates (aligned, over the
region below a level), on hand-made surfaces and on hills of a synthetic well-tempered walker; the
free-energy profile along the reactant -> product line."""

import numpy as np
import pytest
from ase import units

from ffpt.analysis.fes import FreeEnergySurface, fes_change, fes_convergence, fes_from_hills, path_profile
from ffpt.simulate.hills import Hills

T = 300.0
KT = units.kB * T


def surface(values, time=1000.0):
    axis = np.linspace(-1.0, 1.0, len(values))
    return FreeEnergySurface(("x",), (axis,), np.asarray(values, float), time)


def test_identical_or_shifted_estimates_have_no_change():
    x = np.linspace(-1.0, 1.0, 51)
    f = 0.2 * (x**2 - 0.5) ** 2
    same = fes_change([surface(f, 100.0), surface(f, 200.0), surface(f, 300.0)])
    assert same.rms == (0.0, 0.0) and same.max == (0.0, 0.0) and same.time == (200.0, 300.0)
    shifted = fes_change([surface(f, 100.0), surface(f + 0.37, 200.0)])  # well-tempered c(t): no change of the FES
    assert shifted.rms[0] == pytest.approx(0.0, abs=1e-12) and shifted.max[0] == pytest.approx(0.0, abs=1e-12)
    assert shifted.interval == 100.0


def test_a_bump_gives_the_rms_and_max_of_its_aligned_difference():
    """A bump of delta on k of the N region points: after removing the mean (delta k/N) the RMS is
    delta sqrt(p (1 - p)) and the maximum delta (1 - p), p = k/N."""
    f = np.zeros(40)
    bumped = f.copy()
    bumped[:10] += 0.05
    change = fes_change([surface(f), surface(bumped)])
    p = 10 / 40
    assert change.region_points == 40
    assert change.rms[0] == pytest.approx(0.05 * np.sqrt(p * (1 - p)))
    assert change.max[0] == pytest.approx(0.05 * (1 - p))
    assert change.converged(0.05 * np.sqrt(p * (1 - p)) + 1e-9) and not change.converged(0.02)


def test_only_the_region_below_the_level_counts():
    """Points of the last estimate above ``level`` are left out: a change there is no change."""
    x = np.linspace(-1.0, 1.0, 41)
    f = x**2  # eV
    later = f + np.where(np.abs(x) > 0.8, 0.3, 0.0)  # the unvisited rim moved (f > 0.64 there)
    change = fes_change([surface(f), surface(later)], level=0.5)
    assert change.rms[0] == pytest.approx(0.0, abs=1e-12) and change.level == 0.5
    assert change.region_points == int(np.sum(x**2 <= 0.5))
    assert fes_change([surface(f), surface(later)]).rms[0] > 0.05  # the whole grid: it counts
    nan = f.copy()
    nan[:5] = np.nan  # unsampled in an estimate: outside the region
    assert fes_change([surface(nan), surface(f)]).region_points == 36
    with pytest.raises(ValueError, match="at least 2"):
        fes_change([surface(f)])
    with pytest.raises(ValueError, match="one grid"):
        fes_change([surface(f), surface(f[:-1])])


def walker_hills(gamma: float, seed: int, steps: int = 400_000, pace: int = 100, h0: float = 0.5,
                 sigma: float = 0.1, barrier: float = 5.0, dt: float = 2e-3) -> Hills:
    """Hills (eV, x dimensionless, one time unit per step) of an overdamped walker (D = 1, energies
    in kT) on F(x) = barrier (x^2 - 1)^2 under well-tempered metadynamics with biasfactor ``gamma``
    (a huge ``gamma``: plain metadynamics, hills never shrink)."""
    rng = np.random.default_rng(seed)
    grid = np.linspace(-2.5, 2.5, 1001)
    bias = np.zeros_like(grid)
    slope = np.zeros_like(grid)
    noise = rng.normal(size=steps) * np.sqrt(2 * dt)
    x, times, centers, heights = -1.0, [], [], []
    for n in range(steps):
        if n % pace == 0:
            height = h0 * np.exp(-np.interp(x, grid, bias) / (gamma - 1))
            bias += height * np.exp(-0.5 * ((grid - x) / sigma) ** 2)
            slope = np.gradient(bias, grid)
            times.append(float(n))
            centers.append(x)
            heights.append(height)
        x += -(4 * barrier * x * (x * x - 1) + np.interp(x, grid, slope)) * dt + noise[n]
    n = len(times)
    return Hills(("x",), gamma, time=times, center=np.reshape(centers, (n, 1)), sigma=np.full((n, 1), sigma),
                 height=np.asarray(heights) * KT)


def test_the_change_decays_for_well_tempered_hills_and_not_for_plain_metadynamics():
    """Well-tempered hills shrink as the bias fills the wells, so successive FES estimates of a
    stationary walker differ less and less; plain metadynamics keeps laying full hills and its
    estimate keeps moving by about a hill. The well-tempered FES is also the true one."""
    ranges, level = [(-2.0, 2.0)], 4 * KT
    traces = {}
    for name, gamma in (("well-tempered", 10.0), ("plain", 1e6)):
        traces[name] = []
        for seed in range(3):
            hills = walker_hills(gamma, seed)
            traces[name].append(np.array(fes_change(fes_convergence(hills, 8, 201, ranges), level).rms) / KT)
            if name == "well-tempered":
                fes = fes_from_hills(hills, 201, ranges)
                x = fes.axes[0]
                true = 5 * KT * (x**2 - 1) ** 2
                region = true <= level
                err = (fes.values - true)[region]
                assert np.sqrt(np.mean((err - err.mean()) ** 2)) < 0.25 * KT
    wt, plain = np.mean(traces["well-tempered"], axis=0), np.mean(traces["plain"], axis=0)
    assert all(t[-1] < t[0] for t in traces["well-tempered"])
    assert wt[-2:].mean() < 0.6 * wt[:2].mean()
    assert plain[-2:].mean() > 0.7 * plain[:2].mean()
    assert wt[-1] < 0.5 * plain[-1]


def test_profile_along_the_reactant_product_line_of_a_separable_surface():
    """F(x, y) = f(x) + g(y): along the line from (x0, y*) to (x1, y*), lambda = (x - x0)/(x1 - x0)
    and integrating over y adds a constant, so the profile is f at x(lambda)."""
    x = np.linspace(0.0, 1.0, 121)
    y = np.linspace(-0.5, 0.5, 31)
    f = 20 * KT * (x - 0.2) ** 2 * (x - 0.8) ** 2 / 0.0081 * 0.25 + 2 * KT * x  # wells at 0.2, 0.8
    g = 3 * KT * (y / 0.5) ** 2
    fes = FreeEnergySurface(("a", "b"), (x, y), f[:, None] + g[None, :])
    profile = path_profile(fes, (0.2, 0.1), (0.8, 0.1), T, bins=61, extend=0.3)
    lam = profile.axes[0]
    expected = np.interp(0.2 + 0.6 * lam, x, f)
    finite = np.isfinite(profile.values)
    assert finite.sum() >= 55 and np.all((lam[finite] > -0.35) & (lam[finite] < 1.35))
    shifted = expected[finite] - expected[finite].min()
    assert profile.values[finite] == pytest.approx(shifted, abs=0.15 * KT)
    assert lam[np.nanargmin(profile.values)] == pytest.approx(0.0, abs=0.05)  # the lower well, at x = 0.2
    with pytest.raises(ValueError, match="differ"):
        path_profile(fes, (0.2, 0.1), (0.2, 0.1), T)
    line = path_profile(FreeEnergySurface(("a",), (x,), f - f.min()), 0.8, 0.2, T, bins=11, extend=0.0)  # 1-D: F itself
    assert line.values == pytest.approx(np.interp(0.8 - 0.6 * line.axes[0], x, f) - f[np.argmin(np.abs(x - 0.2))],
                                        abs=1e-3 * KT)

"""Free-energy surfaces: sums of hills, HILLS files, c(t), reweighting, projections, barriers, files and plots."""

import numpy as np
import pytest
from ase import units

from ffpt.analysis.fes import (
    BarrierTrace,
    FreeEnergySurface,
    barrier,
    fes_convergence,
    fes_from_hills,
    plot_fes,
    project,
    rct,
    reweighted_fes,
    visited_level,
    write_fes,
)
from ffpt.analysis.plotting import pyplot, save_figure, wrap_title
from ffpt.simulate.hills import Hills, HillsError, read_hills, write_hills

KJ = units.kJ / units.mol
T = 500.0
KT = units.kB * T


def two_hills():
    return Hills(("a", "b"), biasfactor=6.0, scales=[1.0, 0.1], time=[0.0, 500.0],
                 center=[[0.0, 1.0], [0.5, 2.0]], sigma=[[0.2, 0.3], [0.1, 0.4]], height=[0.03, 0.02])


def test_fes_from_one_hill_is_minus_gamma_over_gamma_minus_one_times_the_gaussian():
    hills = Hills(("s",), biasfactor=4.0, time=[0.0], center=[[0.3]], sigma=[[0.25]], height=[0.1])
    fes = fes_from_hills(hills, bins=201, ranges=[(-2.0, 2.0)])
    s = fes.axes[0]
    expected = -4.0 / 3.0 * 0.1 * np.exp(-0.5 * ((s - 0.3) / 0.25) ** 2)
    np.testing.assert_allclose(fes.values, expected - expected.min(), atol=1e-12)
    assert fes.values.min() == 0.0 and s[np.argmin(fes.values)] == pytest.approx(0.3, abs=0.02)


def test_bias_gradient_matches_finite_differences():
    hills = two_hills()
    point = np.array([0.2, 1.4])
    _, grad = hills.evaluate(point)
    h = 1e-6
    numeric = [(hills.evaluate(point + h * e)[0] - hills.evaluate(point - h * e)[0]) / (2 * h) for e in np.eye(2)]
    np.testing.assert_allclose(grad, numeric, rtol=1e-7, atol=1e-12)


def test_hills_file_round_trip_and_plumed_conventions(tmp_path):
    hills = two_hills()
    path = write_hills(tmp_path / "HILLS", hills)
    row = path.read_text().splitlines()[-1].split()
    assert float(row[0]) == pytest.approx(0.5)  # ps
    assert float(row[2]) == pytest.approx(0.2)  # b in file units (scale 0.1)
    assert float(row[5]) == pytest.approx(0.02 * 6 / 5 / KJ)  # kJ/mol, times gamma/(gamma-1)
    back = read_hills(path, [1.0, 0.1])
    for key in ("time", "center", "sigma", "height"):
        np.testing.assert_allclose(getattr(back, key), getattr(hills, key), rtol=1e-9)
    assert back.names == ("a", "b") and back.biasfactor == 6.0
    # a restarted PLUMED run repeats the header; a killed one may leave half a line
    text = path.read_text()
    path.write_text(text + text.split("\n", 3)[3].join(["", ""]) + "1.0 0.1")
    assert len(read_hills(path, [1.0, 0.1], drop_truncated=True)) == 2 + 2
    with pytest.raises(HillsError, match=r"HILLS:\d+: 2 values"):
        read_hills(path)


def test_read_hills_rejects_bad_files(tmp_path):
    path = tmp_path / "HILLS"
    path.write_text("#! FIELDS time s sigma_s height biasf\n0 0.1 0.1 1.0 x\n")
    with pytest.raises(HillsError, match="HILLS:2: not a number"):
        read_hills(path)
    path.write_text("#! FIELDS time s sigma_s height biasf\n0 0.1 0.1 1.0 1.0\n")
    with pytest.raises(HillsError, match="biasf"):
        read_hills(path)
    path.write_text("0 0.1 0.1 1.0 5\n")
    with pytest.raises(HillsError, match="HILLS:1: data before"):
        read_hills(path)


def test_convergence_estimates_use_the_hills_up_to_each_time():
    hills = Hills(("s",), 10.0, time=np.arange(4) * 100.0, center=np.array([[0.0], [1.0], [2.0], [3.0]]),
                  sigma=np.full((4, 1), 0.2), height=np.full(4, 0.01))
    history = fes_convergence(hills, n_estimates=2, bins=61, ranges=[(-1, 4)])
    assert [h.time for h in history] == [100.0, 300.0]
    direct = fes_from_hills(Hills(("s",), 10.0, time=[0, 100], center=[[0.0], [1.0]], sigma=[[0.2], [0.2]],
                                  height=[0.01, 0.01]), bins=61, ranges=[(-1, 4)])
    np.testing.assert_allclose(history[0].values, direct.values, atol=1e-14)


def test_rct_of_a_flat_bias_is_the_bias_itself():
    """c(t) = kT ln(int e^{gamma bV/(gamma-1)} / int e^{bV/(gamma-1)}) equals V for a constant V."""
    wide = Hills(("s",), 7.0, time=[0.0, 10.0], center=[[0.0], [0.0]], sigma=[[1e4], [1e4]], height=[0.05, 0.03])
    c = rct(wide, T, bins=41, ranges=[(-1, 1)], block=1)
    np.testing.assert_allclose(c, [0.0, 0.05, 0.08], rtol=1e-6)
    narrow = Hills(("s",), 7.0, time=[0.0], center=[[0.0]], sigma=[[0.1]], height=[0.05])
    assert 0 < rct(narrow, T, bins=201, ranges=[(-1, 1)])[1] < 0.05  # a bump raises c by less than its top


def test_reweighting_a_biased_sample_recovers_the_unbiased_free_energy():
    rng = np.random.default_rng(7)
    x = np.linspace(-2, 2, 4001)
    free = 3 * KT * (x**2 - 1) ** 2
    bias = 2 * KT * np.exp(-((x + 1) ** 2) / 0.5)  # static bias filling the left well
    p = np.exp(-(free + bias) / KT)
    sample = rng.choice(x, size=200_000, p=p / p.sum())
    log_w = np.interp(sample, x, bias) / KT
    edges = np.linspace(-1.6, 1.6, 25)
    fes = reweighted_fes(sample[:, None], log_w, T, ["x"], bins=24, ranges=[(-1.6, 1.6)])
    in_bin = np.digitize(x, edges) - 1
    exact = np.array([-KT * np.log(np.exp(-free[in_bin == k] / KT).mean()) for k in range(24)])  # bin averages
    assert np.ptp(fes.values - exact) / KT < 0.2
    plain = reweighted_fes(sample[:, None], np.zeros(len(sample)), T, ["x"], bins=24, ranges=[(-1.6, 1.6)])
    assert np.ptp(plain.values - exact) / KT > 1.0  # without weights the bias shows


def test_projection_of_a_separable_surface_is_its_one_dimensional_part():
    x, y = np.linspace(-1.5, 1.5, 61), np.linspace(-1, 1, 41)
    f = (x**2 - 1) ** 2 * 0.2
    values = f[:, None] + 0.3 * y[None, :] ** 2
    fes = FreeEnergySurface(("x", "y"), (x, y), values - values.min())
    projected = project(fes, 0, T)
    np.testing.assert_allclose(projected.values, f - f.min(), atol=1e-12)


def test_barrier_is_the_lowest_saddle_between_basins():
    x = np.linspace(-2, 2, 401)
    f1 = 0.5 * (x**2 - 1) ** 2 + 0.1 * x  # tilted double well: right well higher
    fes1 = FreeEnergySurface(("x",), (x,), f1 - f1.min())
    b = barrier(fes1, -1.0, 1.0)
    inner = (x > -0.9) & (x < 0.9)
    top = f1[inner].max()
    assert b.forward == pytest.approx(top - f1[x < 0].min())
    assert b.backward == pytest.approx(top - f1[x > 0].min())
    assert b.saddle[0] == pytest.approx(x[inner][np.argmax(f1[inner])])
    # 2-D: two corridors join the wells (x = -1, 1): a direct one at y = 0 with a pass of 1.0 and
    # one at y = 0.8 with a pass of 0.6; everything else is unsampled except near the wells
    y = np.linspace(0, 0.8, 9)
    X, Y = np.meshgrid(x, y, indexing="ij")
    f2 = 0.5 * (X**2 - 1) ** 2 * np.where(Y > 0.7, 1.2, 2.0)
    f2[(np.abs(X) < 0.9) & (Y > 0.05) & (Y < 0.75)] = np.nan
    b2 = barrier(FreeEnergySurface(("x", "y"), (x, y), f2), (-1.0, 0.0), (1.0, 0.0))
    assert b2.saddle == pytest.approx((0.0, 0.8))
    assert b2.forward == pytest.approx(0.6) and b2.backward == pytest.approx(0.6)
    assert b2.start_minimum[0] == pytest.approx(-1.0) and b2.end_minimum[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="not connected"):
        barrier(FreeEnergySurface(("x",), (x,), np.where(np.abs(x) < 0.1, np.nan, f1)), -1.0, 1.0)


def test_fes_files_and_plots(tmp_path):
    hills = two_hills()
    fes = fes_from_hills(hills, bins=(21, 31))
    path = write_fes(tmp_path / "fes.dat", fes)
    rows = np.loadtxt(path)
    assert rows.shape == (21 * 31, 3)
    np.testing.assert_allclose(rows[:, 2] * KJ, fes.values.reshape(-1), atol=1e-12)
    assert path.read_text().startswith("#! FIELDS a b file.free")
    history = fes_convergence(hills, n_estimates=2, bins=(21, 31))
    for name, f, hist in (("fes2d.png", fes, history), ("fes1d.png", project(fes, 0, T), [project(history[0], 0, T)])):
        out = plot_fes(f, tmp_path / name, history=hist, unit="kcal/mol", marks={"A": (0.0, 1.0)})
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def png_size(path) -> tuple[int, int]:
    """Width and height (pixels) from a PNG file's header."""
    data = path.read_bytes()
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_colour_scale_stops_at_the_highest_visited_value():
    x, y = np.linspace(0, 1, 11), np.linspace(0, 2, 21)
    fes = FreeEnergySurface(("a", "b"), (x, y), 10 * x[:, None] + y[None, :])  # eV, highest at unvisited (1, 2)
    visited = [[0.1, 0.2], [0.52, 0.31], [0.3, 1.0]]  # nearest grid points (0.1, 0.2), (0.5, 0.3), (0.3, 1.0)
    assert visited_level(fes, visited) == pytest.approx(5.3)  # not the grid's 12
    assert visited_level(project(fes, 0, T), [[0.52], [0.1]]) == pytest.approx(project(fes, 0, T).values[5])


def test_fes_figure_has_a_panel_of_the_barrier_against_time(tmp_path):
    hills = two_hills()
    fes = fes_from_hills(hills, bins=(21, 31))
    history = fes_convergence(hills, n_estimates=2, bins=(21, 31))
    trace = BarrierTrace(time=(250.0, 500.0), barrier=(0.10, np.nan), reference=0.15)
    marks = {"reactant": (0.0, 1.0), "TS": (0.25, 1.5), "product": (0.5, 2.0)}
    two_d = plot_fes(fes, tmp_path / "fes2d.png", history=history[:1], marks=marks, barriers=trace,
                     max_level=visited_level(fes, hills.center) / (units.kcal / units.mol))
    one_d = plot_fes(project(fes, 0, T), tmp_path / "fes1d.png", barriers=trace)
    # 5 inches per panel + 0.5, 4 inches high, 120 dpi: FES, convergence and barrier panels; profile and barrier
    assert png_size(two_d) == (1860, 480) and png_size(one_d) == (1260, 480)


def test_long_titles_are_wrapped_inside_the_figure(tmp_path):
    from matplotlib.text import Text

    title = "ffpt-ft, channel 09 (HO2 -> H + O2): biasfactor 10, 500 K, 2000 hills, and a long tail of words"
    assert max(len(line) for line in wrap_title(title, 5.0).split("\n")) <= 50  # 5 in at 12 pt: 50 characters
    fig, ax = pyplot().subplots(figsize=(5, 4))
    ax.plot([0, 1], [0, 1])
    save_figure(fig, tmp_path / "t.png", title)
    (text,) = fig.findobj(lambda o: isinstance(o, Text) and o.get_text() == fig.get_suptitle())
    box, frame = text.get_window_extent(), fig.bbox
    assert text.get_text().count("\n") >= 1
    assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
    assert box.y0 >= ax.get_window_extent().y1  # above the plot, not over it


def test_a_flat_surface_plots(tmp_path):
    """A run too short to lay a hill has F = 0 everywhere: its 1-D and 2-D plots are written, not an error."""
    x, y = np.linspace(0, 1, 5), np.linspace(0, 2, 4)
    flat = FreeEnergySurface(("a", "b"), (x, y), np.zeros((5, 4)), time=10.0)
    assert plot_fes(flat, tmp_path / "flat2d.png", history=[flat]).stat().st_size > 0
    line = FreeEnergySurface(("a",), (x,), np.zeros(5), time=10.0)
    assert plot_fes(line, tmp_path / "flat1d.png", history=[line]).stat().st_size > 0

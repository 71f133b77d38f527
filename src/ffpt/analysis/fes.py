"""Free-energy surfaces (FES) from well-tempered metadynamics: from hills, by reweighting, barriers, plots.

Energies are eV inside; files use kJ/mol (as PLUMED's ``sum_hills``), figures kcal/mol by default (as the
project's tables). CV coordinates are in the CV's ffpt unit (A or dimensionless).

- From hills: ``F(s, t) = -gamma/(gamma-1) V(s, t)``, shifted to a zero minimum.
- Reweighting (Tiwary & Parrinello, J. Phys. Chem. B 119, 736 (2015)): a frame at time t has
  weight ``exp((V(s, t) - c(t)) / kT)`` with
  ``c(t) = kT ln[ int exp(gamma V / ((gamma-1) kT)) ds / int exp(V / ((gamma-1) kT)) ds ]``;
  a weighted histogram of any CV (biased or not) gives its FES.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from ase import units
from scipy import ndimage
from scipy.special import logsumexp

from ffpt.fileio import atomic_write_text
from ffpt.simulate.hills import FS_PER_PS, Hills
from ffpt.units import KCAL_PER_MOL, KJ_PER_MOL

PLOT_UNITS = {"kJ/mol": KJ_PER_MOL, "kcal/mol": KCAL_PER_MOL, "eV": 1.0}  # eV per unit


@dataclass(frozen=True)
class FreeEnergySurface:
    """F on a regular grid: ``values[i, j, ...]`` (eV, minimum 0, NaN where unsampled) at ``axes``."""

    names: tuple[str, ...]
    axes: tuple[np.ndarray, ...]
    values: np.ndarray
    time: float | None = None  # fs: estimate from data up to this time

    @property
    def ndim(self) -> int:
        return len(self.axes)

    def nearest_index(self, point) -> tuple[int, ...]:
        """Grid index closest to ``point`` (CV units)."""
        point = np.atleast_1d(np.asarray(point, float))
        return tuple(int(np.argmin(np.abs(ax - p))) for ax, p in zip(self.axes, point))


def hills_ranges(hills: Hills, pad: float = 3.0) -> list[tuple[float, float]]:
    """Range of each CV covered by the hills, widened by ``pad`` sigma on both sides."""
    lo = (hills.center - pad * hills.sigma).min(axis=0)
    hi = (hills.center + pad * hills.sigma).max(axis=0)
    return [(float(a), float(b)) for a, b in zip(lo, hi)]


def _axes(ndim: int, bins, ranges) -> tuple[np.ndarray, ...]:
    bins = [bins] * ndim if np.isscalar(bins) else list(bins)
    if len(bins) != ndim or len(ranges) != ndim:
        raise ValueError(f"need {ndim} bins and ranges, got {bins} and {ranges}")
    return tuple(np.linspace(lo, hi, int(n)) for (lo, hi), n in zip(ranges, bins))


def _mesh(axes) -> np.ndarray:
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(axes))


def fes_from_hills(hills: Hills, bins=101, ranges=None, time: float | None = None) -> FreeEnergySurface:
    """FES from the hills deposited up to ``time`` (fs; default all), on ``bins`` points per CV."""
    if len(hills) == 0:
        raise ValueError("no hills to sum")
    ranges = hills_ranges(hills) if ranges is None else ranges
    axes = _axes(hills.ndim, bins, ranges)
    used = hills if time is None else hills.upto(time)
    bias, _ = used.evaluate(_mesh(axes))
    f = -used.free_energy_factor() * bias.reshape([len(a) for a in axes])
    t = float(used.time[-1]) if len(used) else 0.0
    return FreeEnergySurface(hills.names, axes, f - f.min(), t)


def fes_convergence(hills: Hills, n_estimates: int = 5, bins=101, ranges=None) -> list[FreeEnergySurface]:
    """FES estimates at ``n_estimates`` equally spaced times up to the last hill, on one grid."""
    ranges = hills_ranges(hills) if ranges is None else ranges
    times = np.linspace(hills.time[-1] / n_estimates, hills.time[-1], n_estimates)
    return [fes_from_hills(hills, bins, ranges, time=t) for t in times]


@dataclass(frozen=True)
class FesChange:
    """How much a FES estimate changed since the one before it (eV), for successive estimates on one
    grid (:func:`fes_change`): ``rms`` and ``max`` of the aligned difference over ``region_points``
    grid points below ``level`` (eV above the last estimate's minimum), at ``time`` (fs, the later
    estimate of each pair)."""

    time: tuple[float, ...]
    rms: tuple[float, ...]
    max: tuple[float, ...]
    level: float
    region_points: int
    interval: float  # fs between the last two estimates: the span of the last change

    def converged(self, tolerance: float) -> bool:
        """The last RMS change is at most ``tolerance`` (eV)."""
        return bool(self.rms[-1] <= tolerance)


def fes_change(estimates: Sequence[FreeEnergySurface], level: float | None = None) -> FesChange:
    """Change of the FES between successive ``estimates`` (same grid, in time order), as a
    function of simulated time: a convergence measure of metadynamics.

    The region is the last estimate's grid points at most ``level`` (eV above its minimum; default
    every finite point) and finite in every estimate: where the run went and the FES matters. A
    free energy is defined up to a constant, and well-tempered metadynamics raises the bias
    everywhere it has filled (c(t)), so each difference is aligned by its mean over the region (the
    least-squares constant shift; the minimum's value would carry the noise of a single grid
    point) before its RMS and maximum absolute value are taken. A surface that only shifts by a
    constant has zero change.
    """
    if len(estimates) < 2:
        raise ValueError(f"need at least 2 FES estimates, got {len(estimates)}")
    last = estimates[-1].values
    if any(e.values.shape != last.shape for e in estimates):
        raise ValueError("FES estimates must share one grid")
    region = np.logical_and.reduce([np.isfinite(e.values) for e in estimates])
    if level is not None:
        region &= last - np.nanmin(last) <= level
    if not region.any():
        raise ValueError(f"no grid point below the level {level} eV")
    rms, top = [], []
    for before, after in zip(estimates[:-1], estimates[1:]):
        diff = (after.values - before.values)[region]
        diff = diff - diff.mean()
        rms.append(float(np.sqrt(np.mean(diff * diff))))
        top.append(float(np.abs(diff).max()))
    times = [float(e.time) if e.time is not None else float("nan") for e in estimates]
    return FesChange(tuple(times[1:]), tuple(rms), tuple(top),
                     float(np.nanmax(last[region]) if level is None else level), int(region.sum()),
                     times[-1] - times[-2])


def path_profile(fes: FreeEnergySurface, start, end, temperature: float, bins: int = 61,
                 extend: float = 0.5) -> FreeEnergySurface:
    """1-D free energy along the straight line from CV point ``start`` (lambda = 0) to ``end`` (1),
    at ``bins`` values of lambda on [-extend, 1 + extend]: for a 2-D FES, F(lambda) =
    -kT ln integral exp(-F/kT) across the line (linear interpolation of the grid on lines
    perpendicular to it, in the CVs' units, as fine as the grid), so a bin's value does not depend
    on how many grid points fall into it; for a 1-D FES, F interpolated. eV, minimum 0, NaN where
    the line leaves the grid (or meets only unsampled points)."""
    from scipy.interpolate import RegularGridInterpolator

    if fes.ndim not in (1, 2):
        raise ValueError(f"a profile of a 1-D or 2-D FES, got {fes.ndim}-D")
    start, end = (np.atleast_1d(np.asarray(p, float)) for p in (start, end))
    direction = end - start
    length = float(np.sqrt(direction @ direction))
    if not length > 0:
        raise ValueError("start and end must differ")
    lam = np.linspace(-extend, 1 + extend, bins)
    grid = RegularGridInterpolator(fes.axes, fes.values, bounds_error=False, fill_value=np.nan)
    if fes.ndim == 1:
        f = grid(start + lam[:, None] * direction)
    else:
        normal = np.array([-direction[1], direction[0]]) / length
        spans = [ax[-1] - ax[0] for ax in fes.axes]
        step = min(float(np.min(np.diff(ax))) for ax in fes.axes)
        reach = float(np.hypot(*spans))
        mu = np.arange(-reach, reach + step, step)
        points = start + lam[:, None, None] * direction + mu[None, :, None] * normal
        beta = 1.0 / (units.kB * temperature)
        a = -beta * grid(points.reshape(-1, 2)).reshape(len(lam), len(mu))
        a[~np.isfinite(a)] = -np.inf
        with np.errstate(divide="ignore"):
            f = -(logsumexp(a, axis=1) + np.log(step)) / beta
    f = np.where(np.isfinite(f), f, np.nan)
    return FreeEnergySurface(("lambda",), (lam,), f - np.nanmin(f), fes.time)


def rct(hills: Hills, temperature: float, bins=101, ranges=None, block: int = 64) -> np.ndarray:
    """Tiwary-Parrinello c(t) (eV) after each hill: array of len(hills) + 1, c[0] = 0 (no bias)."""
    ranges = hills_ranges(hills) if ranges is None else ranges
    points = _mesh(_axes(hills.ndim, bins, ranges))
    beta = 1.0 / (units.kB * temperature)
    gamma = hills.biasfactor
    out = np.zeros(len(hills) + 1)
    bias = np.zeros(len(points))
    for start in range(0, len(hills), block):
        sl = slice(start, min(start + block, len(hills)))
        z = (points[:, None, :] - hills.center[None, sl]) / hills.sigma[None, sl]
        step = hills.height[None, sl] * np.exp(-0.5 * np.sum(z * z, axis=2))
        cumulative = bias[:, None] + np.cumsum(step, axis=1)  # (points, hills in block)
        a = beta * cumulative
        out[sl.start + 1 : sl.stop + 1] = (logsumexp(a * gamma / (gamma - 1), axis=0)
                                           - logsumexp(a / (gamma - 1), axis=0)) / beta
        bias = cumulative[:, -1]
    return out


def metad_log_weights(time, bias, hills: Hills, temperature: float, bins=101, ranges=None) -> np.ndarray:
    """ln of reweighting factors ``(V(s,t) - c(t)) / kT`` of frames at ``time`` (fs) with ``bias`` (eV).

    A frame's bias must have been computed with the hills deposited strictly before its time.
    """
    c = rct(hills, temperature, bins, ranges)
    n_before = np.searchsorted(hills.time, np.asarray(time, float) - 1e-6, side="right")
    return (np.asarray(bias, float) - c[n_before]) / (units.kB * temperature)


def reweighted_fes(values, log_weights, temperature: float, names: Sequence[str], bins=50, ranges=None,
                   time: float | None = None) -> FreeEnergySurface:
    """FES of CV ``values`` (n_frames, d) from a weighted histogram; NaN in empty bins."""
    values = np.asarray(values, float).reshape(len(log_weights), -1)
    lw = np.asarray(log_weights, float)
    if ranges is None:
        ranges = [(float(v.min()), float(v.max())) for v in values.T]
    hist, edges = np.histogramdd(values, bins=bins, range=ranges, weights=np.exp(lw - lw.max()))
    with np.errstate(divide="ignore"):
        f = -units.kB * temperature * np.log(hist)
    f[~np.isfinite(f)] = np.nan
    axes = tuple(0.5 * (e[1:] + e[:-1]) for e in edges)
    return FreeEnergySurface(tuple(names), axes, f - np.nanmin(f), time)


def project(fes: FreeEnergySurface, keep: int, temperature: float) -> FreeEnergySurface:
    """1-D FES along CV ``keep``: ``-kT ln sum exp(-F/kT)`` over the other CVs (unsampled bins skipped)."""
    beta = 1.0 / (units.kB * temperature)
    a = np.where(np.isfinite(fes.values), -beta * fes.values, -np.inf)
    others = tuple(k for k in range(fes.ndim) if k != keep)
    f = -logsumexp(a, axis=others) / beta
    f[~np.isfinite(f)] = np.nan
    return FreeEnergySurface((fes.names[keep],), (fes.axes[keep],), f - np.nanmin(f), fes.time)


@dataclass(frozen=True)
class Barrier:
    """Lowest-saddle barrier between two basins of a FES (eV); points in CV units."""

    forward: float  # saddle - minimum of the start basin
    backward: float  # saddle - minimum of the end basin
    saddle: tuple[float, ...]
    start_minimum: tuple[float, ...]
    end_minimum: tuple[float, ...]


def barrier(fes: FreeEnergySurface, start, end) -> Barrier:
    """Barrier between the basins containing ``start`` and ``end`` (CV points).

    The saddle is the lowest level F* at which both points are connected through grid cells
    with F <= F* (the minimax path; in 1-D the maximum between them). Each basin is the region
    below F* connected to its point.
    """
    values = fes.values
    finite = np.isfinite(values)
    a, b = fes.nearest_index(start), fes.nearest_index(end)
    if not (finite[a] and finite[b]):
        raise ValueError("start and end must lie in sampled (finite) parts of the FES")
    levels = np.unique(values[finite])

    def connected(level: float) -> bool:
        labels, _ = ndimage.label(finite & (values <= level))
        return labels[a] != 0 and labels[a] == labels[b]

    lo, hi = 0, len(levels) - 1
    if not connected(levels[hi]):
        raise ValueError("start and end are not connected through sampled parts of the FES")
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if connected(levels[mid]) else (mid + 1, hi)
    top = levels[lo]
    below, _ = ndimage.label(finite & (values < top))
    saddle_cells = np.argwhere(finite & (values == top))

    def basin_min(idx) -> tuple[float, tuple[float, ...]]:
        if below[idx] == 0:  # the point itself sits on the saddle level
            return float(values[idx]), idx
        mask = below == below[idx]
        flat = np.where(mask, values, np.inf)
        k = np.unravel_index(np.argmin(flat), values.shape)
        return float(values[k]), k

    fa, ka = basin_min(a)
    fb, kb = basin_min(b)

    def coords(idx) -> tuple[float, ...]:
        return tuple(float(ax[i]) for ax, i in zip(fes.axes, idx))

    return Barrier(float(top - fa), float(top - fb), coords(tuple(saddle_cells[0])), coords(ka), coords(kb))


def visited_level(fes: FreeEnergySurface, points) -> float:
    """Highest F (eV) on the grid points nearest to ``points`` ((n, d), CV units), e.g. the hill centres.

    The hills are where the walker went, so this is the top of the visited region: a colour-scale limit
    that the unvisited edges of the grid, where the bias never reached, cannot blow up.
    """
    points = np.asarray(points, float).reshape(-1, fes.ndim)
    index = tuple(np.argmin(np.abs(ax[None, :] - points[:, [k]]), axis=1) for k, ax in enumerate(fes.axes))
    return float(np.nanmax(fes.values[index]))


@dataclass(frozen=True)
class BarrierTrace:
    """FES barrier estimates (eV; NaN where an estimate had none) against simulated time (fs), and the
    reference barrier they should approach (eV; e.g. E(TS) - E(reactant) of the IRC), if known."""

    time: tuple[float, ...]
    barrier: tuple[float, ...]
    reference: float | None = None


def write_fes(path: str | os.PathLike, fes: FreeEnergySurface) -> Path:
    """Write a FES as PLUMED ``sum_hills`` does: ``#! FIELDS cv... file.free`` (kJ/mol), blank line per row."""
    lines = [f"#! FIELDS {' '.join(fes.names)} file.free\n"]
    for name, ax in zip(fes.names, fes.axes):
        lines.append(f"#! SET min_{name} {ax[0]:.10g}\n#! SET max_{name} {ax[-1]:.10g}\n"
                     f"#! SET nbins_{name} {len(ax)}\n#! SET periodic_{name} false\n")
    points = _mesh(fes.axes)
    free = fes.values.reshape(-1) / KJ_PER_MOL
    inner = len(fes.axes[-1])
    for k, (p, f) in enumerate(zip(points, free)):
        lines.append(" ".join(f"{v:.10g}" for v in (*p, f)) + "\n")
        if fes.ndim > 1 and (k + 1) % inner == 0:
            lines.append("\n")
    return atomic_write_text(path, "".join(lines))


def plot_fes(fes: FreeEnergySurface, path: str | os.PathLike, *, history: Sequence[FreeEnergySurface] = (),
             unit: str = "kcal/mol", title: str | None = None, max_level: float | None = None,
             marks: dict[str, Sequence[float]] | None = None, barriers: BarrierTrace | None = None,
             change: FesChange | None = None, tolerance: float | None = None) -> Path:
    """PNG of a 1-D FES (with earlier estimates in ``history``) or a 2-D FES as filled contours.

    ``marks`` labels CV points (e.g. reactant, TS and product geometries) on the plot; ``max_level``
    (``unit``) tops the energy axis or colour scale (default the highest finite value; 1 for a flat
    surface, e.g. of a run too short to lay a hill).

    A second panel shows the convergence: with ``change`` (:func:`fes_change`), the RMS and maximum
    change between successive estimates against simulated time and ``tolerance`` (eV) as a line;
    else, for 2-D, the RMS difference of each earlier estimate from ``fes`` over the region below
    ``max_level``. With ``barriers``, a last panel draws the barrier estimates against simulated
    time and the reference barrier as a horizontal line.
    """
    from ffpt.analysis.plotting import pyplot, save_figure

    if fes.ndim not in (1, 2):
        raise ValueError(f"can plot 1-D or 2-D FES, got {fes.ndim}-D")
    scale = PLOT_UNITS[unit]
    values = fes.values / scale
    top = float(np.nanmax(values)) if max_level is None else max_level
    if not top > 0:  # a flat surface (no hill laid yet): any positive scale shows it
        top = 1.0
    panels = 1 + (change is not None or (fes.ndim == 2 and bool(history))) + (barriers is not None)
    fig, axs = pyplot().subplots(1, panels, figsize=(5 * panels + 0.5, 4), squeeze=False)
    if fes.ndim == 1:
        _plot_profile(axs[0, 0], fes, history, scale, unit, top, marks)
    else:
        _plot_surface(axs[0, 0], fes, values, unit, top, marks)
    if change is not None:
        _plot_change(axs[0, 1], change, tolerance, scale, unit)
    elif fes.ndim == 2:
        if history:
            region = np.isfinite(values) & (values <= top)
            rms = [np.sqrt(np.nanmean((h.values / scale - values)[region] ** 2)) for h in history]
            axs[0, 1].plot([h.time / FS_PER_PS for h in history], rms, "o-")
            axs[0, 1].set_xlabel("simulated time (ps)")
            axs[0, 1].set_ylabel(f"RMS(F(t) - F_final) ({unit})")
    if barriers is not None:
        _plot_barriers(axs[0, -1], barriers, scale, unit)
    return save_figure(fig, path, title)


def _plot_profile(ax, fes: FreeEnergySurface, history, scale: float, unit: str, top: float, marks) -> None:
    """1-D FES with its earlier estimates, marks as vertical lines, energies up to ``top`` (``unit``)."""
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    for k, h in enumerate(history):
        label = f"{h.time / FS_PER_PS:.3g} ps" if h.time is not None else None
        ax.plot(h.axes[0], h.values / scale, color=cmap(k / max(1, len(history))), lw=1, label=label)
    ax.plot(fes.axes[0], fes.values / scale, color="k", lw=2, label="final")
    for label, point in (marks or {}).items():
        ax.axvline(point[0], color="grey", ls=":", lw=1)
        ax.annotate(label, (point[0], 0), textcoords="offset points", xytext=(2, 4), fontsize=8)
    ax.set_xlabel(fes.names[0])
    ax.set_ylabel(f"F ({unit})")
    ax.set_ylim(-0.05 * top, top)
    ax.legend(fontsize=7)


def _plot_surface(ax, fes: FreeEnergySurface, values: np.ndarray, unit: str, top: float, marks) -> None:
    """2-D FES as filled contours from 0 to ``top`` (``unit``; higher values share the top colour),
    each mark a labelled star."""
    from matplotlib import patheffects, ticker

    cs = ax.contourf(fes.axes[0], fes.axes[1], values.T, levels=np.linspace(0, top, 25), extend="max")
    ax.figure.colorbar(cs, ax=ax, label=f"F ({unit})", ticks=ticker.MaxNLocator(6))
    outline = [patheffects.withStroke(linewidth=2, foreground="k")]  # white labels stay readable
    for label, point in (marks or {}).items():
        ax.plot(*point[:2], "w*", ms=10, mec="k")
        ax.annotate(label, point[:2], textcoords="offset points", xytext=(5, 5), color="w", fontsize=9,
                    path_effects=outline)
    ax.set_xlabel(fes.names[0])
    ax.set_ylabel(fes.names[1])


def _plot_change(ax, change: FesChange, tolerance: float | None, scale: float, unit: str) -> None:
    """RMS and maximum FES change between successive estimates against simulated time (ps), the
    tolerance as a dashed line."""
    t = np.asarray(change.time) / FS_PER_PS
    ax.plot(t, np.asarray(change.rms) / scale, "o-", label="RMS")
    ax.plot(t, np.asarray(change.max) / scale, "s--", label="max")
    if tolerance is not None:
        ax.axhline(tolerance / scale, color="k", ls=":", lw=1, label="tolerance (RMS)")
    if min(change.rms) > 0:  # a surface that has not changed at all has nothing to show on a log scale
        ax.set_yscale("log")
    ax.set_xlabel("simulated time (ps)")
    ax.set_ylabel(f"change since previous estimate ({unit})")
    ax.set_title(f"below {change.level / scale:.3g} {unit}, {change.region_points} grid points", fontsize=8)
    ax.legend(fontsize=8)


def _plot_barriers(ax, trace: BarrierTrace, scale: float, unit: str) -> None:
    """Barrier estimates against simulated time (ps), the reference barrier as a dashed line."""
    ax.plot(np.asarray(trace.time) / FS_PER_PS, np.asarray(trace.barrier) / scale, "o-", label="FES estimate")
    if trace.reference is not None:
        ax.axhline(trace.reference / scale, color="k", ls="--", lw=1, label="reference (IRC)")
    ax.set_xlabel("simulated time (ps)")
    ax.set_ylabel(f"barrier ({unit})")
    ax.legend(fontsize=8)

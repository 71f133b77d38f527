"""Survival (time-to-failure) statistics of MD runs: Kaplan-Meier curve with a 95 % band, the stable
fraction at the end with its 95 % interval, median time to failure, log-rank test, plot.

A run that stayed stable to its end is right-censored at its simulated time, so runs of different
lengths combine correctly (``scipy.stats.ecdf`` on ``CensoredData``). The band is scipy's pointwise
Greenwood interval on the log-log scale (``sf.confidence_interval(0.95, method="log-log")``), which
stays inside [0, 1]. Times in fs.
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

CONFIDENCE = 0.95
BAND_METHOD = "log-log"


@dataclass(frozen=True)
class SurvivalCurve:
    """Fraction of runs still stable after ``time_fs`` (step function, starts at (0, 1)), its 95 %
    band (``lower``, ``upper``) and the per-run data it was made from (``durations_fs``, ``failed``)."""

    time_fs: np.ndarray
    fraction_stable: np.ndarray
    median_fs: float | None  # first time the fraction drops to <= 0.5; None if it never does
    n_runs: int
    n_failed: int
    lower: np.ndarray
    upper: np.ndarray
    durations_fs: np.ndarray  # each run's failure time or, for a stable run, its end
    failed: np.ndarray

    def at(self, t_fs: float) -> float:
        """Fraction stable at time ``t_fs`` (fs)."""
        return float(self.fraction_stable[self._index(t_fs)])

    def band_at(self, t_fs: float) -> tuple[float, float]:
        """95 % band of the fraction stable at time ``t_fs`` (fs)."""
        k = self._index(t_fs)
        return float(self.lower[k]), float(self.upper[k])

    def _index(self, t_fs: float) -> int:
        return max(int(np.searchsorted(self.time_fs, t_fs, side="right")) - 1, 0)

    @property
    def stable_fraction(self) -> float:
        """Fraction stable at the end of the longest run."""
        return float(self.fraction_stable[-1])

    @property
    def stable_fraction_ci95(self) -> tuple[float, float]:
        """95 % interval of :attr:`stable_fraction`. When every run that stayed stable ran to the common
        end (the usual batch), the fraction is a binomial proportion k/n and the interval is the exact
        Clopper-Pearson one (8/8 stable gives [0.63, 1], not the Greenwood band's [1, 1]); otherwise
        the Kaplan-Meier band at the end."""
        return _end_interval(self)[0]

    @property
    def ci95_method(self) -> str:
        return _end_interval(self)[1]

    def as_dict(self) -> dict:
        return {
            "time_fs": self.time_fs.tolist(),
            "fraction_stable": self.fraction_stable.tolist(),
            "fraction_stable_ci95_lower": self.lower.tolist(),
            "fraction_stable_ci95_upper": self.upper.tolist(),
            "median_fs": self.median_fs,
            "n_runs": self.n_runs,
            "n_failed": self.n_failed,
            "stable_fraction": self.stable_fraction,
            "stable_fraction_ci95": list(self.stable_fraction_ci95),
            "ci95_method": self.ci95_method,
            "durations_fs": self.durations_fs.tolist(),
            "failed": self.failed.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "SurvivalCurve":
        """The curve of :meth:`as_dict`, recomputed from its per-run data."""
        return survival_curve(data["durations_fs"], data["failed"])


def _end_interval(curve: SurvivalCurve) -> tuple[tuple[float, float], str]:
    from scipy.stats import binomtest

    end = curve.durations_fs.max()
    if np.all(curve.durations_fs[~curve.failed] == end):
        n_stable = curve.n_runs - curve.n_failed
        ci = binomtest(n_stable, curve.n_runs).proportion_ci(CONFIDENCE, method="exact")
        return (float(ci.low), float(ci.high)), "clopper-pearson"
    return (float(curve.lower[-1]), float(curve.upper[-1])), f"kaplan-meier greenwood {BAND_METHOD}"


def survival_curve(times_fs: Sequence[float], failed: Sequence[bool]) -> SurvivalCurve:
    """Kaplan-Meier survival and its 95 % band from per-run times (fs): failure times, or the end of
    stable runs (right-censored)."""
    import warnings

    from scipy.stats import CensoredData, ecdf

    times = np.asarray(times_fs, dtype=float)
    failed = np.asarray(failed, dtype=bool)
    if times.ndim != 1 or times.shape != failed.shape or len(times) == 0:
        raise ValueError(f"need equal, non-empty lists of times and flags (got {times.shape} and {failed.shape})")
    if np.any(times < 0) or not np.all(np.isfinite(times)):
        raise ValueError("times must be finite and >= 0 fs")
    sf = ecdf(CensoredData(uncensored=times[failed], right=times[~failed])).sf
    with warnings.catch_warnings():  # undefined where the fraction is 0 or the band degenerate: handled below
        warnings.simplefilter("ignore", RuntimeWarning)
        band = sf.confidence_interval(CONFIDENCE, method=BAND_METHOD)
    s = np.concatenate([[1.0], sf.probabilities])
    # log-log is undefined at 0 (nothing left) and 1 (nothing failed yet): the band is the point there
    lower = np.concatenate([[1.0], np.where(np.isnan(band.low.probabilities), sf.probabilities, band.low.probabilities)])
    upper = np.concatenate([[1.0], np.where(np.isnan(band.high.probabilities), sf.probabilities,
                                            band.high.probabilities)])
    t = np.concatenate([[0.0], sf.quantiles])
    below = np.flatnonzero(s <= 0.5)
    median = float(t[below[0]]) if below.size else None
    return SurvivalCurve(t, s, median, len(times), int(failed.sum()), lower, upper, times, failed)


@dataclass(frozen=True)
class LogRank:
    """Log-rank test of equal survival in two groups (``scipy.stats.logrank``, two-sided)."""

    statistic: float
    pvalue: float
    note: str | None = None

    def as_dict(self) -> dict:
        return {"statistic": self.statistic, "pvalue": self.pvalue, "note": self.note}


def logrank(a: SurvivalCurve, b: SurvivalCurve) -> LogRank:
    """Log-rank test between the runs of two curves. With no failure in either group the test has
    nothing to compare: statistic 0, p = 1, and a note says so."""
    from scipy.stats import CensoredData
    from scipy.stats import logrank as scipy_logrank

    if a.n_failed + b.n_failed == 0:
        return LogRank(0.0, 1.0, "no run failed in either group")

    def data(c: SurvivalCurve):
        return CensoredData(uncensored=c.durations_fs[c.failed], right=c.durations_fs[~c.failed])

    result = scipy_logrank(data(a), data(b))
    return LogRank(float(result.statistic), float(result.pvalue))


def format_p(p: float) -> str:
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"


def plot_survival(curves: dict[str, SurvivalCurve], path: str | os.PathLike, title: str | None = None,
                  conditions: str | None = None) -> Path:
    """Fraction of stable runs versus time (ps), one step line per label with its 95 % band and
    censoring marks (``|`` where a run ended stable); with exactly two curves the log-rank p is
    written under the title. ``conditions`` (e.g. "500 K Langevin, 0.5 fs, 10 ps") go under the title. PNG."""
    from ffpt.analysis.plotting import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    styles = ["-", "--", "-.", ":"]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    n = len(curves)
    for k, (label, curve) in enumerate(curves.items()):
        color, style = colors[k % len(colors)], styles[k % len(styles)]
        # a small vertical shift keeps identical curves (e.g. both all stable at 1.0) both visible
        shift = 0.008 * (k - (n - 1) / 2)
        t_ps = curve.time_fs / 1000.0
        end = curve.durations_fs.max() / 1000.0
        x, y = np.append(t_ps, end), np.append(curve.fraction_stable, curve.fraction_stable[-1])
        ax.fill_between(x, np.append(curve.lower, curve.lower[-1]), np.append(curve.upper, curve.upper[-1]),
                        step="post", color=color, alpha=0.15, linewidth=0)
        lo, hi = curve.stable_fraction_ci95
        ax.step(x, y + shift, where="post", color=color, linestyle=style, linewidth=1.8,
                label=f"{label}: {curve.n_runs - curve.n_failed}/{curve.n_runs} stable (95 % CI {lo:.2f}-{hi:.2f})")
        censored = curve.durations_fs[~curve.failed]
        if censored.size:
            at = np.array([curve.at(t) for t in censored])
            ax.plot(censored / 1000.0, at + shift, linestyle="none", marker="|", markersize=10,
                    markeredgewidth=1.5, color=color)
    heading = [textwrap.fill(title, 60)] if title else []
    if conditions:
        heading.append(textwrap.fill(conditions, 70))
    if n == 2:
        test = logrank(*curves.values())
        heading.append(f"log-rank p = {format_p(test.pvalue)}" + (f" ({test.note})" if test.note else ""))
    ax.set_xlabel("time (ps)")
    ax.set_ylabel("fraction stable")
    ax.set_ylim(-0.03, 1.05)
    ax.set_xlim(left=0)
    ax.legend(fontsize="small", loc="best", title="shaded: 95 % band; |: stable at end",
              title_fontsize="x-small")
    if heading:
        ax.set_title("\n".join(heading), fontsize="medium")
    return save_figure(fig, path)

"""Figures of active-learning runs: stability and errors against cumulative ab initio labels, and the
committee disagreement of every round. Inputs are the ``rounds`` records of
:func:`ffpt.workflows.active_learning.run_active_learning` (one list per arm)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

ARM_STYLES = {"ffpt-ft+al": dict(color="C0", marker="o"), "scratch+al": dict(color="C3", marker="s")}


def log_bins(values: np.ndarray, per_decade: int = 8) -> np.ndarray:
    """Logarithmic bin edges covering the positive ``values`` (whole decades; 1e-3..1 when empty)."""
    positive = values[values > 0]
    low = np.floor(np.log10(positive.min())) if positive.size else -3.0
    high = np.ceil(np.log10(positive.max())) if positive.size else 0.0
    high = max(high, low + 1)
    return np.logspace(low, high, int(per_decade * (high - low)) + 1)


def label_ticks(ax, labels: list[int]) -> None:
    """Ticks of a log x axis at the label counts, written as plain numbers."""
    from matplotlib.ticker import FixedLocator, NullLocator

    ax.xaxis.set_major_locator(FixedLocator(labels))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([str(n) for n in labels])


def plot_stability_vs_labels(arms: dict[str, list[dict]], path: str | os.PathLike, conditions: str) -> Path:
    """Stable fraction of the exploration runs (with its 95 % interval) against the labels the round's
    committee was trained on, one line per arm; ``conditions`` (runs, length, temperature) in the title."""
    from ffpt.analysis.plotting import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for k, (arm, rounds) in enumerate(arms.items()):
        x = np.array([r["n_labels"] for r in rounds], dtype=float)
        y = np.array([r["stable_fraction"] for r in rounds])
        low = np.array([r["stable_fraction_ci95"][0] for r in rounds])
        high = np.array([r["stable_fraction_ci95"][1] for r in rounds])
        style = ARM_STYLES.get(arm, dict(color=f"C{k}", marker="^"))
        shift = 1.0 + 0.015 * (k - (len(arms) - 1) / 2)  # arms at equal labels side by side, not on top
        ax.errorbar(x * shift, y, yerr=[y - low, high - y], capsize=3, label=arm, **style)
    ax.set_xscale("log")
    label_ticks(ax, sorted({r["n_labels"] for rounds in arms.values() for r in rounds}))
    ax.set_xlabel("cumulative ab initio labels")
    ax.set_ylabel("stable fraction (95 % CI)")
    ax.set_ylim(-0.03, 1.03)
    ax.legend(fontsize="small", loc="best")
    ax.set_title(f"stability vs labels\n{conditions}", fontsize="medium")
    return save_figure(fig, path)


def plot_errors_vs_labels(arms: dict[str, list[dict]], path: str | os.PathLike) -> Path | None:
    """Test force and energy MAE of the committee mean against labels (two panels); None without test errors."""
    from ffpt.analysis.plotting import pyplot, save_figure

    if not any(r.get("test") for rounds in arms.values() for r in rounds):
        return None
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(8.5, 3.5))
    for k, (arm, rounds) in enumerate(arms.items()):
        rows = [r for r in rounds if r.get("test")]
        x = [r["n_labels"] for r in rows]
        style = ARM_STYLES.get(arm, dict(color=f"C{k}", marker="^"))
        left.plot(x, [r["test"]["forces_mae_mev_per_a"] for r in rows], label=arm, **style)
        right.plot(x, [r["test"]["energy_mae_mev_per_atom"] for r in rows], label=arm, **style)
    ticks = sorted({r["n_labels"] for rounds in arms.values() for r in rounds})
    for ax, what in ((left, "force MAE (meV/Å)"), (right, "energy MAE (meV/atom)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        label_ticks(ax, ticks)
        ax.set_xlabel("cumulative ab initio labels")
        ax.set_ylabel(f"test {what}")
        ax.legend(fontsize="small")
    return save_figure(fig, path, "committee-mean test errors per round")


def plot_spread_histograms(rounds: list[dict], path: str | os.PathLike, window: tuple[float, float],
                           title: str) -> Path:
    """Max force spread of the saved exploration frames, one step histogram per round (log axis),
    with the selection window shaded."""
    from ffpt.analysis.plotting import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    values = [np.asarray(r.get("spread_values") or [], dtype=float) for r in rounds]
    edges = log_bins(np.concatenate(values) if values else np.zeros(0), per_decade=8)
    for r, v in zip(rounds, values):
        if v.size:
            ax.hist(np.clip(v, edges[0], edges[-1]), bins=edges, histtype="step", linewidth=1.5,
                    label=f"round {r['round']} ({r['n_labels']} labels)")
    ax.axvspan(*window, color="0.85", zorder=0, label="selection window")
    ax.set_xscale("log")
    ax.set_xlabel("max per-atom force spread of the committee (eV/Å)")
    ax.set_ylabel("saved MD frames")
    ax.legend(fontsize="small")
    ax.set_title(title, fontsize="medium")
    return save_figure(fig, path)

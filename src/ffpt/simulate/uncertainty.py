"""Committee disagreement along an MD run: an observer of the MD engine.

With a committee calculator (:mod:`ffpt.models.committee`) every evaluated frame carries
``forces_std_max`` (eV/A, the largest per-atom spread of the members' forces) and ``energy_std``
(eV). :class:`UncertaintyObserver` records them every ``every`` steps into a summary (count, mean,
largest, a histogram on fixed logarithmic bins, frames above ``mark_above`` and when the first came)
that ``stability.json`` reports under ``observed.uncertainty``, and stops the run (monitor
``"uncertainty"``) when the spread exceeds ``stop_above``. Saved trajectory frames carry the values
themselves (:func:`ffpt.dynamics.trajectory.md_frame`), so active learning picks frames from them.
"""

from __future__ import annotations

import numpy as np

from ffpt.config import ConfigError
from ffpt.keys import ENERGY_STD, FORCES_STD, FORCES_STD_MAX
from ffpt.dynamics.engine import MDState, Observer, Stop
from ffpt.simulate.config import UncertaintyConfig

# histogram bins of the max force spread (eV/A): 1 meV/A to 10 eV/A, 8 per decade, plus under/overflow
HISTOGRAM_EDGES = np.concatenate([[0.0], np.logspace(-3, 1, 33), [np.inf]])


def is_committee(calculator) -> bool:
    """Whether ``calculator`` reports the committee spread (``forces_std``)."""
    return FORCES_STD in getattr(calculator, "implemented_properties", ())


class UncertaintyObserver(Observer):
    """Records the committee's force spread every ``config.every`` steps; see the module docstring."""

    name = "uncertainty"

    def __init__(self, config: UncertaintyConfig, calculator):
        if not is_committee(calculator):
            raise ConfigError("key 'uncertainty': needs a committee calculator (several model files, a "
                              "committee.json or its exported .pt2), which reports the members' disagreement")
        self.config = config
        self._reset()

    def _reset(self) -> None:
        self.checks = 0
        self.total = 0.0
        self.largest = 0.0
        self.largest_energy_std = 0.0
        self.counts = np.zeros(len(HISTOGRAM_EDGES) - 1, dtype=int)
        self.n_above_mark = 0
        self.first_above_mark_fs: float | None = None

    def start(self, state: MDState) -> None:
        self._reset()

    def on_step(self, state: MDState) -> Stop | None:
        if state.step % self.config.every and not state.last and state.stop is None:
            return None
        state.atoms.get_forces()  # evaluated already by the integrator: no new calculation
        results = state.atoms.calc.results
        spread, energy_std = float(results[FORCES_STD_MAX]), float(results[ENERGY_STD])
        self.checks += 1
        self.total += spread
        self.largest = max(self.largest, spread)
        self.largest_energy_std = max(self.largest_energy_std, energy_std)
        self.counts[np.searchsorted(HISTOGRAM_EDGES, spread, side="right") - 1] += 1
        mark = self.config.mark_above
        if mark is not None and spread > mark:
            self.n_above_mark += 1
            if self.first_above_mark_fs is None:
                self.first_above_mark_fs = state.time_fs
        stop = self.config.stop_above
        if stop is not None and spread > stop and state.stop is None:
            return Stop(self.name, f"committee force spread {spread:.3f} eV/A exceeds {stop} eV/A")
        return None

    def summary(self) -> dict:
        """What ``stability.json`` reports (eV/A, eV, fs)."""
        return {
            "checks": self.checks,
            "forces_std_max": {"mean": self.total / self.checks if self.checks else None, "max": self.largest},
            "energy_std_max": self.largest_energy_std,
            "mark_above": self.config.mark_above,
            "n_above_mark": self.n_above_mark,
            "first_above_mark_fs": self.first_above_mark_fs,
            # counts[0] below edges[0], counts[k] in [edges[k-1], edges[k]), counts[-1] above edges[-1]
            "histogram": {"edges": [float(e) for e in HISTOGRAM_EDGES[1:-1]], "counts": self.counts.tolist()},
        }

    def state_dict(self) -> dict:
        return {"checks": self.checks, "total": self.total, "largest": self.largest,
                "largest_energy_std": self.largest_energy_std, "counts": self.counts.tolist(),
                "n_above_mark": self.n_above_mark, "first_above_mark_fs": self.first_above_mark_fs}

    def load_state_dict(self, state: dict) -> None:
        self.checks, self.total, self.largest = state["checks"], state["total"], state["largest"]
        self.largest_energy_std = state["largest_energy_std"]
        self.counts = np.asarray(state["counts"], dtype=int)
        self.n_above_mark, self.first_above_mark_fs = state["n_above_mark"], state["first_above_mark_fs"]


def uncertainty_observers(config: UncertaintyConfig | None, calculator) -> list[Observer]:
    """The committee-disagreement observer: configured, or by default for a committee calculator."""
    if config is None and not is_committee(calculator):
        return []
    return [UncertaintyObserver(config or UncertaintyConfig(), calculator)]

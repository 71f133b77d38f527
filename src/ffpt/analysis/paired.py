"""Two models' errors on the same items (test frames): the mean difference with its 95 % bootstrap interval
and the Wilcoxon signed-rank test, both from scipy. Pure: arrays in, a record out."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class PairedDifference:
    """Mean of ``a - b`` over ``n`` paired items (the unit of ``a`` and ``b``), its 95 % interval (BCa
    bootstrap over the items; ``None`` below 3 items) and the two-sided Wilcoxon signed-rank p-value of
    ``a`` against ``b`` (``None`` below 3 items). The interval covers which items were drawn, not how the
    models were trained."""

    n: int
    mean: float
    ci95: tuple[float, float] | None
    wilcoxon_p: float | None

    def as_dict(self) -> dict:
        return asdict(self)


def paired_difference(a, b, seed: int = 0, n_resamples: int = 9999) -> PairedDifference:
    """:class:`PairedDifference` of the paired values ``a`` and ``b`` (1-d, same length, finite)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values need two 1-d arrays of one length, got shapes {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("paired values must be finite")
    d = a - b
    if len(d) < 3:
        return PairedDifference(len(d), float(d.mean()) if len(d) else float("nan"), None, None)
    if not d.any():  # identical: nothing to rank, nothing to resample
        return PairedDifference(len(d), 0.0, (0.0, 0.0), 1.0)
    p = float(stats.wilcoxon(a, b).pvalue)
    if np.all(d == d[0]):  # no spread: the interval is the value
        return PairedDifference(len(d), float(d[0]), (float(d[0]), float(d[0])), p)
    interval = stats.bootstrap((d,), np.mean, n_resamples=n_resamples, confidence_level=0.95, method="BCa",
                               rng=np.random.default_rng(seed)).confidence_interval
    return PairedDifference(len(d), float(d.mean()), (float(interval.low), float(interval.high)), p)

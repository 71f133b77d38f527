"""Accuracy of each FFPT-FT arm against scratch on the same test frames: at every budget, the paired
difference of each frame's force MAE and energy error between the arms (each arm's seeds averaged), with
its 95 % bootstrap interval and the Wilcoxon signed-rank test (:mod:`ffpt.analysis.paired`)."""

from __future__ import annotations

import numpy as np

from ffpt.analysis.paired import paired_difference
from ffpt.analysis.survival import format_p

QUANTITIES = ("forces_mae_mev_per_a", "energy_abs_error_mev_per_atom")  # keys of the evaluate rows' per_frame


def arm_frame_errors(rows: list[dict], arm: str, budget: int) -> dict[str, np.ndarray] | None:
    """Each test frame's errors of ``arm`` at ``budget``, averaged over its arm seeds (evaluate ``rows``
    with ``per_frame``); ``None`` when there are none."""
    mine = [r["per_frame"] for r in rows if r["arm"] == arm and r["budget"] == budget and "per_frame" in r]
    if not mine:
        return None
    return {q: np.mean([errors[q] for errors in mine], axis=0) for q in QUANTITIES}


def accuracy_comparisons(rows: list[dict], arms: list) -> dict[int, list[dict]]:
    """budget -> one entry per FFPT-FT arm and scratch arm it is compared with (its own architecture's
    scratch arm, and the scratch arm of lowest force MAE at that budget): ``arms`` (FFPT-FT, scratch),
    ``against`` (the roles), and per quantity of :data:`QUANTITIES` the FFPT-FT minus scratch
    :class:`ffpt.analysis.paired.PairedDifference` (negative: FFPT-FT more accurate)."""
    comparisons = {}
    for budget in sorted({r["budget"] for r in rows}):
        errors = {arm.name: arm_frame_errors(rows, arm.name, budget) for arm in arms}
        scratch = [arm.name for arm in arms if arm.kind == "scratch" and errors[arm.name] is not None]
        best = min(scratch, key=lambda name: errors[name]["forces_mae_mev_per_a"].mean()) if scratch else None
        entries = []
        for arm in arms:
            if arm.kind != "ffpt-ft" or errors[arm.name] is None:
                continue
            for other, roles in arm.compared_with(scratch, best, "the most accurate scratch arm").items():
                entries.append({"arms": [arm.name, other], "against": roles,
                                **{q: paired_difference(errors[arm.name][q], errors[other][q]).as_dict()
                                   for q in QUANTITIES}})
        if entries:
            comparisons[budget] = entries
    return comparisons


def accuracy_markdown(comparisons: dict[int, list[dict]]) -> list[str]:
    """The report's section of :func:`accuracy_comparisons` (none when empty)."""
    if not comparisons:
        return []
    n = next(iter(comparisons.values()))[0]["forces_mae_mev_per_a"]["n"]
    lines = ["", "## Accuracy: FFPT-FT against scratch on the same test frames", "",
             f"FFPT-FT minus scratch, frame by frame over the {n} test frames (each arm's seeds averaged; negative: "
             "FFPT-FT more accurate): the mean with its 95 % bootstrap interval and the Wilcoxon signed-rank p. "
             "The interval covers the choice of test frames, not of training seeds: read it with the spread "
             "over arm seeds above.", "",
             "| labels | FFPT-FT arm | against | Δ force MAE (meV/Å) | p | Δ energy error (meV/atom) | p |",
             "|---|---|---|---|---|---|---|"]

    def cell(d: dict, digits: int) -> str:
        ci = d["ci95"]
        interval = f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci is not None else ""
        p = format_p(d["wilcoxon_p"]) if d["wilcoxon_p"] is not None else "n/a"
        return f"{d['mean']:+.{digits}f}{interval} | {p}"

    for budget, entries in comparisons.items():
        for e in entries:
            lines.append(f"| {budget} | {e['arms'][0]} | {e['arms'][1]} ({', '.join(e['against'])}) | "
                         f"{cell(e['forces_mae_mev_per_a'], 1)} | {cell(e['energy_abs_error_mev_per_atom'], 2)} |")
    return lines

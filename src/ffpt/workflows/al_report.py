"""rounds.json, report.md and figures of an active-learning run (one arm) or of both arms of an experiment."""

from __future__ import annotations

import json
from pathlib import Path

from ffpt.fileio import atomic_write_json, atomic_write_text

AL_CONFIG_FILE = "al_config.json"  # the resolved config of an active-learning run, in its folder


def _mae(errors: dict | None, key: str) -> str:
    return f"{errors[key]:.1f}" if errors else "–"


def missing_test_note(config: dict) -> list[str]:
    """Why the test-error columns hold '–' when the config names no test file."""
    if config.get("test"):
        return []
    return ["Test errors: '–', no test file was given (key `test`: labelled frames for the committee's "
            "errors after every round)."]


def round_table(rounds: list[dict]) -> list[str]:
    """Markdown rows: labels, test errors, stability (with interval), time to failure, disagreement, picks."""
    lines = ["| round | labels | test force MAE (meV/Å) | test energy MAE (meV/atom) | stable | 95 % CI "
             "| median failure (fs) | spread median / p90 (eV/Å) | picked |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rounds:
        low, high = r["stable_fraction_ci95"]
        ttf = f"{r['median_time_to_failure_fs']:.0f}" if r["median_time_to_failure_fs"] is not None else "–"
        spread = r["spread"]
        spread_text = (f"{spread['median']:.3f} / {spread['p90']:.3f}" if spread["median"] is not None else "–")
        picked = r.get("labelled", "–")
        lines.append(f"| {r['round']} | {r['n_labels']} | {_mae(r.get('test'), 'forces_mae_mev_per_a')} "
                     f"| {_mae(r.get('test'), 'energy_mae_mev_per_atom')} | {r['n_stable']}/{r['n_runs']} "
                     f"| {low:.2f}–{high:.2f} | {ttf} | {spread_text} | {picked} |")
    return lines


def write_al_report(summary: dict, out: Path, config: dict) -> dict:
    """Write ``rounds.json``, ``report.md``, ``stability_vs_labels.png``, ``spread.png`` (and
    ``errors_vs_labels.png`` with a test set) for one arm run with ``config`` (the ALConfig as JSON);
    returns ``summary``."""
    from ffpt.analysis.active_learning import plot_errors_vs_labels, plot_spread_histograms, plot_stability_vs_labels

    out = Path(out)
    arm, rounds = summary["arm"], summary["rounds"]
    conditions = exploration_conditions(config, len(summary.get("starts") or []) or None)
    window = config["select"]["lower"], config["select"]["upper"]
    figures = [plot_stability_vs_labels({arm: rounds}, out / "stability_vs_labels.png", conditions),
               plot_spread_histograms(rounds, out / "spread.png", window, summary["name"]
                                      + ("" if arm.split("+")[0] in summary["name"] else f" ({arm})"))]
    errors = plot_errors_vs_labels({arm: rounds}, out / "errors_vs_labels.png")
    if errors is not None:
        figures.append(errors)
    target, budget = config["stop"]["stable_fraction"], config["stop"]["max_labels"]
    reached = ([f"Labels to a stable fraction of {target}: {to_stable_text(summary, target, budget)}.", ""]
               if target is not None else [])
    text = [f"# Active learning: {summary['name']} ({arm})", "",
            f"{summary['n_initial']} initial labels, {summary['labels_added']} added in {len(rounds) - 1} "
            f"round(s); stopped: {summary['stop']}.", f"Exploration: {conditions}.", *missing_test_note(config), "",
            *reached, *round_table(rounds), *picks_tables(rounds, summary.get("picked_species")), "",
            *[f"![{p.stem}]({p.name})" for p in figures], ""]
    atomic_write_text(out / "report.md", "\n".join(text))
    atomic_write_json(out / "rounds.json", summary, indent=1)
    return summary


def exploration_conditions(config: dict, n_starts: int | None = None) -> str:
    """Runs per round, their length, ensemble and temperatures of an ALConfig (as JSON); ``n_starts``
    the starts explored from (default: ``explore.structures``)."""
    e = config["explore"]
    n = (n_starts or len(e["structures"])) * len(e["temperatures_K"]) * e["runs"]
    temps = ", ".join(f"{t:g}" for t in e["temperatures_K"])
    if e.get("metad"):
        m = e["metad"]
        return f"{n} metadynamics runs per round, {m['steps'] * m['timestep_fs'] / 1000:g} ps at {temps} K"
    md = e["md"]
    return (f"{n} committee MD runs per round, {md['steps'] * md['timestep_fs'] / 1000:g} ps "
            f"({md['ensemble']}) at {temps} K")


def first_at_target(rounds: list[dict], target: float | None) -> dict | None:
    """The first round whose stable fraction (pooled over every start) reached ``target``: its round,
    labels in all and labels active learning had added by then; None if none did (or no target)."""
    if target is None:
        return None
    return next(({"round": r["round"], "n_labels": r["n_labels"], "n_added": r["n_added"]}
                 for r in rounds if r["stable_fraction"] >= target), None)


def labels_to_reach(rounds: list[dict], target: float | None) -> int | None:
    """Labels of the first round whose stable fraction reached ``target`` (None if none did)."""
    first = first_at_target(rounds, target)
    return first["n_labels"] if first is not None else None


def to_stable_text(summary: dict, target: float | None, budget: int | None) -> str:
    """'42 added (round 3)', or why not: no target, or not reached within the budget / rounds."""
    if target is None:
        return "no target"
    first = first_at_target(summary["rounds"], target)
    if first is not None:
        return f"{first['n_added']} added (round {first['round']}, {first['n_labels']} in all)"
    added = summary["rounds"][-1]["n_added"]
    if budget is not None and added >= budget:
        return f"not reached within the budget of {budget} labels"
    return f"not reached ({added} added in {len(summary['rounds']) - 1} round(s))"


def picks_tables(rounds: list[dict], total: dict | None = None) -> list[str]:
    """Markdown: per round the species in the labelled picks (frames holding each) and picks per start;
    then the stable runs per start and round."""
    lines = []
    picked = [r for r in rounds if r.get("picked")]
    if picked:
        lines += ["", "Species in the labelled picks (frames holding each; Hill formulas) and picks per start:", "",
                  "| round | species | picks per start |", "|---|---|---|"]
        for r in picked:
            species = ", ".join(f"{k} {n}" for k, n in r["picked"]["species"].items()) or "–"
            starts = ", ".join(f"{k} {n}" for k, n in r["picked"]["by_start"].items()) or "–"
            lines.append(f"| {r['round']} | {species} | {starts} |")
        if total:
            lines.append(f"| all | {', '.join(f'{k} {n}' for k, n in total.items())} | |")
    starts = list(dict.fromkeys(s for r in rounds for s in r.get("by_start") or {}))
    if len(starts) > 1:
        lines += ["", "Stable runs per start (stable / runs):", "", "| round | " + " | ".join(starts) + " |",
                  "|---|" + "---|" * len(starts)]
        for r in rounds:
            cells = [f"{c['n_stable']}/{c['n_runs']}" if (c := r.get("by_start", {}).get(s)) else "–" for s in starts]
            lines.append(f"| {r['round']} | " + " | ".join(cells) + " |")
    return lines


def _test_cells(errors: dict | None) -> str:
    return f"{_mae(errors, 'forces_mae_mev_per_a')} / {_mae(errors, 'energy_mae_mev_per_atom')}"


def add_active_learning(results: dict, summaries: dict[str, dict], out: Path, target: float | None,
                        label_budget: int | None = None, before: dict | None = None, after: dict | None = None,
                        rows: list[dict] | None = None, groups: dict[str, list[str]] | None = None) -> dict:
    """Put the arms' active-learning runs into an experiment's ``results.json`` and ``report.md``:
    labels each arm needed to reach ``target`` (``label_budget``: labels it may add), its rounds, the species
    its picks hold, one stability-vs-labels figure, and the test errors (held-out set) of each arm's
    model (``rows``: the evaluate rows at the starting budget) and committee before and of its final
    committee after. ``after`` maps (arm, tag, seed) to the final committees' MD batches from every
    start; ``before`` (arm, budget, seed) to the arms' MD batches at the starting budget (arm seed 0
    compared with after): stable fractions with intervals and log-rank tests as
    :func:`ffpt.workflows.report.stability_by_budget` gives them."""
    from ffpt.analysis.active_learning import plot_stability_vs_labels
    from ffpt.workflows.report import _comparison_table, compare_arms, stability_by_budget

    out = Path(out)
    by_arm = {s["arm"]: s for s in summaries.values()}  # "ffpt-ft+al", "scratch+al"
    saved = out / f"al_{next(iter(summaries))}" / AL_CONFIG_FILE  # both arms explore alike
    first = next(iter(by_arm.values()))
    conditions = exploration_conditions(json.loads(saved.read_text()), len(first.get("starts") or []) or None)
    figure = plot_stability_vs_labels({arm: s["rounds"] for arm, s in by_arm.items()},
                                      out / "al_stability_vs_labels.png", conditions)
    results["active_learning"] = {
        arm: {"labels_to_target": labels_to_reach(s["rounds"], target), "target_stable_fraction": target,
              "labels_to_stable": first_at_target(s["rounds"], target), "label_budget": label_budget,
              "stop": s["stop"], "labels_added": s["labels_added"], "n_initial": s["n_initial"],
              "picked_species": s.get("picked_species"), "starts": s.get("starts"),
              "test_before": {"model": _row_errors(rows, arm.split("+")[0]), "committee": s["rounds"][0].get("test")},
              "test_after": s["rounds"][-1].get("test"),
              "rounds": [{k: v for k, v in r.items() if k != "spread_values"} for r in s["rounds"]]}
        for arm, s in by_arm.items()}
    lines = ["", "## Active learning", "", f"Exploration: {conditions}; target stable fraction "
             f"{target if target is not None else 'none'}" + (f", label budget {label_budget}" if label_budget else "")
             + ".", "",
             "| arm | initial labels | labels added | labels to target | stopped |", "|---|---|---|---|---|"]
    for arm, s in by_arm.items():
        r = results["active_learning"][arm]
        lines.append(f"| {arm} | {r['n_initial']} | {r['labels_added']} | {to_stable_text(s, target, label_budget)} "
                     f"| {r['stop']} |")
    lines += ["", "Test errors on the held-out set, force MAE (meV/Å) / energy MAE (meV/atom):", "",
              "| arm | model before | committee before | committee after |", "|---|---|---|---|"]
    for arm, r in results["active_learning"].items():
        prior = r["test_before"]
        lines.append(f"| {arm} | {_test_cells(prior['model'])} | {_test_cells(prior['committee'])} "
                     f"| {_test_cells(r['test_after'])} |")
    if after:
        entry = next(iter(stability_by_budget(after, groups).values()))
        pairs = {}
        for arm in by_arm:
            base = arm.split("+")[0]
            mine = [run for (a, _, seed), batch in (before or {}).items() if a == base and seed == 0
                    for run in batch["runs"]]
            theirs = [run for (a, _, _), batch in after.items() if a == arm for run in batch["runs"]]
            if mine and theirs:
                pairs[arm] = compare_arms({base: mine, arm: theirs})
        results["active_learning_stability"] = {"after": entry, "before_vs_after": pairs}
        lines += ["", "### MD stability after active learning (final committees, every start)", "",
                  *_comparison_table(entry)]
        for group, part in entry.get("groups", {}).items():
            lines += ["", f"#### {group} starts ({', '.join(part['starts'])})", "", *_comparison_table(part)]
        if not pairs:
            lines += ["", "No MD stability before active learning to compare with: the starting budget is not "
                          "among stability.budgets."]
        for arm, pair in pairs.items():
            lines += ["", f"#### {arm}: before (model at the starting budget, arm seed 0) and after", "",
                      *_comparison_table(pair)]
    atomic_write_json(out / "results.json", results)
    for arm, s in by_arm.items():
        lines += ["", f"### {arm}", "", *round_table(s["rounds"]), *picks_tables(s["rounds"], s.get("picked_species"))]
    lines += ["", f"![{figure.stem}]({figure.name})", ""]
    report = out / "report.md"
    atomic_write_text(report, report.read_text() + "\n".join(lines))
    return results


def _row_errors(rows: list[dict] | None, arm: str) -> dict | None:
    """Test errors of ``arm``'s model (arm seed 0) at the starting budget from the evaluate ``rows``."""
    mine = [r for r in rows or [] if r["arm"] == arm and r.get("seed", 0) == 0]
    return {k: mine[0][k] for k in ("forces_mae_mev_per_a", "energy_mae_mev_per_atom")} if mine else None

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
    conditions = exploration_conditions(config)
    window = config["select"]["lower"], config["select"]["upper"]
    figures = [plot_stability_vs_labels({arm: rounds}, out / "stability_vs_labels.png", conditions),
               plot_spread_histograms(rounds, out / "spread.png", window, summary["name"]
                                      + ("" if arm.split("+")[0] in summary["name"] else f" ({arm})"))]
    errors = plot_errors_vs_labels({arm: rounds}, out / "errors_vs_labels.png")
    if errors is not None:
        figures.append(errors)
    text = [f"# Active learning: {summary['name']} ({arm})", "",
            f"{summary['n_initial']} initial labels, {summary['labels_added']} added in {len(rounds) - 1} "
            f"round(s); stopped: {summary['stop']}.", f"Exploration: {conditions}.", *missing_test_note(config), "",
            *round_table(rounds), "", *[f"![{p.stem}]({p.name})" for p in figures], ""]
    atomic_write_text(out / "report.md", "\n".join(text))
    atomic_write_json(out / "rounds.json", summary, indent=1)
    return summary


def exploration_conditions(config: dict) -> str:
    """Runs per round, their length, ensemble and temperatures of an ALConfig (as JSON)."""
    e = config["explore"]
    n = len(e["structures"]) * len(e["temperatures_K"]) * e["runs"]
    temps = ", ".join(f"{t:g}" for t in e["temperatures_K"])
    if e.get("metad"):
        m = e["metad"]
        return f"{n} metadynamics runs per round, {m['steps'] * m['timestep_fs'] / 1000:g} ps at {temps} K"
    md = e["md"]
    return (f"{n} committee MD runs per round, {md['steps'] * md['timestep_fs'] / 1000:g} ps "
            f"({md['ensemble']}) at {temps} K")


def labels_to_reach(rounds: list[dict], target: float | None) -> int | None:
    """Labels of the first round whose stable fraction reached ``target`` (None if none did)."""
    if target is None:
        return None
    return next((r["n_labels"] for r in rounds if r["stable_fraction"] >= target), None)


def add_active_learning(results: dict, summaries: dict[str, dict], out: Path, target: float | None) -> dict:
    """Put the arms' active-learning runs into an experiment's ``results.json`` and ``report.md``:
    labels each arm needed to reach ``target``, its rounds, and one stability-vs-labels figure."""
    from ffpt.analysis.active_learning import plot_stability_vs_labels

    out = Path(out)
    by_arm = {s["arm"]: s for s in summaries.values()}  # "ffpt-ft+al", "scratch+al"
    saved = out / f"al_{next(iter(summaries))}" / AL_CONFIG_FILE  # both arms explore alike
    conditions = exploration_conditions(json.loads(saved.read_text()))
    figure = plot_stability_vs_labels({arm: s["rounds"] for arm, s in by_arm.items()},
                                      out / "al_stability_vs_labels.png", conditions)
    results["active_learning"] = {
        arm: {"labels_to_target": labels_to_reach(s["rounds"], target), "target_stable_fraction": target,
              "stop": s["stop"], "labels_added": s["labels_added"], "n_initial": s["n_initial"],
              "rounds": [{k: v for k, v in r.items() if k != "spread_values"} for r in s["rounds"]]}
        for arm, s in by_arm.items()}
    atomic_write_json(out / "results.json", results)
    lines = ["", "## Active learning", "", f"Exploration: {conditions}; target stable fraction {target}.", "",
             "| arm | initial labels | labels added | labels at target | stopped |", "|---|---|---|---|---|"]
    for arm, r in results["active_learning"].items():
        lines.append(f"| {arm} | {r['n_initial']} | {r['labels_added']} | {r['labels_to_target'] or 'not reached'} "
                     f"| {r['stop']} |")
    for arm, s in by_arm.items():
        lines += ["", f"### {arm}", "", *round_table(s["rounds"])]
    lines += ["", f"![{figure.stem}]({figure.name})", ""]
    report = out / "report.md"
    atomic_write_text(report, report.read_text() + "\n".join(lines))
    return results

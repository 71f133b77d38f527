"""results.json and report.md (with plots) of an experiment."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from ffpt.fileio import atomic_write_json, atomic_write_text
from ffpt.workflows.accuracy_report import accuracy_comparisons, accuracy_markdown
from ffpt.workflows.config import temperature_name
from ffpt.workflows.metad_summary import add_metad
from ffpt.workflows.metad_summary import markdown as metad_markdown


def _mean(rows, key):
    return float(np.mean([r[key] for r in rows])) if rows else None


def _std(rows, key):
    """Spread over arm seeds (population standard deviation; 0 for one seed)."""
    return float(np.std([r[key] for r in rows])) if rows else None


def learning_curve(rows: list[dict], path: Path, title: str) -> Path:
    """Test force and energy MAE vs fine-tuning labels (two panels), every arm: mean and spread over
    arm seeds, every seed a point, ticks at the budgets."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    from ffpt.analysis.plotting import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    budgets_all = sorted({r["budget"] for r in rows})
    for k, arm in enumerate(dict.fromkeys(r["arm"] for r in rows)):  # the experiment's order: colours as in survival
        budgets = sorted({r["budget"] for r in rows if r["arm"] == arm})
        for ax, key in zip(axes, ("forces_mae_mev_per_a", "energy_mae_mev_per_atom")):
            values = [[r[key] for r in rows if r["arm"] == arm and r["budget"] == b] for b in budgets]
            color, marker = f"C{k}", "os^Dv"[k % 5]
            ax.errorbar(budgets, [np.mean(v) for v in values], yerr=[np.std(v) for v in values], marker=marker,
                        color=color, capsize=3, label=arm)
            seeds = [(b, x) for b, v in zip(budgets, values) for x in v]  # every arm seed as a point
            ax.scatter([b for b, _ in seeds], [x for _, x in seeds], s=14, alpha=0.5, color=color, marker=marker)
    for ax, what in zip(axes, ("force MAE (meV/Å)", "energy MAE (meV/atom)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(FixedLocator(budgets_all))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([str(b) for b in budgets_all])
        plain = FuncFormatter(lambda value, _: f"{value:g}")  # 700, not 7 x 10^2
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
        ax.set_xlabel("ab initio fine-tuning labels")
        ax.set_ylabel(f"test {what}")
        ax.legend(fontsize="small")
    return save_figure(fig, path, title)


def run_conditions(config) -> str:
    """One line for a survival figure's caption: temperature, ensemble, length, runs, failure criteria."""
    s = config.stability
    md, m = s.md, s.md.monitors
    criteria = []
    if m.max_bond_deviation is not None:
        criteria.append(f"bond > {m.max_bond_deviation:g} Å from its {'relaxed' if m.bond_reference == 'relaxed' else 'start'}"
                        " length")
    if m.min_distance is not None:
        criteria.append(f"atoms < {m.min_distance:g} Å")
    if m.min_pair_distance:
        criteria.append(", ".join(f"{p} < {d:g} Å" for p, d in m.min_pair_distance.items()))
    if m.reference_rdf is not None:
        criteria.append(f"RDF error > {m.rdf_threshold:g} Å")
    if m.allowed_species is not None:
        criteria.append("foreign species")
    ensemble = {"nve": "NVE", "langevin": "Langevin", "bussi": "Bussi",
                "npt": f"NPT (MTK, {md.pressure_bar:g} bar)"}.get(md.ensemble, md.ensemble)
    per_model = f"{s.n_runs} per model"
    if s.h2combustion is not None:
        per_model = f"{s.n_runs} per {s.h2combustion.kind} start and model, in the channel's spin state"
    return (f"{md.temperature_K:g} K {ensemble}, {md.timestep_fs:g} fs × {md.steps} steps"
            f" ({md.steps * md.timestep_fs / 1000:g} ps); {per_model} × {config.arm_seeds}"
            f" arm seed{'s' if config.arm_seeds > 1 else ''};"
            f" failure: {', '.join(criteria + ['non-finite forces'])}")


def failure_kinds(runs: list[dict]) -> dict[str, int]:
    """Failed runs counted by the monitor that stopped them (min_distance = atoms collapsed, species =
    foreign species, bond, ...), by name."""
    return dict(sorted(Counter(r["monitor"] or "unknown" for r in runs if not r["stable"]).items()))


def _arm_summary(curve, runs: list[dict]) -> dict:
    """Stable fraction, its interval, median time to failure, failures by kind and the curve."""
    return {"n_runs": curve.n_runs, "n_failed": curve.n_failed, "stable_fraction": curve.stable_fraction,
            "stable_fraction_ci95": list(curve.stable_fraction_ci95), "ci95_method": curve.ci95_method,
            "median_time_to_failure_fs": curve.median_fs, "failures_by_kind": failure_kinds(runs),
            "survival": curve.as_dict()}


def best_scratch(entry_arms: dict, scratch_arms: list[str], force_mae: dict[str, float] | None = None) -> dict | None:
    """The scratch arm with the highest stable fraction among ``scratch_arms`` (summaries in
    ``entry_arms``); a tie is broken by the lower test force MAE (``force_mae``, meV/A). Returns the arm
    and what chose it: 'only scratch arm', 'stable fraction' or 'force MAE (tie on stable fraction)'
    ('order of arms' when the MAE ties too or is unknown)."""
    present = [a for a in scratch_arms if a in entry_arms]
    if not present:
        return None
    if len(present) == 1:
        return {"arm": present[0], "chosen_by": "only scratch arm"}
    top = max(entry_arms[a]["stable_fraction"] for a in present)
    leaders = [a for a in present if entry_arms[a]["stable_fraction"] == top]
    if len(leaders) == 1:
        return {"arm": leaders[0], "chosen_by": "stable fraction"}
    maes = {a: (force_mae or {}).get(a) for a in leaders}
    known = {a: m for a, m in maes.items() if m is not None}
    if known and sorted(known.values()).count(min(known.values())) == 1:
        return {"arm": min(known, key=known.get), "chosen_by": "force MAE (tie on stable fraction)"}
    return {"arm": leaders[0], "chosen_by": "order of arms (tie on stable fraction and force MAE)"}


def compare_arms(runs_by_arm: dict[str, list[dict]], arms: list | None = None,
                 force_mae: dict[str, float] | None = None) -> dict:
    """Per arm :func:`_arm_summary` of ``runs`` and, for two arms, the log-rank test between them.

    Given the experiment's ``arms`` (:class:`ffpt.workflows.config.Arm`), also the best scratch arm
    (:func:`best_scratch`, ``force_mae`` per arm breaking ties) and the log-rank test of each FFPT-FT
    arm against its own architecture's scratch arm and against the best scratch arm; ``logrank`` is then
    the first architecture's FFPT-FT vs scratch."""
    from ffpt.analysis.survival import logrank, survival_curve

    curves = {arm: survival_curve([r["simulated_fs"] for r in runs], [not r["stable"] for r in runs])
              for arm, runs in runs_by_arm.items()}
    entry = {"arms": {arm: _arm_summary(curves[arm], runs) for arm, runs in runs_by_arm.items()}}
    if len(curves) == 2:
        entry["logrank"] = {"arms": list(curves), **logrank(*curves.values()).as_dict()}
    if arms is None:
        return entry
    best = best_scratch(entry["arms"], [a.name for a in arms if a.kind == "scratch"], force_mae)
    entry["best_scratch"] = best
    comparisons = []
    for arm in arms:
        if arm.kind != "ffpt-ft" or arm.name not in curves:
            continue
        against = arm.compared_with(curves, best and best["arm"], "the best scratch arm")
        for other, roles in against.items():
            comparisons.append({"arms": [arm.name, other], "against": roles,
                                **logrank(curves[arm.name], curves[other]).as_dict()})
    entry["comparisons"] = comparisons
    if "ffpt-ft" in curves and "scratch" in curves:
        entry["logrank"] = {"arms": ["ffpt-ft", "scratch"], **logrank(curves["ffpt-ft"], curves["scratch"]).as_dict()}
    return entry


def stability_by_budget(stability: dict, groups: dict[str, list[str]] | None = None, arms: list | None = None,
                        rows: list[dict] | None = None) -> dict[int, dict]:
    """Per budget: each arm's runs pooled over arm seeds (and starts): stable fraction, its 95 %
    interval, median time to failure, failures by kind, survival curve, and the log-rank tests
    (:func:`compare_arms`; ``arms`` and the test-error ``rows`` choose the best scratch arm).
    ``stability`` maps (arm, budget, seed) to MD batch outputs; runs tagged with a ``start`` also give
    a table per start and, for each of ``groups`` (name -> start names), the same comparison on that
    group's runs."""
    order = [a.name for a in arms] if arms is not None else None
    summary = {}
    for budget in sorted({b for _, b, _ in stability}):
        present = {a for a, b, _ in stability if b == budget}
        names = [a for a in order if a in present] if order else sorted(present)
        runs = {arm: [run for (a, b, _), batch in sorted(stability.items()) if (a, b) == (arm, budget)
                      for run in batch["runs"]]
                for arm in names}
        mae = {arm: _mean([r for r in rows or [] if r["arm"] == arm and r["budget"] == budget],
                          "forces_mae_mev_per_a") for arm in names}
        entry = compare_arms(runs, arms, mae)
        starts = sorted({r["start"] for arm_runs in runs.values() for r in arm_runs if "start" in r})
        if starts:
            entry["by_start"] = {
                start: {arm: {"n_runs": len(mine := [r for r in arm_runs if r.get("start") == start]),
                              "n_stable": sum(r["stable"] for r in mine),
                              "failures_by_kind": failure_kinds(mine)}
                        for arm, arm_runs in runs.items()}
                for start in starts}
            entry["groups"] = {
                group: {"starts": members,
                        **compare_arms({arm: [r for r in arm_runs if r.get("start") in members]
                                        for arm, arm_runs in runs.items()}, arms, mae)}
                for group, members in (groups or {}).items()}
        summary[budget] = entry
    return summary


def survival_plot(entry: dict, path: Path, title: str, conditions: str | None = None) -> Path:
    """Survival curves with bands of one budget's :func:`stability_by_budget` entry."""
    from ffpt.analysis.survival import SurvivalCurve, plot_survival

    curves = {arm: SurvivalCurve.from_dict(a["survival"]) for arm, a in entry["arms"].items()}
    return plot_survival(curves, path, title, conditions)


def survival_figures(config, by_budget: dict, out: Path, temperature_K: float | None = None) -> list[str]:
    """A survival figure per budget of :func:`stability_by_budget` (and per group of starts) -> file
    names; at one of ``stability.extra_temperatures`` (``temperature_K``, K) named and titled with it."""
    suffix, at = "", ""
    if temperature_K is not None:
        suffix, at = f"_{temperature_name(temperature_K)}", f" at {temperature_K:g} K"
    conditions = run_conditions(config if temperature_K is None else config.at_temperature(temperature_K))
    figures = []
    for budget, entry in by_budget.items():
        figures.append(survival_plot(entry, out / f"survival_n{budget}{suffix}.png",
                                     f"{config.name}: MD stability{at}, {budget} labels", conditions).name)
        for group, part in entry.get("groups", {}).items():
            figures.append(survival_plot(part, out / f"survival_n{budget}_{group}{suffix}.png",
                                         f"{config.name}: MD stability{at}, {budget} labels, {group} starts",
                                         conditions).name)
    return figures


def rdf_comparison(stability: dict, reference_frames: str | None, path: Path, title: str,
                   density: float | None = None) -> dict[str, float]:
    """RDFs of each arm's MD against the reference configurations (plot); returns each arm's RDF error (A).
    Configurations sampled over a density range are taken at the sampled density nearest ``density``
    (g/cm^3, the MD's start box)."""
    from ffpt.analysis.rdf import plot_rdf
    from ffpt.observables.rdf import RDF, compute_rdf
    from ffpt.data.io import read_frames
    from ffpt.sampling.density_range import nearest_density

    rdfs = {arm: RDF.load(batch["rdf"]) for arm, batch in stability.items() if batch.get("rdf")}
    if not rdfs:
        return {}
    errors = {}
    if reference_frames is not None:
        first = next(iter(rdfs.values()))
        frames = read_frames(reference_frames)
        if density is not None:
            frames = nearest_density(frames, density)
        reference = compute_rdf(frames, rmax=float(first.edges[-1]), bins=len(first.edges) - 1, pairs=sorted(first.g))
        errors = {arm: rdf.error(reference) for arm, rdf in rdfs.items()}
        rdfs = {"reference": reference, **rdfs}
    plot_rdf(rdfs, path, title)
    return errors


def density_comparison(config, stability: dict, budget: int, reference_frames: str | None, path: Path) -> dict:
    """NPT density of each arm at ``budget``, runs pooled over arm seeds: each run's mean over the
    second half of its time under the barostat (after ``nvt_steps``), their mean and 95 % t interval,
    Welch's t-test between the arms, the density of the reference configurations (fixed cells: the
    sampled density, not the teacher's NPT density; configurations sampled over a density range give
    their densities instead) and a figure."""
    from scipy import stats

    from ffpt.analysis.density import plot_density
    from ffpt.data.io import read_frames
    from ffpt.observables.density import RunDensity, mass_density, summarize_density
    from ffpt.sampling.density_range import DENSITY_KEY

    runs = {}
    for (arm, b, _), batch in sorted(stability.items()):
        if b == budget and batch.get("density"):
            runs.setdefault(arm, []).extend(RunDensity(**r) for r in json.loads(Path(batch["density"]).read_text())["runs"])
    if not runs:
        return {}
    md = config.stability.md
    from_fs = (md.nvt_steps + (md.steps - md.nvt_steps) / 2) * md.timestep_fs  # second half under the barostat
    summaries = {arm: summarize_density(arm_runs, from_fs) for arm, arm_runs in runs.items()}
    entry = {"arms": {arm: s.as_dict() for arm, s in summaries.items()}, "reference": None, "welch": None}
    if reference_frames is not None:
        frames = [f for f in read_frames(reference_frames) if f.pbc.all()]
        if frames:
            entry["reference"] = {"mean": float(np.mean([mass_density(f) for f in frames])), "n_frames": len(frames)}
            sampled = sorted({float(f.info[DENSITY_KEY]) for f in frames if DENSITY_KEY in f.info})
            if sampled:  # a density range: their mean is no reference density
                entry["reference"]["sampled_densities"] = sampled
    means = [s.run_means for s in summaries.values()]
    if len(means) == 2 and all(len(m) > 1 for m in means):
        test = stats.ttest_ind(*means, equal_var=False)
        entry["welch"] = {"arms": list(summaries), "statistic": float(test.statistic), "pvalue": float(test.pvalue)}
    reference = entry["reference"]["mean"] if entry["reference"] and "sampled_densities" not in entry["reference"] else None
    plot_density(runs, path, f"{config.name}: NPT density, {budget} labels", from_fs, reference,
                 "reference configurations")
    entry["figure"] = path.name
    return entry


def _start_density(config) -> float | None:
    """Mass density (g/cm^3) of the stability MD's start box (``stability.structure``, else the first
    seed file); ``None`` when it is not a periodic box."""
    import ase.io

    from ffpt.observables.density import mass_density

    path = config.stability.structure or config.seeds[0].file
    if path is None:
        return None
    frame = ase.io.read(path, index=0)
    return mass_density(frame) if frame.pbc.all() else None


def stop_reason(model_path: str | Path) -> str | None:
    """How the training of a model file stopped (``stopped_by`` of the ``metrics.json`` beside it:
    max_epochs, early_stopping, max_time, ...); ``None`` when not recorded."""
    metrics = Path(model_path).parent / "metrics.json"
    try:
        return json.loads(metrics.read_text()).get("stopped_by")
    except (OSError, ValueError, AttributeError):
        return None


def _arm_order(config, rows: list[dict], stability: dict) -> list:
    """The experiment's arms (:class:`ffpt.workflows.config.Arm`) that have results, in config order."""
    seen = {r["arm"] for r in rows} | {arm for arm, _, _ in stability}
    return [arm for arm in config.arms if arm.name in seen]


def write_report(config, out: Path, ff: dict, data: dict, rows: list[dict], stability: dict, metad: dict,
                 groups: dict[str, list[str]] | None = None, models: dict | None = None,
                 extra_stability: dict[float, dict] | None = None) -> dict:
    """results.json, report.md and figures. ``stability`` maps (arm, budget, seed) to MD batch
    outputs (``extra_stability``: the same at each of ``stability.extra_temperatures``, by temperature
    in K, in results.json under ``stability_extra`` by :func:`temperature_name`); ``groups`` names sets
    of starts compared on their own (:func:`stability_by_budget`);
    ``models`` maps (arm, budget, seed) to model files (how each training stopped: :func:`stop_reason`);
    ``metad`` maps (arm, channel, run) to metadynamics run summaries (:mod:`ffpt.workflows.metad_summary`)."""
    largest = max(config.budgets)
    arm_list = _arm_order(config, rows, stability)
    by_budget_stability = stability_by_budget(stability, groups, arm_list, rows)
    stops = {key: stop_reason(path) for key, path in (models or {}).items()}
    arms = {}
    for spec in arm_list:
        arm = spec.name
        at_largest = [r for r in rows if r["arm"] == arm and r["budget"] == largest]
        md = by_budget_stability.get(largest, {}).get("arms", {}).get(arm, {})
        arms[arm] = {
            "architecture": spec.architecture,
            "kind": spec.kind,
            "trained_by": spec.trainer,
            "budget": largest,
            "force_mae_mev_per_a": _mean(at_largest, "forces_mae_mev_per_a"),
            "energy_mae_mev_per_atom": _mean(at_largest, "energy_mae_mev_per_atom"),
            "force_mae_kcal_per_mol_per_a": _mean(at_largest, "forces_mae_kcal_per_mol_per_a"),
            "stable_fraction": md.get("stable_fraction"),
            "stable_fraction_ci95": md.get("stable_fraction_ci95"),
            "median_time_to_failure_fs": md.get("median_time_to_failure_fs"),
            "by_budget": {b: _budget_row(rows, arm, b, by_budget_stability, stops) for b in sorted(config.budgets)},
        }
    results = {
        "experiment": config.name,
        "n_ff_frames": ff["n_frames"],
        "n_test": data["n_test"],
        "budgets": sorted(config.budgets),
        "arms": arms,
        "stability": by_budget_stability,
        "rows": rows,
        "accuracy": accuracy_comparisons(rows, arm_list),
        "time_guard_fired": sorted([arm, budget, seed] for (arm, budget, seed), why in stops.items()
                                   if why == "max_time"),
    }
    if metad:  # (arm, channel, run) -> run summary
        add_metad(results, config, metad, out)
    figures = [learning_curve(rows, out / "learning_curve.png", config.name).name]
    if stability:
        figures += survival_figures(config, by_budget_stability, out)
        for budget, entry in by_budget_stability.items():
            density = density_comparison(config, stability, budget, data.get("configs"), out / f"density_n{budget}.png")
            if density:
                entry["density_g_cm3"] = density
                figures.append(density.pop("figure"))
                if budget == largest:
                    for arm, summary in density["arms"].items():
                        results["arms"][arm]["density_g_cm3"] = {k: summary[k] for k in ("mean", "ci95")}
        final = {arm: batch for (arm, budget, seed), batch in stability.items() if budget == largest and seed == 0}
        if any(batch.get("rdf") for batch in final.values()):
            rdf_errors = rdf_comparison(final, data.get("configs"), out / "rdf.png", f"{config.name}: RDF of the MD",
                                        _start_density(config))
            for arm, error in rdf_errors.items():
                results["arms"][arm]["rdf_error_A"] = error
            figures.append("rdf.png")
    if extra_stability:  # the same statistics at each extra temperature (no RDF or density comparison)
        results["stability_extra"] = {}
        for temperature, batches in extra_stability.items():
            by_budget = stability_by_budget(batches, groups, arm_list, rows)
            results["stability_extra"][temperature_name(temperature)] = by_budget
            figures += survival_figures(config, by_budget, out, temperature)
    atomic_write_json(out / "results.json", results)
    atomic_write_text(out / "report.md", _markdown(config, results, figures, out))
    return results


def _budget_row(rows: list[dict], arm: str, budget: int, stability: dict, stops: dict | None = None) -> dict:
    """Errors at one budget (mean and spread over arm seeds), how each seed's training stopped and,
    with MD runs there, stability."""
    mine = [r for r in rows if r["arm"] == arm and r["budget"] == budget]
    row = {"force_mae_mev_per_a": _mean(mine, "forces_mae_mev_per_a"),
           "force_mae_std_mev_per_a": _std(mine, "forces_mae_mev_per_a"),
           "energy_mae_mev_per_atom": _mean(mine, "energy_mae_mev_per_atom"),
           "energy_mae_std_mev_per_atom": _std(mine, "energy_mae_mev_per_atom"),
           "stopped_by": {seed: why for (a, b, seed), why in sorted((stops or {}).items()) if (a, b) == (arm, budget)}}
    md = stability.get(budget, {}).get("arms", {}).get(arm)
    if md is not None:
        row.update({k: md[k] for k in ("stable_fraction", "stable_fraction_ci95", "median_time_to_failure_fs")})
    return row


def _fmt(x, digits=1):
    return "n/a" if x is None else f"{x:.{digits}f}"


def _interval(ci, digits=2) -> str:
    return "n/a" if ci is None else f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def _ttf(median_fs, stable_fraction) -> str:
    """Median time to failure (ps), or a note when fewer than half the runs failed."""
    if median_fs is None:
        return "n/a" if stable_fraction is None else "> end (under half failed)"
    return f"{median_fs / 1000:.3g}"


KIND_LABELS = {"min_distance": "atoms collapsed", "min_pair_distance": "pair too close", "species": "foreign species",
               "bond": "bond broken", "rdf": "RDF drift", "finite": "blow-up (non-finite)", "calculator": "calculator error"}


def _kinds(counts: dict) -> str:
    return ", ".join(f"{KIND_LABELS.get(k, k)} {n}" for k, n in counts.items()) or "none"


def _comparison_table(entry: dict) -> list[str]:
    from ffpt.analysis.survival import format_p

    lines = ["| arm | runs | failed | stable fraction | 95 % interval | median time to failure (ps) | failures by kind |",
             "|---|---|---|---|---|---|---|"]
    for arm, a in entry["arms"].items():
        lines.append(f"| {arm} | {a['n_runs']} | {a['n_failed']} | {_fmt(a['stable_fraction'], 2)} | "
                     f"{_interval(a['stable_fraction_ci95'])} | "
                     f"{_ttf(a['median_time_to_failure_fs'], a['stable_fraction'])} | {_kinds(a['failures_by_kind'])} |")
    def sentence(test: dict, roles: str = "") -> str:
        return (f"Log-rank test ({' vs '.join(test['arms'])}){roles}: statistic {test['statistic']:.3g},"
                f" p = {format_p(test['pvalue'])}" + (f" ({test['note']})" if test["note"] else "") + ".")

    if "comparisons" not in entry:
        if entry.get("logrank") is not None:
            lines += ["", sentence(entry["logrank"])]
        return lines
    best = entry.get("best_scratch")
    if best is not None:
        lines += ["", f"Best scratch arm: {best['arm']} (chosen by {best['chosen_by']})."]
    for test in entry["comparisons"]:
        lines += ["", sentence(test, f", against {' and '.join(test['against'])}")]
    return lines


def _density_table(density: dict) -> list[str]:
    from ffpt.analysis.survival import format_p
    from ffpt.observables.density import N_BLOCKS

    first = next(iter(density["arms"].values()))
    from_ps, tolerance = first["from_fs"] / 1000, first["plateau_tolerance"]
    lines = ["", f"### NPT density (g/cm³; each run averaged from {from_ps:g} ps to its end)", "",
             "| arm | runs averaged | density | 95 % interval (t, over runs) | runs that ended earlier |"
             " drift (g/cm³/ps, 95 % interval) | plateau |",
             "|---|---|---|---|---|---|---|"]
    for arm, d in density["arms"].items():
        plateau = {True: "yes", False: "no", None: "—"}[d["plateau"]]
        drift = "n/a" if d["drift_ci95"] is None else f"{_fmt(d['drift'], 4)} {_interval(d['drift_ci95'], 4)}"
        lines.append(f"| {arm} | {len(d['run_means'])} | {_fmt(d['mean'], 4)} | {_interval(d['ci95'], 4)} |"
                     f" {d['n_ended_before']} | {drift} | {plateau} |")
    lines += ["", f"Plateau: yes when the drift's 95 % interval lies within ±{tolerance:g} g/cm³/ps (drift: each run's"
                  f" line through {N_BLOCKS} block means of its averaged part, mean over runs, t interval over runs)."]
    reference = density["reference"]
    if reference and "sampled_densities" in reference:
        lines += ["", f"Reference configurations: {reference['n_frames']} fixed cells sampled at "
                      f"{', '.join(f'{d:g}' for d in reference['sampled_densities'])} g/cm³ (no reference density)."]
    elif reference:
        lines += ["", f"Reference configurations (fixed cells, {reference['n_frames']} frames): "
                      f"{reference['mean']:.4f} g/cm³."]
    if density["welch"]:
        lines += [f"Welch's t-test ({' vs '.join(density['welch']['arms'])}): p = {format_p(density['welch']['pvalue'])}."]
    return lines


def _stability_tables(config, by_budget: dict, at: str = "") -> list[str]:
    """A section per budget of :func:`stability_by_budget`, its heading ending in ``at`` (an extra temperature)."""
    lines = []
    for budget, entry in by_budget.items():
        lines += ["", f"## MD stability at {budget} labels{at}", "", run_conditions(config) + ".", ""]
        lines += _comparison_table(entry)
        methods = sorted({a["ci95_method"] for a in entry["arms"].values()})
        lines += ["", f"Interval: {', '.join(methods)} (95 %); survival figure: pointwise Kaplan-Meier band"
                      " (Greenwood, log-log)."]
        if "density_g_cm3" in entry:
            lines += _density_table(entry["density_g_cm3"])
        for group, part in entry.get("groups", {}).items():
            lines += ["", f"### {group} starts ({', '.join(part['starts'])})", ""] + _comparison_table(part)
        if entry.get("by_start"):
            arms = list(entry["arms"])
            lines += ["", "### By start (stable / runs; failures)", "",
                      "| start | " + " | ".join(arms) + " |", "|---|" + "---|" * len(arms)]
            for start, row in entry["by_start"].items():
                cells = [f"{row[a]['n_stable']}/{row[a]['n_runs']}"
                         + (f" ({_kinds(row[a]['failures_by_kind'])})" if row[a]["failures_by_kind"] else "")
                         for a in arms]
                lines.append(f"| {start} | " + " | ".join(cells) + " |")
    return lines


STOP_LABELS = {"max_epochs": "epoch budget", "early_stopping": "early stopping", "max_time": "TIME GUARD"}


def _stops(stopped_by: dict) -> str:
    """How each arm seed's training stopped, e.g. 'early stopping 1, epoch budget 1'."""
    counts = Counter(STOP_LABELS.get(why, why) if why else "not recorded" for why in stopped_by.values())
    return ", ".join(f"{what} {n}" for what, n in sorted(counts.items())) or "not recorded"


def _markdown(config, results: dict, figures: list[str], out: Path) -> str:
    has_rdf = any("rdf_error_A" in r for r in results["arms"].values())
    lines = [
        f"# FFPT-FT vs scratch: {config.name}",
        "",
        f"Force-field pre-training frames: {results['n_ff_frames']}; ab initio test frames: {results['n_test']}; "
        f"fine-tuning budgets: {results['budgets']}; repeats per arm: {config.arm_seeds}. Every arm trains on "
        "the same frames at each budget and arm seed.",
        "",
        "| arm | architecture | trained by | labels | force MAE (meV/Å) | energy MAE (meV/atom) |"
        " stable fraction (95 % interval) | median time to failure (fs) |"
        + (" RDF error vs reference (Å) |" if has_rdf else ""),
        "|---|---|---|---|---|---|---|---|" + ("---|" if has_rdf else ""),
    ]
    for arm, r in results["arms"].items():
        ttf = r["median_time_to_failure_fs"]
        lines.append(
            f"| {arm} | {r['architecture']} | {r['trained_by']} | {r['budget']} | {_fmt(r['force_mae_mev_per_a'])} |"
            f" {_fmt(r['energy_mae_mev_per_atom'], 2)} | "
            f"{_fmt(r['stable_fraction'], 2)} {_interval(r['stable_fraction_ci95']) if r['stable_fraction_ci95'] else ''} | {'none failed half' if ttf is None and r['stable_fraction'] is not None else _fmt(ttf, 0)} |"
            + (f" {_fmt(r.get('rdf_error_A'), 2)} |" if has_rdf else "")
        )
    lines += ["", f"## Test errors by budget (mean ± spread over {config.arm_seeds} arm seed"
                  f"{'s' if config.arm_seeds > 1 else ''})", "",
              "| labels | arm | force MAE (meV/Å) | energy MAE (meV/atom) | training stopped by (arm seeds) |",
              "|---|---|---|---|---|"]
    for b in results["budgets"]:
        for a in results["arms"]:
            row = results["arms"][a]["by_budget"][b]
            lines.append(f"| {b} | {a} | {_fmt(row['force_mae_mev_per_a'])} ± {_fmt(row['force_mae_std_mev_per_a'])} |"
                         f" {_fmt(row['energy_mae_mev_per_atom'], 2)} ± {_fmt(row['energy_mae_std_mev_per_atom'], 2)} |"
                         f" {_stops(row['stopped_by'])} |")
    fired = results["time_guard_fired"]
    lines += ["", "The time guard (training.max_time_minutes) fired for: "
              + ", ".join(f"{a} at {b} labels, seed {s}" for a, b, s in fired) + "; those models are not converged."
              if fired else "The time guard (training.max_time_minutes) fired for no model."]
    lines += accuracy_markdown(results["accuracy"])
    lines += _stability_tables(config, results["stability"])
    for temperature in config.stability.extra_temperatures if config.stability is not None else []:
        by_budget = results.get("stability_extra", {}).get(temperature_name(temperature))
        if by_budget is not None:
            lines += _stability_tables(config.at_temperature(temperature), by_budget, f", {temperature:g} K")
    lines += metad_markdown(results)
    lines += ["", "## Figures", ""]
    lines += [f"![{f}]({f})" for f in figures]
    for budget in results["budgets"]:
        if (out / "evaluate" / f"parity_n{budget}.png").exists():
            lines.append(f"![parity, {budget} labels](evaluate/parity_n{budget}.png)")
    return "\n".join(lines) + "\n"

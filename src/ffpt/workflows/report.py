"""results.json and report.md (with plots) of an experiment."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ffpt.fileio import atomic_write_json, atomic_write_text


def _mean(rows, key):
    return float(np.mean([r[key] for r in rows])) if rows else None


def _std(rows, key):
    """Spread over arm seeds (population standard deviation; 0 for one seed)."""
    return float(np.std([r[key] for r in rows])) if rows else None


def learning_curve(rows: list[dict], path: Path, title: str) -> Path:
    """Test force and energy MAE vs fine-tuning labels (two panels), both arms: mean and spread over
    arm seeds, every seed a point, ticks at the budgets."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    from ffpt.analysis.plotting import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    budgets_all = sorted({r["budget"] for r in rows})
    for k, arm in enumerate(sorted({r["arm"] for r in rows})):
        budgets = sorted({r["budget"] for r in rows if r["arm"] == arm})
        for ax, key in zip(axes, ("forces_mae_mev_per_a", "energy_mae_mev_per_atom")):
            values = [[r[key] for r in rows if r["arm"] == arm and r["budget"] == b] for b in budgets]
            color, marker = f"C{k}", "os^"[k % 3]
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


def pooled_curve(batches: list[dict]):
    """Survival of every run of ``batches`` (MD batch outputs, e.g. one per arm seed) together."""
    from ffpt.analysis.survival import survival_curve

    runs = [run for batch in batches for run in batch["runs"]]
    return survival_curve([r["simulated_fs"] for r in runs], [not r["stable"] for r in runs])


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
    ensemble = {"nve": "NVE", "langevin": "Langevin", "bussi": "Bussi"}.get(md.ensemble, md.ensemble)
    return (f"{md.temperature_K:g} K {ensemble}, {md.timestep_fs:g} fs × {md.steps} steps"
            f" ({md.steps * md.timestep_fs / 1000:g} ps); {s.n_runs * config.arm_seeds} runs per arm"
            f" ({s.n_runs} per model × {config.arm_seeds} seed{'s' if config.arm_seeds > 1 else ''});"
            f" failure: {', '.join(criteria + ['non-finite forces'])}")


def stability_by_budget(stability: dict) -> dict[int, dict]:
    """Per budget: each arm's runs pooled over arm seeds (stable fraction, its 95 % interval, median
    time to failure, survival curve) and the log-rank test between the arms. ``stability`` maps
    (arm, budget, seed) to MD batch outputs."""
    from ffpt.analysis.survival import logrank

    summary = {}
    for budget in sorted({b for _, b, _ in stability}):
        curves = {arm: pooled_curve([batch for (a, b, _), batch in sorted(stability.items()) if (a, b) == (arm, budget)])
                  for arm in sorted({a for a, b, _ in stability if b == budget})}
        arms = {arm: {"n_runs": c.n_runs, "n_failed": c.n_failed, "stable_fraction": c.stable_fraction,
                      "stable_fraction_ci95": list(c.stable_fraction_ci95), "ci95_method": c.ci95_method,
                      "median_time_to_failure_fs": c.median_fs, "survival": c.as_dict()}
                for arm, c in curves.items()}
        entry = {"arms": arms}
        if len(curves) == 2:
            entry["logrank"] = {"arms": list(curves), **logrank(*curves.values()).as_dict()}
        summary[budget] = entry
    return summary


def survival_plot(entry: dict, path: Path, title: str, conditions: str | None = None) -> Path:
    """Survival curves with bands of one budget's :func:`stability_by_budget` entry."""
    from ffpt.analysis.survival import SurvivalCurve, plot_survival

    curves = {arm: SurvivalCurve.from_dict(a["survival"]) for arm, a in entry["arms"].items()}
    return plot_survival(curves, path, title, conditions)


def rdf_comparison(stability: dict, reference_frames: str | None, path: Path, title: str) -> dict[str, float]:
    """RDFs of each arm's MD against the reference configurations (plot); returns each arm's RDF error (A)."""
    from ffpt.analysis.rdf import plot_rdf
    from ffpt.observables.rdf import RDF, compute_rdf
    from ffpt.data.io import read_frames

    rdfs = {arm: RDF.load(batch["rdf"]) for arm, batch in stability.items() if batch.get("rdf")}
    if not rdfs:
        return {}
    errors = {}
    if reference_frames is not None:
        first = next(iter(rdfs.values()))
        reference = compute_rdf(read_frames(reference_frames), rmax=float(first.edges[-1]), bins=len(first.edges) - 1,
                                pairs=sorted(first.g))
        errors = {arm: rdf.error(reference) for arm, rdf in rdfs.items()}
        rdfs = {"reference": reference, **rdfs}
    plot_rdf(rdfs, path, title)
    return errors


def write_report(config, out: Path, ff: dict, data: dict, rows: list[dict], stability: dict, metad: dict) -> dict:
    """results.json, report.md and figures. ``stability`` maps (arm, budget, seed) to MD batch outputs."""
    largest = max(config.budgets)
    by_budget_stability = stability_by_budget(stability)
    arms = {}
    for arm in ("ffpt-ft", "scratch"):
        at_largest = [r for r in rows if r["arm"] == arm and r["budget"] == largest]
        md = by_budget_stability.get(largest, {}).get("arms", {}).get(arm, {})
        arms[arm] = {
            "budget": largest,
            "force_mae_mev_per_a": _mean(at_largest, "forces_mae_mev_per_a"),
            "energy_mae_mev_per_atom": _mean(at_largest, "energy_mae_mev_per_atom"),
            "force_mae_kcal_per_mol_per_a": _mean(at_largest, "forces_mae_kcal_per_mol_per_a"),
            "stable_fraction": md.get("stable_fraction"),
            "stable_fraction_ci95": md.get("stable_fraction_ci95"),
            "median_time_to_failure_fs": md.get("median_time_to_failure_fs"),
            "by_budget": {b: _budget_row(rows, arm, b, by_budget_stability) for b in sorted(config.budgets)},
        }
        if arm in metad:
            arms[arm]["metad"] = metad[arm]
    results = {
        "experiment": config.name,
        "n_ff_frames": ff["n_frames"],
        "n_test": data["n_test"],
        "budgets": sorted(config.budgets),
        "arms": arms,
        "stability": by_budget_stability,
        "rows": rows,
    }
    figures = [learning_curve(rows, out / "learning_curve.png", config.name).name]
    if stability:
        conditions = run_conditions(config)
        for budget, entry in by_budget_stability.items():
            figures.append(survival_plot(entry, out / f"survival_n{budget}.png",
                                         f"{config.name}: MD stability, {budget} labels", conditions).name)
        final = {arm: batch for (arm, budget, seed), batch in stability.items() if budget == largest and seed == 0}
        if any(batch.get("rdf") for batch in final.values()):
            rdf_errors = rdf_comparison(final, data.get("configs"), out / "rdf.png", f"{config.name}: RDF of the MD")
            for arm, error in rdf_errors.items():
                results["arms"][arm]["rdf_error_A"] = error
            figures.append("rdf.png")
    atomic_write_json(out / "results.json", results)
    atomic_write_text(out / "report.md", _markdown(config, results, figures, out))
    return results


def _budget_row(rows: list[dict], arm: str, budget: int, stability: dict) -> dict:
    """Errors at one budget (mean and spread over arm seeds) and, with MD runs there, stability."""
    mine = [r for r in rows if r["arm"] == arm and r["budget"] == budget]
    row = {"force_mae_mev_per_a": _mean(mine, "forces_mae_mev_per_a"),
           "force_mae_std_mev_per_a": _std(mine, "forces_mae_mev_per_a"),
           "energy_mae_mev_per_atom": _mean(mine, "energy_mae_mev_per_atom"),
           "energy_mae_std_mev_per_atom": _std(mine, "energy_mae_mev_per_atom")}
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


def _stability_tables(config, results: dict) -> list[str]:
    from ffpt.analysis.survival import format_p

    lines = []
    for budget, entry in results["stability"].items():
        lines += ["", f"## MD stability at {budget} labels", "", run_conditions(config) + ".", "",
                  "| arm | runs | failed | stable fraction | 95 % interval | median time to failure (ps) |",
                  "|---|---|---|---|---|---|"]
        for arm, a in entry["arms"].items():
            lines.append(f"| {arm} | {a['n_runs']} | {a['n_failed']} | {_fmt(a['stable_fraction'], 2)} | "
                         f"{_interval(a['stable_fraction_ci95'])} | "
                         f"{_ttf(a['median_time_to_failure_fs'], a['stable_fraction'])} |")
        test = entry.get("logrank")
        if test is not None:
            lines += ["", f"Log-rank test ({' vs '.join(test['arms'])}): statistic {test['statistic']:.3g},"
                          f" p = {format_p(test['pvalue'])}" + (f" ({test['note']})" if test["note"] else "") + "."]
        methods = sorted({a["ci95_method"] for a in entry["arms"].values()})
        lines += ["", f"Interval: {', '.join(methods)} (95 %); survival figure: pointwise Kaplan-Meier band"
                      " (Greenwood, log-log)."]
    return lines


def _markdown(config, results: dict, figures: list[str], out: Path) -> str:
    has_rdf = any("rdf_error_A" in r for r in results["arms"].values())
    lines = [
        f"# FFPT-FT vs scratch: {config.name}",
        "",
        f"Force-field pre-training frames: {results['n_ff_frames']}; ab initio test frames: {results['n_test']}; "
        f"fine-tuning budgets: {results['budgets']}; repeats per arm: {config.arm_seeds}.",
        "",
        "| arm | labels | force MAE (meV/Å) | energy MAE (meV/atom) | stable fraction (95 % interval) |"
        " median time to failure (fs) |" + (" RDF error vs reference (Å) |" if has_rdf else ""),
        "|---|---|---|---|---|---|" + ("---|" if has_rdf else ""),
    ]
    for arm, r in results["arms"].items():
        ttf = r["median_time_to_failure_fs"]
        lines.append(
            f"| {arm} | {r['budget']} | {_fmt(r['force_mae_mev_per_a'])} | {_fmt(r['energy_mae_mev_per_atom'], 2)} | "
            f"{_fmt(r['stable_fraction'], 2)} {_interval(r['stable_fraction_ci95']) if r['stable_fraction_ci95'] else ''} | {'none failed half' if ttf is None and r['stable_fraction'] is not None else _fmt(ttf, 0)} |"
            + (f" {_fmt(r.get('rdf_error_A'), 2)} |" if has_rdf else "")
        )
    lines += ["", f"## Test errors by budget (mean ± spread over {config.arm_seeds} arm seed"
                  f"{'s' if config.arm_seeds > 1 else ''})", "",
              "| labels | " + " | ".join(f"{a} force MAE (meV/Å) | {a} energy MAE (meV/atom)" for a in results["arms"])
              + " |", "|---|" + "---|---|" * len(results["arms"])]
    for b in results["budgets"]:
        cells = []
        for a in results["arms"]:
            row = results["arms"][a]["by_budget"][b]
            cells += [f"{_fmt(row['force_mae_mev_per_a'])} ± {_fmt(row['force_mae_std_mev_per_a'])}",
                      f"{_fmt(row['energy_mae_mev_per_atom'], 2)} ± {_fmt(row['energy_mae_std_mev_per_atom'], 2)}"]
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    lines += _stability_tables(config, results)
    for arm in results["arms"]:
        if "metad" in results["arms"][arm]:
            m = results["arms"][arm]["metad"]
            lines += ["", f"## Metadynamics ({arm})", "", "```", json.dumps(m, indent=1, default=str)[:1500], "```"]
    lines += ["", "## Figures", ""]
    lines += [f"![{f}]({f})" for f in figures]
    for budget in results["budgets"]:
        if (out / "evaluate" / f"parity_n{budget}.png").exists():
            lines.append(f"![parity, {budget} labels](evaluate/parity_n{budget}.png)")
    return "\n".join(lines) + "\n"

"""results.json and report.md (with plots) of an experiment."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ffpt.fileio import atomic_write_json, atomic_write_text


def _mean(rows, key):
    return float(np.mean([r[key] for r in rows])) if rows else None


def learning_curve(rows: list[dict], path: Path, title: str) -> Path:
    """Force MAE (meV/A) vs number of fine-tuning labels, both arms (mean and spread over seeds)."""
    from ffpt.analysis.plotting import pyplot, save_figure

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(5, 4))
    for arm in sorted({r["arm"] for r in rows}):
        budgets = sorted({r["budget"] for r in rows if r["arm"] == arm})
        values = [[r["forces_mae_mev_per_a"] for r in rows if r["arm"] == arm and r["budget"] == b] for b in budgets]
        mean = [np.mean(v) for v in values]
        ax.errorbar(budgets, mean, yerr=[np.std(v) for v in values], marker="o", capsize=3, label=arm)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("ab initio fine-tuning labels")
    ax.set_ylabel("test force MAE (meV/Å)")
    ax.set_title(title)
    ax.legend()
    return save_figure(fig, path)


def survival_plot(stability: dict, path: Path, title: str) -> Path:
    from ffpt.analysis.survival import SurvivalCurve, plot_survival

    curves = {}
    for arm, batch in stability.items():
        s = batch["survival"]
        curves[arm] = SurvivalCurve(np.array(s["time_fs"]), np.array(s["fraction_stable"]), s["median_fs"],
                                    s["n_runs"], s["n_failed"])
    return plot_survival(curves, path, title)


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
    largest = max(config.budgets)
    arms = {}
    for arm in ("ffpt-ft", "scratch"):
        at_largest = [r for r in rows if r["arm"] == arm and r["budget"] == largest]
        batch = stability.get(arm, {})
        runs = batch.get("time_to_failure_fs")
        arms[arm] = {
            "budget": largest,
            "force_mae_mev_per_a": _mean(at_largest, "forces_mae_mev_per_a"),
            "energy_mae_mev_per_atom": _mean(at_largest, "energy_mae_mev_per_atom"),
            "force_mae_kcal_per_mol_per_a": _mean(at_largest, "forces_mae_kcal_per_mol_per_a"),
            "stable_fraction": (sum(t is None for t in runs) / len(runs)) if runs else None,
            "median_time_to_failure_fs": batch.get("median_time_to_failure_fs"),
            "by_budget": {
                b: {"force_mae_mev_per_a": _mean([r for r in rows if r["arm"] == arm and r["budget"] == b],
                                                 "forces_mae_mev_per_a"),
                    "energy_mae_mev_per_atom": _mean([r for r in rows if r["arm"] == arm and r["budget"] == b],
                                                     "energy_mae_mev_per_atom")}
                for b in sorted(config.budgets)
            },
        }
        if arm in metad:
            arms[arm]["metad"] = metad[arm]
    results = {
        "experiment": config.name,
        "n_ff_frames": ff["n_frames"],
        "n_test": data["n_test"],
        "budgets": sorted(config.budgets),
        "arms": arms,
        "rows": rows,
    }
    figures = [learning_curve(rows, out / "learning_curve.png", config.name).name]
    if stability:
        figures.append(survival_plot(stability, out / "survival.png", f"{config.name}: MD stability").name)
        if any(batch.get("rdf") for batch in stability.values()):
            rdf_errors = rdf_comparison(stability, data.get("configs"), out / "rdf.png", f"{config.name}: RDF of the MD")
            for arm, error in rdf_errors.items():
                results["arms"][arm]["rdf_error_A"] = error
            figures.append("rdf.png")
    atomic_write_json(out / "results.json", results)
    atomic_write_text(out / "report.md", _markdown(config, results, figures, out))
    return results


def _fmt(x, digits=1):
    return "n/a" if x is None else f"{x:.{digits}f}"


def _markdown(config, results: dict, figures: list[str], out: Path) -> str:
    has_rdf = any("rdf_error_A" in r for r in results["arms"].values())
    lines = [
        f"# FFPT-FT vs scratch: {config.name}",
        "",
        f"Force-field pre-training frames: {results['n_ff_frames']}; ab initio test frames: {results['n_test']}; "
        f"fine-tuning budgets: {results['budgets']}; repeats per arm: {config.arm_seeds}.",
        "",
        "| arm | labels | force MAE (meV/Å) | energy MAE (meV/atom) | stable fraction | median time to failure (fs) |"
        + (" RDF error vs reference (Å) |" if has_rdf else ""),
        "|---|---|---|---|---|---|" + ("---|" if has_rdf else ""),
    ]
    for arm, r in results["arms"].items():
        ttf = r["median_time_to_failure_fs"]
        lines.append(
            f"| {arm} | {r['budget']} | {_fmt(r['force_mae_mev_per_a'])} | {_fmt(r['energy_mae_mev_per_atom'], 2)} | "
            f"{_fmt(r['stable_fraction'], 2)} | {'none failed half' if ttf is None and r['stable_fraction'] is not None else _fmt(ttf, 0)} |"
            + (f" {_fmt(r.get('rdf_error_A'), 2)} |" if has_rdf else "")
        )
    lines += ["", "## Force MAE by budget (meV/Å)", "", "| labels | " + " | ".join(results["arms"]) + " |",
              "|---|" + "---|" * len(results["arms"])]
    for b in results["budgets"]:
        cells = [_fmt(results["arms"][a]["by_budget"][b]["force_mae_mev_per_a"]) for a in results["arms"]]
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    for arm in results["arms"]:
        if "metad" in results["arms"][arm]:
            m = results["arms"][arm]["metad"]
            lines += ["", f"## Metadynamics ({arm})", "", "```", json.dumps(m, indent=1, default=str)[:1500], "```"]
    lines += ["", "## Figures", ""]
    lines += [f"![{f}]({f})" for f in figures]
    for arm in results["arms"]:
        for candidate in (f"evaluate/parity_{arm}.png",):
            if (out / candidate).exists():
                lines.append(f"![parity {arm}]({candidate})")
    return "\n".join(lines) + "\n"

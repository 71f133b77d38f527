"""Metadynamics of an experiment compared across independent runs and arms, per channel: FES
barrier and reaction free energy (mean, standard deviation, 95 % t interval over runs) against the
reference (the data set's stationary points) and each model's own static barrier, FES convergence,
runs ending in unphysical species; a figure of every arm's free-energy profiles per channel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import stats

from ffpt.units import KCAL_PER_MOL, KJ_PER_MOL

KJ_PER_KCAL = KCAL_PER_MOL / KJ_PER_MOL  # 4.184


def spread(values: list[float]) -> dict:
    """Mean, sample standard deviation and Student-t 95 % interval of independent ``values``
    (runs); ``None`` for what fewer than two values (one for the mean) cannot give."""
    x = np.asarray([v for v in values if v is not None], float)
    out = {"values": x.tolist(), "n": len(x), "mean": float(x.mean()) if len(x) else None, "std": None, "ci95": None}
    if len(x) > 1:
        std = float(x.std(ddof=1))
        half = float(stats.t.ppf(0.975, len(x) - 1)) * std / np.sqrt(len(x))
        out.update(std=std, ci95=[out["mean"] - half, out["mean"] + half])
    return out


def _kj(barriers: dict, key: str) -> float | None:
    value = barriers.get(key)
    return None if value is None else value * KJ_PER_KCAL


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def channel_summary(runs: list[dict]) -> dict:
    """One arm's runs on one channel (run summaries of :func:`ffpt.jobs.metad.analyse`), kJ/mol:
    FES barrier (forward) and reaction free energy (forward - reverse barrier of the final FES) of
    every run with their :func:`spread`; the reference and the model's static barrier and reaction
    energy (E(TS) - E(reactant), E(product) - E(reactant) at the stationary points); how many runs
    met their FES tolerance, ended in (or ever held) species outside the reaction's, or were stopped
    by a monitor, and the outcomes."""
    found = [r.get("barriers") or {} for r in runs]
    forward = [_kj(b, "fes_barrier_kcal_per_mol") for b in found]
    reaction = [_difference(f, _kj(b, "fes_reverse_barrier_kcal_per_mol")) for f, b in zip(forward, found)]
    first = next((b for b in found if b), {})
    static = {}
    for who in ("reference", "model"):
        barrier = _kj(first, f"{who}_barrier_kcal_per_mol")
        static[f"{who}_barrier_kj_mol"] = barrier
        static[f"{who}_reaction_energy_kj_mol"] = _difference(barrier, _kj(first, f"{who}_reverse_barrier_kcal_per_mol"))
    convergence = [r.get("fes_convergence") for r in runs]
    judged = [c for c in convergence if c is not None]
    outcomes: dict[str, int] = {}
    for r in runs:
        outcomes[r.get("outcome", "unknown")] = outcomes.get(r.get("outcome", "unknown"), 0) + 1
    ends = [r.get("ends_unphysical") for r in runs]
    return {
        "n_runs": len(runs),
        "barrier_kj_mol": spread(forward),
        "reaction_free_energy_kj_mol": spread(reaction),
        **static,
        "tolerance_kj_mol": sorted({c["tolerance_kj_mol"] for c in judged}),
        "last_rms_change_kj_mol": [c["rms_change_kj_mol"][-1] for c in judged],
        "n_converged": sum(c["converged"] for c in judged) if judged else None,  # None: runs of earlier versions
        "fraction_converged": sum(c["converged"] for c in judged) / len(judged) if judged else None,
        "n_ending_unphysical": sum(bool(e) for e in ends) if None not in ends else None,
        "n_with_unphysical_frames": sum(r.get("unphysical_frames", 0) > 0 for r in runs),
        "n_stopped": sum(not r["stability"]["stable"] for r in runs),
        "outcomes": dict(sorted(outcomes.items())),
    }


def arm_tests(config, per_arm: dict[str, dict]) -> list[dict]:
    """Each FFPT-FT arm against its own architecture's scratch arm on one channel (``per_arm``: arm ->
    :func:`metad_results` entry): Welch's t-test of the FES barriers over runs (p ``None`` with fewer
    than two values in an arm) and Fisher's exact test of the runs ending in unphysical species."""
    tests = []
    for arm in config.arms:
        other = arm.own_scratch
        if other is None or arm.name not in per_arm or other not in per_arm:
            continue
        a, b = (per_arm[name]["summary"] for name in (arm.name, other))
        x, y = a["barrier_kj_mol"]["values"], b["barrier_kj_mol"]["values"]
        welch = stats.ttest_ind(x, y, equal_var=False) if min(len(x), len(y)) > 1 else None
        p_barrier = None if welch is None or not np.isfinite(welch.pvalue) else float(welch.pvalue)
        ends = [a["n_ending_unphysical"], b["n_ending_unphysical"]]
        p_products = None
        if None not in ends:
            table = [[ends[0], a["n_runs"] - ends[0]], [ends[1], b["n_runs"] - ends[1]]]
            p_products = float(stats.fisher_exact(table).pvalue)
        tests.append({"arms": [arm.name, other], "barrier_welch_p": p_barrier,
                      "barrier_difference_kj_mol": _difference(a["barrier_kj_mol"]["mean"], b["barrier_kj_mol"]["mean"]),
                      "unphysical_fisher_p": p_products})
    return tests


def metad_results(config, metad: dict) -> dict:
    """Per arm and channel (config order) the run summaries (``metad``: (arm, channel, run) ->
    summary), each with its run, MD seed and stage folder, and their :func:`channel_summary`."""
    from ffpt.workflows.reactive import metad_runs

    stages = {(m.arm, m.channel, m.run): m.stage for arm in {a for a, _, _ in metad}
              for m in metad_runs(config.metad, arm)}
    out: dict[str, dict] = {}
    for (arm, channel, run), summary in sorted(metad.items(), key=lambda kv: kv[0][2]):
        entry = out.setdefault(arm, {}).setdefault(channel, {"runs": []})
        entry["runs"].append({"run": run, "seed": config.metad.run_seed(run),
                              "stage": stages.get((arm, channel, run)), **summary})
    for channels in out.values():
        for entry in channels.values():
            entry["summary"] = channel_summary(entry["runs"])
    return {arm: {c: out[arm][c] for c in config.metad.channel_list if c in out[arm]} for arm in out}


def conditions(config, channel: str) -> dict:
    """The settings of every run on ``channel``: whose models, MD seeds, temperature, bias factor,
    hills, length, FES tolerance."""
    o = config.metad.resolved_options(channel)
    return {"budget": config.metad.budget or max(config.budgets), "arm_seed": 0, "runs": config.metad.runs,
            "seeds": [config.metad.run_seed(k) for k in range(config.metad.runs)],
            "temperature_K": o.temperature_K, "biasfactor": o.biasfactor, "height_kj_mol": o.height, "pace": o.pace,
            "steps": o.steps, "timestep_fs": o.timestep_fs, "simulated_ps": o.steps * o.timestep_fs / 1000,
            "fes_tolerance_kj_mol": o.fes_tolerance_kj_mol, "fes_estimates": o.fes_estimates}


def aligned_profile(run: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """A run's reactant -> product free-energy profile (lambda, kJ/mol) with the lowest point on the
    reactant's side of the TS (lambda <= the TS's) at zero, as a barrier is measured; ``None``
    without one."""
    profile = (run.get("barriers") or {}).get("profile")
    if not profile:
        return None
    lam = np.asarray(profile["lambda"], float)
    f = np.array([np.nan if v is None else v for v in profile["free_energy_kj_mol"]], float)
    side = np.isfinite(f) & (lam <= profile["ts_lambda"])
    if not side.any():
        side = np.isfinite(f)
    return lam, f - np.min(f[side])


def plot_channel(channel: str, by_arm: dict[str, dict], path: Path, title: str) -> Path | None:
    """Every arm's free-energy profiles along the reactant -> product line on one channel: each run
    thin, the mean over runs thick (where every run has a value), the TS's lambda dotted, the
    reference barrier E(TS) - E(reactant) dashed; ``None`` when no run has a profile."""
    from ffpt.analysis.plotting import pyplot, save_figure

    curves = {arm: [p for p in (aligned_profile(r) for r in entry["runs"]) if p is not None]
              for arm, entry in by_arm.items()}
    if not any(curves.values()):
        return None
    fig, ax = pyplot().subplots(figsize=(7, 4.5))
    top = []
    for k, (arm, profiles) in enumerate(curves.items()):
        for lam, f in profiles:
            ax.plot(lam, f, color=f"C{k}", lw=0.8, alpha=0.45)
        if profiles:
            mean = np.mean([f for _, f in profiles], axis=0)  # NaN where a run has none
            n = len(profiles)
            ax.plot(profiles[0][0], mean, color=f"C{k}", lw=2.2, label=f"{arm} (mean of {n} run{'s' * (n > 1)})")
            inside = (profiles[0][0] >= 0) & (profiles[0][0] <= 1) & np.isfinite(mean)
            top.append(np.max(mean[inside]) if inside.any() else np.nanmax(mean))
    summary = next(iter(by_arm.values()))["summary"]
    reference = summary["reference_barrier_kj_mol"]
    if reference is not None:
        ax.axhline(reference, color="k", ls="--", lw=1, label="reference barrier E(TS) - E(reactant)")
        top.append(reference)
    ts = next((r["barriers"]["profile"]["ts_lambda"] for e in by_arm.values() for r in e["runs"]
               if (r.get("barriers") or {}).get("profile")), None)
    if ts is not None:
        ax.axvline(ts, color="grey", ls=":", lw=1)
        ax.annotate("TS", (ts, 0), textcoords="offset points", xytext=(2, 4), fontsize=8)
    for x, label in ((0.0, "reactant"), (1.0, "product")):
        ax.annotate(label, (x, 0), textcoords="offset points", xytext=(2, -12), fontsize=8)
    top = max([t for t in top if np.isfinite(t) and t > 0], default=1.0)
    ax.set_ylim(-0.08 * top, 1.5 * top)
    ax.set_xlabel("lambda: reactant (0) -> product (1) in CV space")
    ax.set_ylabel("F (kJ/mol)")
    ax.legend(fontsize=8)
    return save_figure(fig, path, title)


def figure_title(config, channel: str, reaction: str | None, arms: list[str]) -> str:
    """Which channel, reaction, arms, models, temperature, bias factor and how many runs."""
    c = conditions(config, channel)
    return (f"{config.name}: channel {channel}" + (f" ({reaction})" if reaction else "")
            + f"; {', '.join(arms)}; models at {c['budget']} labels (arm seed 0); {c['temperature_K']:g} K,"
            f" biasfactor {c['biasfactor']:g}, {c['simulated_ps']:g} ps; {c['runs']} run{'s' * (c['runs'] > 1)} per arm")


def add_metad(results: dict, config, metad: dict, out: Path) -> None:
    """Put the metadynamics (``metad``: (arm, channel, run) -> run summary) into ``results``: per
    arm ``metad_by_channel`` (:func:`metad_results`), ``metad`` (the run summary, as before) for a
    single channel run once, and ``results['metad']``: per channel the run conditions, the reaction,
    the reference and the figure (``out/metad_<channel>.png``, :func:`plot_channel`)."""
    from ffpt.systems.h2combustion import load_channels

    by_arm = metad_results(config, metad)
    legacy = config.metad.channel is not None and config.metad.runs == 1
    for arm, channels in by_arm.items():
        results["arms"][arm]["metad_by_channel"] = channels
        if legacy:
            summary = dict(channels[config.metad.channel]["runs"][0])
            for k in ("run", "seed", "stage"):
                summary.pop(k, None)
            results["arms"][arm]["metad"] = summary
    known = load_channels(config.metad.reactions)
    entry = {"channels": {}}
    for channel in config.metad.channel_list:
        per_arm = {arm: channels[channel] for arm, channels in by_arm.items() if channel in channels}
        if not per_arm:
            continue
        reaction = known[channel].reaction if channel in known else None
        first = next(iter(per_arm.values()))["summary"]
        path = plot_channel(channel, per_arm, out / f"metad_{channel}.png",
                            figure_title(config, channel, reaction, list(per_arm)))
        entry["channels"][channel] = {**conditions(config, channel), "reaction": reaction,
                                      "tests": arm_tests(config, per_arm),
                                      "reference_barrier_kj_mol": first["reference_barrier_kj_mol"],
                                      "reference_reaction_energy_kj_mol": first["reference_reaction_energy_kj_mol"],
                                      "figure": None if path is None else path.name}
    results["metad"] = entry


def _pm(s: dict) -> str:
    if s["mean"] is None:
        return "n/a"
    return f"{s['mean']:.1f}" + (f" ± {s['std']:.1f}" if s["std"] is not None else "")


def _ci(s: dict) -> str:
    return "n/a" if s["ci95"] is None else f"[{s['ci95'][0]:.1f}, {s['ci95'][1]:.1f}]"


def _num(x) -> str:
    return "n/a" if x is None else f"{x:.1f}"


def _p(p) -> str:
    return "n/a (too few runs)" if p is None else f"{p:.2g}"


def markdown(results: dict) -> list[str]:
    """report.md's metadynamics section: per channel the conditions, the reference and a table of
    every arm (kJ/mol)."""
    entry = results.get("metad")
    if not entry:
        return []
    lines = []
    for channel, info in entry["channels"].items():
        c = info
        lines += ["", f"## Metadynamics: channel {channel}" + (f" ({info['reaction']})" if info["reaction"] else ""), "",
                  f"{c['runs']} independent run{'s' * (c['runs'] > 1)} per arm (MD seeds {c['seeds']}) from the TS with "
                  f"each arm's model at {c['budget']} labels (arm seed 0); well-tempered, {c['temperature_K']:g} K, "
                  f"bias factor {c['biasfactor']:g}, hills {c['height_kj_mol']:g} kJ/mol every {c['pace']} steps, "
                  f"{c['steps']} × {c['timestep_fs']:g} fs ({c['simulated_ps']:g} ps). A run is converged when the RMS "
                  f"change of its FES over the last 1/{c['fes_estimates']} of the run (aligned by the mean, where the "
                  f"FES is below the top of the visited region) is at most {c['fes_tolerance_kj_mol']:g} kJ/mol.",
                  "",
                  f"Reference (the data set's stationary points, wB97X-V/cc-pVTZ electronic energies, no zero-point or "
                  f"thermal terms): barrier {_num(info['reference_barrier_kj_mol'])} kJ/mol, reaction energy "
                  f"{_num(info['reference_reaction_energy_kj_mol'])} kJ/mol.", "",
                  "| arm | runs | FES barrier (mean ± sd) | 95 % interval | FES reaction free energy (mean ± sd) |"
                  " 95 % interval | model static barrier | model static reaction energy | converged |"
                  " ending in unphysical species | stopped by a monitor | outcomes |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for arm, a in results["arms"].items():
            s = a.get("metad_by_channel", {}).get(channel, {}).get("summary")
            if s is None:
                continue
            ends, converged = ("n/a" if s[k] is None else str(s[k]) for k in ("n_ending_unphysical", "n_converged"))
            outcomes = ", ".join(f"{k} {n}" for k, n in s["outcomes"].items())
            lines.append(f"| {arm} | {s['n_runs']} | {_pm(s['barrier_kj_mol'])} | {_ci(s['barrier_kj_mol'])} |"
                         f" {_pm(s['reaction_free_energy_kj_mol'])} | {_ci(s['reaction_free_energy_kj_mol'])} |"
                         f" {_num(s['model_barrier_kj_mol'])} | {_num(s['model_reaction_energy_kj_mol'])} |"
                         f" {converged}/{s['n_runs']} | {ends}/{s['n_runs']} | {s['n_stopped']}/{s['n_runs']} |"
                         f" {outcomes} |")
        for t in info.get("tests", []):
            lines.append(f"- {t['arms'][0]} against {t['arms'][1]}: barrier difference "
                         f"{_num(t['barrier_difference_kj_mol'])} kJ/mol, Welch's t-test p = {_p(t['barrier_welch_p'])}; "
                         f"runs ending in unphysical species, Fisher's exact test p = {_p(t['unphysical_fisher_p'])}.")
        lines += ["", "kJ/mol. FES barrier: the lowest saddle between the reactant's and the product's CV points of "
                      "each run's final FES, above the reactant's basin; reaction free energy: product basin minus "
                      "reactant basin (free energies at the run's temperature along the channel's two CVs, so not the "
                      "same quantity as the static energy differences). Intervals: Student t over runs."]
        if info["figure"]:
            lines += ["", f"![channel {channel}]({info['figure']})"]
    return lines

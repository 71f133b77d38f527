"""Survival statistics against scipy and by hand; the experiment's stability at every budget and arm
seed, pooled, with 95 % intervals and the log-rank test in results.json."""

import json
from functools import partial

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from scipy.stats import CensoredData, chi2, ecdf
from scipy.stats import logrank as scipy_logrank

from ffpt.analysis.survival import logrank, plot_survival, survival_curve

# hand-made runs (fs): failures, and runs stable until they stopped (right-censored)
A_FAILED = [120.0, 300.0, 300.0, 450.0, 800.0]
A_STABLE = [200.0, 1000.0, 1000.0]
B_FAILED = [700.0, 950.0]
B_STABLE = [500.0, 1000.0, 1000.0, 1000.0, 1000.0, 1000.0]


def curve_of(failed, stable):
    return survival_curve(failed + stable, [True] * len(failed) + [False] * len(stable))


def test_band_and_fraction_equal_scipy_and_greenwood_by_hand():
    curve = curve_of(A_FAILED, A_STABLE)
    sf = ecdf(CensoredData(uncensored=A_FAILED, right=A_STABLE)).sf
    band = sf.confidence_interval(0.95, method="log-log")
    for t in (100.0, 150.0, 250.0, 350.0, 500.0, 900.0):
        assert curve.at(t) == pytest.approx(sf.evaluate(t))
        low, high = curve.band_at(t)
        assert low == pytest.approx(band.low.evaluate(t)) and high == pytest.approx(band.high.evaluate(t))
    # by hand at 350 fs: at risk 8 (1 failure), 6 after the censored 200 (2 failures), so S = 7/8 * 4/6;
    # Greenwood var(log S) = 1/(8*7) + 2/(6*4); log-log band exp(-exp(log(-log S) +- z sqrt(v)/|log S|))
    s = 7 / 8 * 4 / 6
    v = 1 / (8 * 7) + 2 / (6 * 4)
    z = 1.959963984540054
    half = z * np.sqrt(v) / abs(np.log(s))
    expected = (s ** np.exp(half), s ** np.exp(-half))
    assert curve.at(350.0) == pytest.approx(s)
    assert curve.band_at(350.0) == pytest.approx(expected)
    assert curve.n_runs == 8 and curve.n_failed == 5 and curve.median_fs == 450.0
    # the stable runs stopped at different times: the end fraction's interval is the band at the end
    assert curve.ci95_method.startswith("kaplan-meier")
    assert curve.stable_fraction_ci95 == pytest.approx((band.low.probabilities[-1], band.high.probabilities[-1]))


def test_all_stable_batch_gets_the_exact_binomial_interval():
    """n runs, all stable to the end: Clopper-Pearson lower bound (alpha/2)^(1/n); none stable: upper 1-(alpha/2)^(1/n)."""
    stable = survival_curve([1000.0] * 8, [False] * 8)
    assert stable.stable_fraction == 1.0 and stable.ci95_method == "clopper-pearson"
    assert stable.stable_fraction_ci95 == pytest.approx((0.025 ** (1 / 8), 1.0))
    failed = survival_curve([100.0 * k for k in range(1, 9)], [True] * 8)
    assert failed.stable_fraction == 0.0
    assert failed.stable_fraction_ci95 == pytest.approx((0.0, 1 - 0.025 ** (1 / 8)))
    assert failed.band_at(900.0) == (0.0, 0.0)  # the band where nothing is left is the point, not NaN
    assert np.all(np.isfinite(failed.lower)) and np.all(np.isfinite(failed.upper))


def test_logrank_equals_scipy_and_the_chi_square_by_hand():
    a, b = curve_of(A_FAILED, A_STABLE), curve_of(B_FAILED, B_STABLE)
    test = logrank(a, b)
    reference = scipy_logrank(CensoredData(uncensored=A_FAILED, right=A_STABLE),
                              CensoredData(uncensored=B_FAILED, right=B_STABLE))
    assert test.pvalue == pytest.approx(reference.pvalue) and test.statistic == pytest.approx(reference.statistic)
    # by hand: at each failure time, observed minus expected failures of A and its hypergeometric variance
    times_a, failed_a = np.array(A_FAILED + A_STABLE), np.array([1] * 5 + [0] * 3)
    times_b, failed_b = np.array(B_FAILED + B_STABLE), np.array([1] * 2 + [0] * 6)
    o_minus_e = var = 0.0
    for t in np.unique(np.concatenate([times_a[failed_a == 1], times_b[failed_b == 1]])):
        n_a, n_b = (times_a >= t).sum(), (times_b >= t).sum()
        d_a = ((times_a == t) & (failed_a == 1)).sum()
        d = d_a + ((times_b == t) & (failed_b == 1)).sum()
        n = n_a + n_b
        o_minus_e += d_a - d * n_a / n
        var += d * (n_a / n) * (n_b / n) * (n - d) / (n - 1)
    assert test.pvalue == pytest.approx(chi2.sf(o_minus_e**2 / var, 1))
    assert o_minus_e > 0 and 0.04 < test.pvalue < 0.06  # A fails more than expected; borderline at 8 runs each
    none = logrank(survival_curve([10.0, 10.0], [False, False]), survival_curve([10.0], [False]))
    assert (none.statistic, none.pvalue, none.note) == (0.0, 1.0, "no run failed in either group")


def test_survival_plot_with_bands_and_censoring_marks(tmp_path):
    a, b = curve_of(A_FAILED, A_STABLE), curve_of(B_FAILED, B_STABLE)
    path = plot_survival({"ffpt-ft": b, "scratch": a}, tmp_path / "s.png", "toy", "500 K Langevin, 0.5 fs")
    assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 5000
    again = survival_curve(**{"times_fs": a.as_dict()["durations_fs"], "failed": a.as_dict()["failed"]})
    assert np.array_equal(again.lower, a.lower)


# ----------------------------------------------------------------- the experiment's stability stages


class Spring(Calculator):
    """H2 on a spring of rest length ``r0`` (A): E = k (|d| - r0)^2 (eV, k in eV/A^2). r0 = 0 collapses it."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, r0: float, k: float):
        super().__init__()
        self.r0, self.k = r0, k

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        d = self.atoms.positions[1] - self.atoms.positions[0]
        r = np.linalg.norm(d)
        f = 2 * self.k * (r - self.r0) * d / r
        self.results = {"energy": float(self.k * (r - self.r0) ** 2), "forces": np.array([f, -f])}


def spring_spec(model_path: str):
    """Stands in for each arm's model: 'ffpt-ft' models hold the bond, 'scratch' ones collapse."""
    return partial(Spring, 0.74, 30.0) if "ffpt-ft" in model_path else partial(Spring, 0.0, 10.0)


TINY = {
    "name": "tiny dimer",
    "seeds": [{"smiles": "[H][H]", "name": "h2"}],
    "abinitio": {"teacher": "gfn2"},
    "budgets": [4, 8],
    "arm_seeds": 2,
    "stability": {"n_runs": 2, "md": {"steps": 120, "timestep_fs": 0.25, "temperature_K": 1000.0,
                                     "ensemble": "langevin", "friction_per_fs": 0.05, "check_every": 1,
                                     "save_every": 100, "monitors": {"min_distance": 0.5}}},
}


def test_experiment_results_hold_intervals_and_logrank_at_every_budget(tmp_path, monkeypatch):
    """Stability runs for every budget and arm seed (models and data faked, MD real), pooled per arm."""
    import ase.io

    import ffpt.jobs.md
    from ffpt.execution import InlineExecutor
    from ffpt.workflows import experiment
    from ffpt.workflows.config import ExperimentConfig

    ase.io.write(tmp_path / "h2.xyz", Atoms("H2", positions=[[0, 0, 0], [0.74, 0, 0]]))
    config = ExperimentConfig.model_validate({**TINY, "stability": {**TINY["stability"],
                                                                    "structure": str(tmp_path / "h2.xyz")}})
    monkeypatch.setattr(experiment, "ff_sampling", lambda *a, **k: {"frames": "ff.extxyz", "n_frames": 10})
    monkeypatch.setattr(experiment, "abinitio_data", lambda *a, **k: {"n_test": 2})
    monkeypatch.setattr(experiment, "train_stage", lambda config, folder, *a, **k: {"model": str(folder / "m.pt")})
    monkeypatch.setattr(experiment, "arm_stage", lambda config, folder, *a, **k: {"model": str(folder / "m.pt")})
    rows = [{"arm": arm, "budget": b, "seed": s, "forces_mae_mev_per_a": 100.0 / b + s,
             "energy_mae_mev_per_atom": 5.0 + s, "forces_mae_kcal_per_mol_per_a": 2.0}
            for arm in experiment.ARMS for b in (4, 8) for s in (0, 1)]
    monkeypatch.setattr(experiment, "evaluate_stage", lambda *a, **k: {"rows": rows})
    monkeypatch.setattr(ffpt.jobs.md, "CalculatorSpec", spring_spec)
    out = tmp_path / "run"
    results = experiment.run_experiment(config, out, progress=False, executor=InlineExecutor())
    for arm in experiment.ARMS:
        for budget in (4, 8):
            for seed, md_seeds in ((0, (0, 1)), (1, (2, 3))):  # each model its own MD seeds
                folder = out / f"stability_{arm}_n{budget}_s{seed}"
                assert (folder / "stage.json").exists()
                assert all((folder / f"seed_{m}" / "stability.json").exists() for m in md_seeds)
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["stability"]) == {"4", "8"}
    for budget, entry in saved["stability"].items():
        ft, scratch = entry["arms"]["ffpt-ft"], entry["arms"]["scratch"]
        assert ft["n_runs"] == scratch["n_runs"] == 4  # 2 runs x 2 arm seeds, pooled
        assert ft["stable_fraction"] == 1.0 and scratch["stable_fraction"] == 0.0
        assert ft["stable_fraction_ci95"] == pytest.approx([0.025 ** (1 / 4), 1.0])
        assert scratch["stable_fraction_ci95"] == pytest.approx([0.0, 1 - 0.025 ** (1 / 4)])
        assert scratch["median_time_to_failure_fs"] > 0 and ft["median_time_to_failure_fs"] is None
        # the log-rank p of the pooled runs, recomputed from the runs' own stability.json files
        runs = {arm: [json.loads(p.read_text()) for p in sorted(out.glob(f"stability_{arm}_n{budget}_s*/seed_*/stability.json"))]
                for arm in experiment.ARMS}
        data = {arm: CensoredData(uncensored=[r["simulated_fs"] for r in rs if not r["stable"]],
                                  right=[r["simulated_fs"] for r in rs if r["stable"]]) for arm, rs in runs.items()}
        reference = scipy_logrank(data["ffpt-ft"], data["scratch"])
        assert entry["logrank"]["pvalue"] == pytest.approx(reference.pvalue) and reference.pvalue < 0.05
        assert entry["logrank"]["statistic"] == pytest.approx(reference.statistic)
        assert saved["arms"]["scratch"]["by_budget"][budget]["stable_fraction_ci95"] == scratch["stable_fraction_ci95"]
        assert (out / f"survival_n{budget}.png").stat().st_size > 5000
    assert saved["arms"]["ffpt-ft"]["stable_fraction_ci95"] == pytest.approx([0.025 ** (1 / 4), 1.0])
    assert results["stability"][8]["logrank"]["pvalue"] == saved["stability"]["8"]["logrank"]["pvalue"]
    report = (out / "report.md").read_text()
    assert "## MD stability at 4 labels" in report and "Log-rank test (ffpt-ft vs scratch)" in report
    assert "survival_n8.png" in report and "1000 K Langevin" in report


def test_stability_budgets_must_be_budgets():
    from ffpt.workflows.config import ExperimentConfig

    only = ExperimentConfig.model_validate({**TINY, "stability": {**TINY["stability"], "budgets": [8]}})
    assert only.stability_budgets == [8]
    assert ExperimentConfig.model_validate(TINY).stability_budgets == [4, 8]
    with pytest.raises(ValueError, match=r"stability.budgets \[5\] are not among budgets \[4, 8\]"):
        ExperimentConfig.model_validate({**TINY, "stability": {**TINY["stability"], "budgets": [5]}})

"""Experiment metadynamics: independent runs per arm and channel as cached stages, the cross-run
summary (barrier and reaction free energy with their spread, reference and static model values,
convergence, unphysical products) in results.json and report.md; the single-run layout of earlier
versions keeps its stage."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
from ase import Atoms
from scipy import stats

from ffpt import keys, teachers
from ffpt.config import ConfigError, parse_config
from ffpt.systems.h2combustion import write_npz
from ffpt.units import KCAL_PER_MOL, KJ_PER_MOL
from ffpt.workflows.config import Arm, ExperimentConfig
from ffpt.workflows.experiment import run_experiment
from ffpt.workflows.metad_summary import aligned_profile, arm_tests, channel_summary, plot_channel, spread

KJ_PER_KCAL = KCAL_PER_MOL / KJ_PER_MOL
CHANNEL_09 = {"reaction": "HO2 -> H + O2", "multiplicity": 2, "natoms": 3, "cv": [["O1_H1"], ["O2_H1"]],
              "r0": [0.96, 1.84]}
# hand-made HO2 (A) with energies (Eh) in the comment line, as the data set's geometry files
HO2 = {"reactant": ([[0.0, 0.0, 0.0], [1.30, 0.0, 0.0], [-0.30, 0.92, 0.0]], -150.9000),
       "TS": ([[0.0, 0.0, 0.0], [1.25, 0.0, 0.0], [-0.75, 1.45, 0.0]], -150.8400),
       "product": ([[0.0, 0.0, 0.0], [1.21, 0.0, 0.0], [-1.40, 2.30, 0.0]], -150.8500)}


@pytest.fixture(scope="module")
def channel_root(tmp_path_factory):
    """Channel 09 of the data set in its formats: reactions.json, the three stationary points and
    UFF-labelled npz frames around them."""
    root = tmp_path_factory.mktemp("h2c")
    (root / "geometries").mkdir()
    (root / "npz").mkdir()
    (root / "reactions.json").write_text(json.dumps({"09": CHANNEL_09}))
    uff, rng, frames = teachers.get("uff"), np.random.default_rng(0), []
    for kind, (positions, energy) in HO2.items():
        body = "\n".join(f"{s} {x:.4f} {y:.4f} {z:.4f}" for s, (x, y, z) in zip("OOH", positions))
        (root / "geometries" / f"{kind}_09.xyz").write_text(f"3\nStep 0 E= {energy:.6f} |G|= 0.0\n{body}\n")
        for _ in range(6):
            atoms = Atoms("OOH", positions=np.asarray(positions) + rng.normal(0, 0.04, (3, 3)))
            label = uff.label(atoms)
            atoms.info.update({keys.CHANNEL: "09", keys.ENERGY: label.energy})
            atoms.arrays[keys.FORCES] = label.forces
            frames.append(atoms)
    write_npz(root / "npz" / "09_aimd.npz", frames)
    return root


def _values(root, **metad):
    return {
        "name": "toy metadynamics",
        "seeds": [{"combustion": str(root), "kinds": ["reactant", "TS", "product"]}],
        "pretraining": {"teacher": "uff", "md": None, "normal_modes": None, "random": {"sigmas": [0.05], "frames": 4}},
        "abinitio": {"h2combustion": {"root": str(root / "npz"), "methods": ["aimd"]}, "n_test": 4, "n_valid": 2},
        "budgets": [6],
        "model": {"n_features": 8, "n_layers": 1, "n_basis": 4, "cutoff": 4.0, "options": {"spin_states": 4}},
        "pretrain": {"max_epochs": 1, "batch_size": 8, "progress_bar": False},
        "finetune": {"max_epochs": 1, "batch_size": 4, "progress_bar": False},
        "metad": {"geometries": str(root / "geometries"), "reactions": str(root / "reactions.json"),
                  "options": {"steps": 40, "pace": 10, "timestep_fs": 0.5, "temperature_K": 500.0, "colvar_stride": 5,
                              "trajectory_stride": 10, "checkpoint_every": 20, "fes_bins": 31,
                              "upper_walls": [{"pair": "O1_H1", "at": 3.0}, {"pair": "O2_H1", "at": 3.0}]},
                  **metad},
    }


def test_channel_or_channels_and_the_budget_are_checked(channel_root):
    config = parse_config(ExperimentConfig, _values(channel_root, channel=9), source="toy.yaml")
    assert config.metad.channel_list == ["09"] and config.metad.runs == 1  # YAML's 09 read as a number
    for metad, message in (({}, "exactly one of channel, channels"),
                           ({"channel": "09", "channels": ["09"]}, "exactly one of channel, channels"),
                           ({"channels": ["09", "09"]}, "each channel once"),
                           ({"channels": ["09"], "budget": 7}, "metad.budget 7 is not one of budgets"),
                           ({"channels": ["09"], "runs": 0}, "runs")):
        with pytest.raises(ConfigError, match=message):
            parse_config(ExperimentConfig, _values(channel_root, **metad), source="toy.yaml")
    job = parse_config(ExperimentConfig, _values(channel_root, channels=["09"], runs=3,
                                                 options={"seed": 5}), source="toy.yaml").metad
    assert [job.job_config("m.pt", "09", k).seed for k in range(3)] == [5, 6, 7]
    walls = [{"pair": "O1_O2", "at": 1.6}]
    job = parse_config(ExperimentConfig, _values(channel_root, channels=["09"], channel_options={9: {
        "upper_walls": walls, "temperature_K": 800.0}}), source="toy.yaml").metad
    config = job.job_config("m.pt", "09")  # the channel's keys replace those of options, the others stay
    assert config.temperature_K == 800.0 and [w.pair for w in config.upper_walls] == ["O1_O2"] and config.steps == 40
    for over, message in (({"01": {"steps": 5}}, r"channel_options \['01'\]: not among the channels"),
                          ({"09": {"structure": "x.xyz"}}, r"channel_options.09: \['structure'\] are set by the stage")):
        with pytest.raises(ConfigError, match=message):
            parse_config(ExperimentConfig, _values(channel_root, channels=["09"], channel_options=over), source="toy.yaml")


@pytest.mark.parametrize("metad, message", [
    ({"channels": ["09", "02"]}, r"key 'metad' \(channel 02\): .*TS_02.xyz"),
    ({"channel": "09", "channel_options": {"09": {"upper_walls": [{"pair": "O3_H1", "at": 3.0}]}}},
     r"key 'metad' \(channel 09\): .*O3"),
])
def test_a_bad_channel_or_wall_is_refused_before_any_stage(channel_root, tmp_path, metad, message):
    config = parse_config(ExperimentConfig, _values(channel_root, **metad), source="toy.yaml")
    with pytest.raises(ConfigError, match=message):
        run_experiment(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "ff_sampling").exists()


def test_runs_are_stages_and_results_compare_them(channel_root, tmp_path):
    """Two runs of each arm on channel 09: one stage each, different MD seeds (different hills), the
    per-arm summary in results.json and report.md, the channel's figure; then the single-run layout
    of earlier versions in the same folder: stage ``metad_<arm>`` with the inputs it always had."""
    config = parse_config(ExperimentConfig, _values(channel_root, channels=["09"], runs=2), source="toy.yaml")
    out = tmp_path / "run"
    results = run_experiment(config, out, progress=False)
    for arm in ("ffpt-ft", "scratch"):
        hills = [(out / "metad" / arm / "09" / f"run{k}" / "HILLS").read_text() for k in range(2)]
        assert all((out / "metad" / arm / "09" / f"run{k}" / "stage.json").exists() for k in range(2))
        assert hills[0] != hills[1]  # independent: seeds 0 and 1
        entry = results["arms"][arm]["metad_by_channel"]["09"]
        assert [r["seed"] for r in entry["runs"]] == [0, 1] and entry["runs"][1]["stage"] == f"metad/{arm}/09/run1"
        s = entry["summary"]
        assert s["n_runs"] == 2 and s["tolerance_kj_mol"] == [2.0]
        assert s["n_converged"] == sum(r["fes_convergence"]["converged"] for r in entry["runs"])
        assert s["reference_barrier_kj_mol"] == pytest.approx(0.06 * 627.5095 * KJ_PER_KCAL, rel=1e-4)
        assert s["reference_reaction_energy_kj_mol"] == pytest.approx(0.05 * 627.5095 * KJ_PER_KCAL, rel=1e-4)
        assert s["model_barrier_kj_mol"] == pytest.approx(
            entry["runs"][0]["barriers"]["model_barrier_kcal_per_mol"] * KJ_PER_KCAL)
        assert s["n_ending_unphysical"] == sum(r["ends_unphysical"] for r in entry["runs"])
        assert "metad" not in results["arms"][arm]  # the single-run key belongs to the single-run layout
    assert results["metad"]["channels"]["09"]["runs"] == 2 and results["metad"]["channels"]["09"]["figure"] == "metad_09.png"
    assert [t["arms"] for t in results["metad"]["channels"]["09"]["tests"]] == [["ffpt-ft", "scratch"]]
    assert (out / "metad_09.png").read_bytes()[:4] == b"\x89PNG"
    report = (out / "report.md").read_text()
    assert "## Metadynamics: channel 09 (HO2 -> H + O2)" in report and "| ffpt-ft | 2 |" in report
    assert json.loads((out / "results.json").read_text())["metad"]["channels"]["09"]["temperature_K"] == 500.0

    single = parse_config(ExperimentConfig, _values(channel_root, channel="09"), source="toy.yaml")
    results = run_experiment(single, out, progress=False)
    recorded = json.loads((out / "metad_ffpt-ft" / "inputs.json").read_text())["inputs"]
    model = str(out / "ffpt-ft_n6_s0" / "model" / "model.pt")
    assert recorded == {"model": model, "metad": {"channel": "09", "geometries": str(channel_root / "geometries"),
                                                  "reactions": str(channel_root / "reactions.json"),
                                                  "options": _values(channel_root)["metad"]["options"]}}
    assert results["arms"]["ffpt-ft"]["metad"]["hills"] == 5  # the run summary under 'metad', as before
    assert results["arms"]["ffpt-ft"]["metad_by_channel"]["09"]["summary"]["n_runs"] == 1


def _run(barrier, reverse, converged=True, ends=False, stable=True, outcome="reactants"):
    return {"barriers": {"fes_barrier_kcal_per_mol": barrier, "fes_reverse_barrier_kcal_per_mol": reverse,
                         "reference_barrier_kcal_per_mol": 10.0, "reference_reverse_barrier_kcal_per_mol": 4.0,
                         "model_barrier_kcal_per_mol": 8.0, "model_reverse_barrier_kcal_per_mol": 5.0},
            "fes_convergence": {"tolerance_kj_mol": 2.0, "rms_change_kj_mol": [3.0, 1.0 if converged else 2.5],
                                "converged": converged},
            "ends_unphysical": ends, "unphysical_frames": 3 if ends else 0, "stability": {"stable": stable},
            "outcome": outcome}


def test_channel_summary_of_hand_made_runs():
    """Barriers 10, 12, 14 kcal/mol, reverse 6, 6, 9: mean and t interval by hand, reaction free
    energy = forward - reverse, static values as E(TS) - E(R) and E(P) - E(R), counts."""
    runs = [_run(10.0, 6.0), _run(12.0, 6.0, converged=False, ends=True, outcome="other"),
            _run(14.0, 9.0, stable=False, outcome="products")]
    s = channel_summary(runs)
    b = s["barrier_kj_mol"]
    assert b["values"] == pytest.approx([10 * KJ_PER_KCAL, 12 * KJ_PER_KCAL, 14 * KJ_PER_KCAL])
    assert b["mean"] == pytest.approx(12 * KJ_PER_KCAL) and b["std"] == pytest.approx(2 * KJ_PER_KCAL)
    half = 4.302652729911275 * 2 * KJ_PER_KCAL / np.sqrt(3)  # t(0.975, 2 degrees of freedom)
    assert b["ci95"] == pytest.approx([12 * KJ_PER_KCAL - half, 12 * KJ_PER_KCAL + half])
    assert s["reaction_free_energy_kj_mol"]["values"] == pytest.approx([4 * KJ_PER_KCAL, 6 * KJ_PER_KCAL, 5 * KJ_PER_KCAL])
    assert s["reference_barrier_kj_mol"] == pytest.approx(10 * KJ_PER_KCAL)
    assert s["reference_reaction_energy_kj_mol"] == pytest.approx(6 * KJ_PER_KCAL)
    assert s["model_reaction_energy_kj_mol"] == pytest.approx(3 * KJ_PER_KCAL)
    assert (s["n_converged"], s["fraction_converged"], s["n_ending_unphysical"], s["n_with_unphysical_frames"],
            s["n_stopped"]) == (2, pytest.approx(2 / 3), 1, 1, 1)
    assert s["outcomes"] == {"other": 1, "products": 1, "reactants": 1}
    no_path = {**_run(1, 1), "barriers": {**_run(1, 1)["barriers"], "fes_barrier_kcal_per_mol": None,
                                          "fes_reverse_barrier_kcal_per_mol": None}}
    assert channel_summary([no_path, _run(10.0, 6.0)])["barrier_kj_mol"]["n"] == 1  # a run without a path: left out
    assert spread([3.0]) == {"values": [3.0], "n": 1, "mean": 3.0, "std": None, "ci95": None}
    earlier = {k: v for k, v in _run(10.0, 6.0).items() if k not in ("fes_convergence", "ends_unphysical")}
    s = channel_summary([earlier])  # a cached run of an earlier version: not judged, not counted as fine
    assert (s["n_converged"], s["fraction_converged"], s["n_ending_unphysical"]) == (None, None, None)


def test_arms_are_compared_by_welch_and_fisher():
    """FFPT-FT barriers 10, 11, 12 kcal/mol against scratch 20, 22, 24: Welch's p as scipy's from the
    values; all three scratch runs end unphysical, none of FFPT-FT's: Fisher's p = 0.1 (one of
    C(6, 3) = 20 tables, both tails); fewer than two runs give no barrier test."""
    config = SimpleNamespace(arms=[Arm("ffpt-ft", "newtonnet", "ffpt-ft"), Arm("scratch", "newtonnet", "scratch")])
    ft = {"summary": channel_summary([_run(b, 1.0) for b in (10.0, 11.0, 12.0)])}
    scratch = {"summary": channel_summary([_run(b, 1.0, ends=True) for b in (20.0, 22.0, 24.0)])}
    (test,) = arm_tests(config, {"ffpt-ft": ft, "scratch": scratch})
    welch = stats.ttest_ind(np.array([10, 11, 12]) * KJ_PER_KCAL, np.array([20, 22, 24]) * KJ_PER_KCAL, equal_var=False)
    assert test["arms"] == ["ffpt-ft", "scratch"] and test["barrier_welch_p"] == pytest.approx(welch.pvalue)
    assert test["barrier_difference_kj_mol"] == pytest.approx(-11 * KJ_PER_KCAL)
    assert test["unphysical_fisher_p"] == pytest.approx(0.1)
    one = {"summary": channel_summary([_run(10.0, 1.0)])}
    assert arm_tests(config, {"ffpt-ft": one, "scratch": scratch})[0]["barrier_welch_p"] is None
    assert arm_tests(config, {"ffpt-ft": ft}) == []  # no scratch arm ran: nothing to compare


def test_profiles_are_aligned_at_the_reactant_and_drawn_per_arm(tmp_path):
    """An exergonic profile (product 10 kJ/mol below the reactant, about 70 kJ/mol of barrier between)
    comes out with the reactant's basin at zero, the product at -10 and the TS at 70; the figure is
    written, and none without a profile."""
    lam = np.linspace(-0.5, 1.5, 41)
    f = 40 + 30 * np.exp(-((lam - 0.5) / 0.15) ** 2) - 40 * np.exp(-(lam / 0.2) ** 2) - 50 * np.exp(-((lam - 1) / 0.2) ** 2)
    f -= f.min()
    run = {**_run(7.0, 9.0), "stability": {"stable": True}}
    run["barriers"]["profile"] = {"lambda": lam.tolist(), "free_energy_kj_mol": [None, *f[1:].tolist()],
                                  "ts_lambda": 0.5, "temperature_K": 1000.0}
    x, aligned = aligned_profile(run)
    assert np.isnan(aligned[0]) and np.nanmin(aligned[x <= 0.5]) == 0.0
    assert aligned[np.argmin(np.abs(x - 1))] == pytest.approx(-10, abs=0.5)
    assert aligned[np.argmin(np.abs(x - 0.5))] == pytest.approx(30 + 40 * (1 - np.exp(-6.25)), abs=0.5)
    assert aligned_profile(_run(7.0, 9.0)) is None
    entry = {"runs": [run, run], "summary": channel_summary([run, run])}
    path = plot_channel("09", {"ffpt-ft": entry, "scratch": entry}, tmp_path / "metad_09.png", "title")
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert plot_channel("09", {"ffpt-ft": {"runs": [_run(7.0, 9.0)], "summary": entry["summary"]}},
                        tmp_path / "none.png", "title") is None and not (tmp_path / "none.png").exists()

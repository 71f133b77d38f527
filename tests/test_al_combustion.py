"""Reactive active learning from every combustion channel's TS: starts in each channel's spin state,
the species the picks hold, labels to a stable fraction, and an experiment that compares both arms'
stability and held-out test errors before and after active learning."""

import json

import pytest
from ase import Atoms

from ffpt.config import ConfigError, parse_config
from ffpt.data.io import read_structure
from ffpt.workflows.active_learning import ExploreConfig, picked_summary
from ffpt.workflows.al_report import first_at_target, picks_tables, to_stable_text
from ffpt.workflows.config import ExperimentConfig
from ffpt.workflows.experiment import run_experiment

from test_workflow_starts import combustion_root  # noqa: F401  (the three-channel stand-in data set)


def _starts(root, **over):
    return {"geometries": str(root / "geometries"), "reactions": str(root / "reactions.json"), **over}


def test_exploration_starts_carry_each_channel_spin(combustion_root, tmp_path):  # noqa: F811
    explore = parse_config(ExploreConfig, {"h2combustion": _starts(combustion_root, channels=["01", "12"]),
                                           "md": {"monitors": {"min_distance": 0.5}}}, source="al.yaml")
    starts = explore.starts(tmp_path)
    assert list(starts) == ["TS_01", "TS_12a"]  # "12" selects 12a
    spins = {name: read_structure(path, 0).info["spin"] for name, path in starts.items()}
    assert spins == {"TS_01": 4, "TS_12a": 2}  # quartet H + O2, doublet HO2 + O
    assert read_structure(starts["TS_12a"], 0).get_chemical_formula() == "HO3"
    # a start the collapse monitor already flags is refused, naming the exploration's key
    (tmp_path / "geo").mkdir()
    for name in ("TS_01", "TS_12a"):
        (tmp_path / "geo" / f"{name}.xyz").write_text((combustion_root / "geometries" / f"{name}.xyz").read_text())
    (tmp_path / "geo" / "TS_05.xyz").write_text("2\n0 1\nH 0 0 0\nH 0 0 0.4\n")
    bad = parse_config(ExploreConfig, {"h2combustion": {**_starts(combustion_root), "geometries": str(tmp_path / "geo")},
                                       "md": {"monitors": {"min_distance": 0.5}}}, source="al.yaml")
    with pytest.raises(ConfigError, match=r"TS_05.xyz: atoms 0 and 1 .*explore.md.monitors.min_distance"):
        bad.starts(tmp_path / "out")


@pytest.mark.parametrize("given, message", [
    ({}, "exactly one of structures, h2combustion"),
    ({"structures": ["a.xyz"], "h2combustion": "starts"}, "exactly one of structures, h2combustion"),
    ({"h2combustion": "starts", "metad": {"channel": "09", "reactions": "r.json"}}, "starts explore by MD"),
])
def test_exploration_takes_structures_or_combustion_starts(combustion_root, given, message):  # noqa: F811
    values = {k: (_starts(combustion_root) if v == "starts" else v) for k, v in given.items()}
    with pytest.raises(ConfigError, match=message):
        parse_config(ExploreConfig, values, source="al.yaml")


def test_picked_species_are_counted_per_frame_holding_them():
    """Hand-made picks: HO2 next to a far H atom, two OH radicals far apart, and a water molecule."""
    ho2_h = Atoms("HOOH", positions=[[0.0, 0.0, 0.0], [0.97, 0.0, 0.0], [1.4, 1.28, 0.0], [8.0, 0.0, 0.0]])
    two_oh = Atoms("OHOH", positions=[[0.0, 0.0, 0.0], [0.97, 0.0, 0.0], [6.0, 0.0, 0.0], [6.97, 0.0, 0.0]])
    water = Atoms("OHH", positions=[[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])
    for atoms, run in ((ho2_h, "TS_01_T1500_seed0"), (two_oh, "TS_01_T1500_seed1"), (water, "TS_12a_T1500_seed0")):
        atoms.info["al_run"] = run
    runs = [{"name": "TS_01_T1500_seed0", "start": "TS_01"}, {"name": "TS_01_T1500_seed1", "start": "TS_01"},
            {"name": "TS_12a_T1500_seed0"}]  # a run recorded before runs carried their start
    summary = picked_summary([ho2_h, two_oh, water], runs)
    assert summary["species"] == {"H": 1, "H2O": 1, "HO": 1, "HO2": 1}  # two OH in one frame count once
    assert summary["by_start"] == {"TS_01": 2, "TS_12a": 1}
    rounds = [{"round": 0, "picked": summary, "by_start": {"TS_01": {"n_runs": 2, "n_stable": 1}}},
              {"round": 1, "by_start": {"TS_01": {"n_runs": 2, "n_stable": 2}, "TS_12a": {"n_runs": 2, "n_stable": 0}}}]
    text = "\n".join(picks_tables(rounds))
    assert "| 0 | H 1, H2O 1, HO 1, HO2 1 | TS_01 2, TS_12a 1 |" in text
    assert "| 0 | 1/2 | – |" in text and "| 1 | 2/2 | 0/2 |" in text


def _round(r, labels, added, stable):
    return {"round": r, "n_labels": labels, "n_added": added, "stable_fraction": stable}


def test_labels_to_stable_is_the_first_round_at_the_target():
    rounds = [_round(0, 100, 0, 0.80), _round(1, 110, 10, 0.96), _round(2, 118, 18, 0.90)]
    assert first_at_target(rounds, 0.95) == {"round": 1, "n_labels": 110, "n_added": 10}
    assert to_stable_text({"rounds": rounds}, 0.95, 50) == "10 added (round 1, 110 in all)"
    assert first_at_target(rounds, 0.97) is None and first_at_target(rounds, None) is None
    assert to_stable_text({"rounds": rounds}, 0.97, 18) == "not reached within the budget of 18 labels"
    assert to_stable_text({"rounds": rounds}, 0.97, 50) == "not reached (18 added in 2 round(s))"  # rounds ran out
    assert to_stable_text({"rounds": rounds}, 0.97, None) == "not reached (18 added in 2 round(s))"
    assert first_at_target([_round(0, 100, 0, 1.0)], 0.95)["n_added"] == 0  # stable before any new label


def test_experiment_compares_stability_and_test_errors_before_and_after_active_learning(
        combustion_root, tmp_path):  # noqa: F811
    """Toy scale: two stand-in channels explored and tested for stability, channel 05 held out for the
    test errors; UFF stands in for PySCF (the stand-in's labels are UFF's)."""
    md = {"steps": 20, "timestep_fs": 0.25, "temperature_K": 1500.0, "ensemble": "langevin", "save_every": 5,
          "check_every": 5, "monitors": {"min_distance": 0.5, "allowed_species": ["H", "O", "H2", "O2", "HO", "HO2"],
                                         "species_patience_fs": 50.0}}
    starts = _starts(combustion_root, channels=["01", "12"])
    config = parse_config(ExperimentConfig, {
        "name": "toy combustion AL",
        "seeds": [{"combustion": str(combustion_root), "kinds": ["TS"]}],
        "pretraining": {"teacher": "uff", "md": None, "normal_modes": None, "random": {"sigmas": [0.05], "frames": 6}},
        "abinitio": {"h2combustion": {"root": str(combustion_root / "npz"), "methods": ["aimd"],
                                      "test_channels": ["05"]}, "n_test": 4, "n_valid": 2},
        "budgets": [6],
        "model": {"n_features": 8, "n_layers": 1, "n_basis": 4, "cutoff": 4.0, "options": {"spin_states": 4}},
        "pretrain": {"max_epochs": 1, "batch_size": 8, "progress_bar": False},
        "finetune": {"max_epochs": 1, "batch_size": 4, "progress_bar": False},
        "stability": {"n_runs": 1, "h2combustion": starts, "md": md},
        "active_learning": {
            "teacher": "uff", "committee": {"size": 2}, "rounds": 1,
            "explore": {"h2combustion": starts, "temperatures_K": [1500.0], "runs": 1,
                        "md": {k: v for k, v in md.items() if k != "temperature_K"}},
            "select": {"lower": 0.0, "upper": 1.0e6, "max_per_round": 2, "min_spacing_fs": 0.0},
            "stop": {"stable_fraction": None, "max_labels": 2}},
    }, source="toy.yaml")
    out = tmp_path / "run"
    results = run_experiment(config, out, progress=False)
    for arm in ("ffpt-ft+al", "scratch+al"):
        for start in ("TS_01", "TS_12a"):
            inputs = json.loads((out / "stability" / f"{arm}_s0" / start / "inputs.json").read_text())["inputs"]
            assert inputs["model"].endswith(f"al_{arm.split('+')[0]}/round_01_train/committee/committee.json")
        al = results["active_learning"][arm]
        assert al["starts"] == ["TS_01", "TS_12a"] and al["labels_added"] == 2 and al["label_budget"] == 2
        assert sum(al["picked_species"].values()) >= 2 and al["rounds"][0]["picked"]["by_start"]
        assert set(al["rounds"][0]["by_start"]) == {"TS_01", "TS_12a"}
        assert al["test_before"]["model"]["forces_mae_mev_per_a"] > 0 and al["test_after"]["n_frames"] == 4
        assert al["test_before"]["committee"]["n_frames"] == 4
        explored = out / f"al_{arm.split('+')[0]}" / "round_00_explore"
        assert read_structure(explored / "TS_01_T1500_seed0" / "trajectory.extxyz", 0).info["spin"] == 4  # quartet
        assert read_structure(explored / "TS_12a_T1500_seed0" / "trajectory.extxyz", 0).info["spin"] == 2
    saved = json.loads((out / "results.json").read_text())
    after = saved["active_learning_stability"]["after"]
    assert after["arms"]["ffpt-ft+al"]["n_runs"] == 2 and "pvalue" in after["logrank"]
    assert set(after["by_start"]) == {"TS_01", "TS_12a"}
    assert set(saved["active_learning_stability"]["before_vs_after"]) == {"ffpt-ft+al", "scratch+al"}
    assert len(after["arms"]["scratch+al"]["stable_fraction_ci95"]) == 2
    report = (out / "report.md").read_text()
    assert "### MD stability after active learning" in report and "| arm | model before |" in report
    assert "Species in the labelled picks" in report

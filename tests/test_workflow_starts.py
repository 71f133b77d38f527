"""Experiment stability from every combustion channel's stationary point: starts with their spin,
one cached stage per start, failures counted by kind, groups of channels compared on their own."""

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml
from ase import Atoms

from ffpt import keys, teachers
from ffpt.config import ConfigError, parse_config
from ffpt.systems.h2combustion import write_npz
from ffpt.workflows.config import ExperimentConfig
from ffpt.workflows.experiment import merge_start_batches, run_experiment, stability_starts, start_groups
from ffpt.workflows.report import stability_by_budget

REACTIONS = {
    "01": {"reaction": "H + O2 -> OH + O", "multiplicity": 4, "natoms": 3, "cv": [["O1_H1"], ["O1_O2"]], "r0": [0.97, 1.2]},
    "05": {"reaction": "H2 -> 2 H", "multiplicity": 1, "natoms": 2, "cv": [["H1_H2"], ["H1_H2"]], "r0": [0.74, 0.74]},
    "12a": {"reaction": "HO2 + O -> OH + O2 (doublet)", "multiplicity": 2, "natoms": 4,
            "cv": [["O1_H1"], ["H1_O3"]], "r0": [0.96, 0.96]},
}
GEOMETRIES = {
    "01": Atoms("HOO", positions=[[0, 0, 0], [1.35, 0, 0], [2.55, 0.1, 0]]),
    "05": Atoms("HH", positions=[[0, 0, 0], [1.2, 0, 0]]),
    "12a": Atoms("HOOO", positions=[[0, 0, 0], [0.97, 0, 0], [1.4, 1.3, 0], [-1.3, 0.2, 0.1]]),
}


@pytest.fixture(scope="module")
def combustion_root(tmp_path_factory):
    """A three-channel stand-in for the data set: TS geometries, reactions.json and UFF-labelled
    npz frames (energies relative to nothing in particular: only the format matters here)."""
    root = tmp_path_factory.mktemp("h2c")
    (root / "geometries").mkdir()
    (root / "npz").mkdir()
    (root / "reactions.json").write_text(json.dumps(REACTIONS))
    uff, rng = teachers.get("uff"), np.random.default_rng(0)
    for channel, atoms in GEOMETRIES.items():
        lines = [str(len(atoms)), "Step 0 E= -1.0"] + [f"{s} {x:.4f} {y:.4f} {z:.4f}" for s, (x, y, z)
                                                         in zip(atoms.get_chemical_symbols(), atoms.positions)]
        (root / "geometries" / f"TS_{channel}.xyz").write_text("\n".join(lines) + "\n")
        frames = []
        for _ in range(8):
            frame = atoms.copy()
            frame.positions += rng.normal(0, 0.05, frame.positions.shape)
            frame.info[keys.CHANNEL] = channel
            frames.append(_labelled(frame, uff))
        write_npz(root / "npz" / f"{channel}_aimd.npz", frames)
    return root


def _labelled(atoms, teacher):
    label = teacher.label(atoms)
    out = atoms.copy()
    out.info[keys.ENERGY] = label.energy
    out.arrays[keys.FORCES] = label.forces
    return out


def _config(root, **stability):
    return parse_config(ExperimentConfig, {
        "name": "toy combustion",
        "seeds": [{"combustion": str(root), "kinds": ["TS"]}],
        "abinitio": {"h2combustion": {"root": str(root / "npz"), "methods": ["aimd"]}, "n_test": 4, "n_valid": 2},
        "budgets": [6],
        "stability": {"n_runs": 2, "h2combustion": {"geometries": str(root / "geometries"),
                                                    "reactions": str(root / "reactions.json"), **stability},
                      "md": {"steps": 20, "timestep_fs": 0.25, "temperature_K": 1500.0, "ensemble": "langevin",
                             "save_every": 10, "check_every": 5,
                             "monitors": {"min_distance": 0.5, "allowed_species": ["H", "O", "H2", "O2", "HO"],
                                          "species_patience_fs": 50.0}}},
    }, source="toy.yaml")


def test_starts_carry_their_channel_spin_and_groups_match_channel_numbers(combustion_root):
    config = _config(combustion_root, channels=["01", "12"], groups={"tune": ["01"], "check": ["12"]})
    starts = stability_starts(config)
    assert list(starts) == ["TS_01", "TS_12a"]  # "12" selects 12a; 05 is not listed
    assert starts["TS_01"].info["spin"] == 4 and starts["TS_12a"].info["spin"] == 2
    assert start_groups(config, list(starts)) == {"tune": ["TS_01"], "check": ["TS_12a"]}
    assert list(stability_starts(_config(combustion_root))) == ["TS_01", "TS_05", "TS_12a"]  # default: all


@pytest.mark.parametrize("stability, message", [
    ({"channels": ["01", "07"]}, "stability.h2combustion.channels': ['07']"),
    ({"channels": ["01"], "groups": {"check": ["05"]}}, "stability.h2combustion.groups.check': ['05']"),
])
def test_bad_starts_name_the_key(combustion_root, stability, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        stability_starts(_config(combustion_root, **stability))


def test_a_start_already_collapsed_is_refused_naming_file_and_atoms(combustion_root, tmp_path):
    """Bond-scan end points (the data set's 'TS' of barrierless channels, e.g. H2 at 0.4 A) are
    inputs the collapse monitor flags before any step: refused, not counted as MD failures."""
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(combustion_root, root)
    (root / "geometries" / "TS_05.xyz").write_text("2\n0 1\nH 0 0 0\nH 0 0 0.4\n")
    with pytest.raises(ConfigError, match=r"TS_05.xyz: atoms 0 and 1 at 0.400 A < min distance 0.5 A \(key .stability.md.monitors.min_distance.\)"):
        stability_starts(_config(root))
    assert list(stability_starts(_config(root, channels=["01", "12"]))) == ["TS_01", "TS_12a"]


def test_an_experiment_refuses_a_collapsed_start_before_any_stage_runs(combustion_root, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(combustion_root, root)
    (root / "geometries" / "TS_05.xyz").write_text("2\n0 1\nH 0 0 0\nH 0 0 0.4\n")
    with pytest.raises(ConfigError, match=r"TS_05.xyz: atoms 0 and 1"):
        run_experiment(_config(root), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "ff_sampling").exists()  # no sampling or training was spent on it


def test_structure_and_combustion_starts_exclude_each_other(combustion_root):
    values = _config(combustion_root).model_dump(mode="json", exclude_unset=True)
    values["stability"]["structure"] = str(combustion_root / "geometries" / "TS_01.xyz")
    with pytest.raises(ConfigError, match="structure or h2combustion"):
        parse_config(ExperimentConfig, values, source="toy.yaml")


def _run(stable, t, monitor=None):
    return {"stable": stable, "simulated_fs": t, "monitor": monitor}


def test_failures_are_counted_by_kind_per_start_and_group():
    """Hand-made runs: the counts, per-start table and per-group log-rank come out as written."""
    a = {"TS_01": {"seeds": [0, 1], "time_to_failure_fs": [None, 50.0], "fraction_stable_at_end": 0.5,
                   "runs": [_run(True, 1000), _run(False, 50, "min_distance")]},
         "TS_05": {"seeds": [0, 1], "time_to_failure_fs": [None, None], "fraction_stable_at_end": 1.0,
                   "runs": [_run(True, 1000), _run(True, 1000)]}}
    b = {"TS_01": {"seeds": [0, 1], "time_to_failure_fs": [80.0, 90.0], "fraction_stable_at_end": 0.0,
                   "runs": [_run(False, 80, "species"), _run(False, 90, "min_distance")]},
         "TS_05": {"seeds": [0, 1], "time_to_failure_fs": [None, 300.0], "fraction_stable_at_end": 0.5,
                   "runs": [_run(True, 1000), _run(False, 300, "species")]}}
    stability = {("ffpt-ft", 6, 0): merge_start_batches(a), ("scratch", 6, 0): merge_start_batches(b)}
    entry = stability_by_budget(stability, {"tune": ["TS_01"]})[6]
    assert entry["arms"]["ffpt-ft"]["failures_by_kind"] == {"min_distance": 1}
    assert entry["arms"]["scratch"]["failures_by_kind"] == {"min_distance": 1, "species": 2}
    assert entry["arms"]["scratch"]["stable_fraction"] == pytest.approx(0.25)
    assert entry["by_start"]["TS_05"]["scratch"] == {"n_runs": 2, "n_stable": 1, "failures_by_kind": {"species": 1}}
    tune = entry["groups"]["tune"]
    assert tune["starts"] == ["TS_01"] and tune["arms"]["ffpt-ft"]["n_runs"] == 2
    assert tune["arms"]["scratch"]["n_failed"] == 2 and 0 < tune["logrank"]["pvalue"] < 1


def test_experiment_runs_every_start_as_its_own_stage(combustion_root, tmp_path):
    """The whole experiment at toy scale: one stage per (arm, budget, seed, start), runs in the
    channel's spin state with the exported package of each model, results.json with groups and
    failure kinds; dropping a channel reruns nothing."""
    config = _config(combustion_root, groups={"tune": ["01", "05"], "check": ["12"]})
    values = config.model_dump(mode="json", exclude_unset=True)
    values["stability"]["exported"] = True
    values.update({"pretraining": {"teacher": "uff", "md": {"temperatures": [500.0], "frames": 6, "stride": 5,
                                                           "equilibration": 10},
                                   "normal_modes": None, "random": {"sigmas": [0.05], "frames": 6}},
                   "model": {"n_features": 8, "n_layers": 1, "n_basis": 4, "cutoff": 4.0,
                             "options": {"spin_states": 4, "zbl": True}},
                   "pretrain": {"max_epochs": 1, "batch_size": 8, "progress_bar": False},
                   "finetune": {"max_epochs": 1, "batch_size": 4, "progress_bar": False}})
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(values))
    out = tmp_path / "run"
    first = subprocess.run([sys.executable, "-m", "ffpt", "run", str(path), "--out", str(out), "--quiet"],
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    for arm in ("ffpt-ft", "scratch"):
        for start in ("TS_01", "TS_05", "TS_12a"):
            folder = out / "stability" / f"{arm}_n6_s0" / start
            assert (folder / "stage.json").exists(), folder
            assert len(list(folder.glob("seed_*/stability.json"))) == 2
    inputs = json.loads((out / "stability" / "ffpt-ft_n6_s0" / "TS_01" / "inputs.json").read_text())["inputs"]
    assert inputs["start"]["info"]["spin"] == 4
    assert inputs["model"] == {"exported": {"model": str(out / "ffpt-ft_n6_s0" / "model" / "model.pt")}}
    assert (out / "export_ffpt-ft_n6_s0" / "model.pt2").is_file()  # MD ran with the package
    results = json.loads((out / "results.json").read_text())
    entry = results["stability"]["6"]
    assert entry["arms"]["ffpt-ft"]["n_runs"] == 6  # 3 starts x 2 runs
    assert set(entry["by_start"]) == {"TS_01", "TS_05", "TS_12a"}
    assert entry["groups"]["check"]["starts"] == ["TS_12a"] and entry["groups"]["tune"]["arms"]["scratch"]["n_runs"] == 4
    assert "pvalue" in entry["logrank"] and "failures_by_kind" in entry["arms"]["scratch"]
    report = (out / "report.md").read_text()
    assert "### By start" in report and "### check starts (TS_12a)" in report
    again = subprocess.run([sys.executable, "-m", "ffpt", "run", str(path), "stability.h2combustion.channels=[01,05]",
                            "stability.h2combustion.groups={}", "--out", str(out), "--quiet"],
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "running" not in again.stdout and "TS_12a" not in again.stdout

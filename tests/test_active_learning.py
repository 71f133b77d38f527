"""Active learning: the selection rule, and a toy loop that adds labels, fine-tunes and survives SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase import Atoms
from ase.build import molecule

from ffpt.cli import main
from ffpt.data import set_labels, write_frames
from ffpt.data.io import read_frames
from ffpt.observables.descriptors import descriptor_distance, inverse_distances
from ffpt.sampling.selection import SelectionRule, select_frames

from helpers_teachers import CountingMorse, fingerprint

TEACHER = "helpers_teachers:LoggedMorse"


# --------------------------------------------------------------------------- selection


def _water(shift):
    atoms = molecule("H2O")
    atoms.positions[1, 0] += shift  # stretch one O-H bond: a distinct geometry per shift
    return atoms


def test_descriptor_is_invariant_and_separates_geometries():
    a = _water(0.1)
    b = a.copy()
    b.rotate(40, "z")
    b.translate([1.0, -2.0, 0.5])
    b = b[[0, 2, 1]]  # swap the two hydrogens
    assert descriptor_distance(inverse_distances(a), inverse_distances(b)) < 1e-9
    assert descriptor_distance(inverse_distances(a), inverse_distances(_water(0.5))) > 0.05
    assert descriptor_distance(inverse_distances(a), inverse_distances(molecule("NH3"))) == float("inf")


def test_selection_picks_only_inside_the_window_and_respects_time_spacing():
    rng = np.random.default_rng(0)
    n = 60
    frames = [_water(0.005 * k) for k in range(n)]
    spreads = rng.uniform(0.0, 2.0, n)
    runs = ["a" if k < n // 2 else "b" for k in range(n)]
    times = [10.0 * (k % (n // 2)) for k in range(n)]
    rule = SelectionRule(lower=0.3, upper=1.2, max_frames=8, min_spacing_fs=35.0)
    selection = select_frames(frames, spreads, runs, times, rule)
    picked = selection.picked
    assert 0 < len(picked) <= 8
    assert all(0.3 <= spreads[i] <= 1.2 for i in picked)
    for i in picked:
        for j in picked:
            if i != j and runs[i] == runs[j]:
                assert abs(times[i] - times[j]) >= 35.0
    assert selection.n_below == int((spreads < 0.3).sum()) and selection.n_above == int((spreads > 1.2).sum())
    # without farthest-point picks, the largest spreads in the window come first
    top = select_frames(frames, spreads, runs, times, SelectionRule(0.3, 1.2, 3, 0.0, farthest_point=False))
    inside = sorted((s for s in spreads if 0.3 <= s <= 1.2), reverse=True)[:3]
    assert [spreads[i] for i in top.picked] == inside


def test_farthest_point_picks_avoid_labelled_and_duplicate_geometries():
    near_labelled = [_water(0.0), _water(0.001)]
    distinct = [_water(0.2), _water(0.4)]
    twins = [_water(0.4005)]
    frames = near_labelled + distinct + twins
    spreads = [0.9, 0.9, 0.5, 0.5, 0.6]
    rule = SelectionRule(lower=0.1, upper=1.0, max_frames=2)
    selection = select_frames(frames, spreads, ["r"] * 5, [float(k) * 100 for k in range(5)], rule,
                              labelled=[_water(0.0)])
    # the larger spreads sit on the labelled geometry; the two picks are the two distinct new geometries
    assert sorted(selection.picked) in ([2, 3], [2, 4])


def test_selection_window_must_be_ordered():
    with pytest.raises(ValueError, match="lower < upper"):
        SelectionRule(lower=1.0, upper=0.5, max_frames=3)


# --------------------------------------------------------------------------- the loop


def _labelled_frames(n, seed, log):
    teacher = CountingMorse(str(log))
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n):
        atoms = molecule("H2O")
        atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
        label = teacher.compute(atoms)
        set_labels(atoms, label.energy, label.forces)
        frames.append(atoms)
    return frames


def _al_config(tmp_path):
    write_frames(tmp_path / "labels.extxyz", _labelled_frames(8, 0, tmp_path / "init.log"))
    write_frames(tmp_path / "test.extxyz", _labelled_frames(4, 1, tmp_path / "init.log"))
    molecule("H2O").write(tmp_path / "start.xyz")
    config = {
        "name": "toy water",
        "labels": str(tmp_path / "labels.extxyz"),
        "test": str(tmp_path / "test.extxyz"),
        "teacher": TEACHER,
        "teacher_options": {"delay": 0.4},
        "model": {"n_features": 8, "n_layers": 1, "n_basis": 4, "cutoff": 4.0},
        "training": {"max_epochs": 1, "batch_size": 4, "progress_bar": False},
        "committee": {"size": 2},
        "explore": {"structures": [str(tmp_path / "start.xyz")], "temperatures_K": [300.0], "runs": 2,
                    "md": {"steps": 40, "timestep_fs": 0.5, "save_every": 5, "ensemble": "langevin"}},
        "select": {"lower": 0.0, "upper": 1.0e6, "max_per_round": 3, "min_spacing_fs": 5.0},
        "rounds": 2,
        "stop": {"stable_fraction": None},
    }
    path = tmp_path / "al.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _labels_of(out: Path) -> list[str]:
    return [fingerprint(a) for r in (0, 1) for a in read_frames(out / f"round_{r:02d}_label" / "labels.extxyz")]


def test_toy_active_learning_adds_labels_fine_tunes_and_resumes_after_sigkill(tmp_path, monkeypatch):
    sys.path.insert(0, str(Path(__file__).parent))  # helpers_teachers for in-process labelling
    whole_dir, killed_dir = tmp_path / "whole", tmp_path / "killed"
    whole_dir.mkdir(), killed_dir.mkdir()

    monkeypatch.setenv("FFPT_TEACHER_LOG", str(whole_dir / "calls.log"))
    config = _al_config(whole_dir)
    assert main(["al", str(config), "--out", str(whole_dir / "run"), "--quiet"]) == 0
    summary = json.loads((whole_dir / "run" / "rounds.json").read_text())
    rounds = summary["rounds"]
    assert [r["n_labels"] for r in rounds] == [7, 10, 13]  # 8 labels minus 1 for validation, +3 per round
    assert summary["labels_added"] == 6 and "2 rounds" in summary["stop"]
    assert all(r["test"]["n_frames"] == 4 for r in rounds)
    # round 1 warm-starts each member from the round-0 member
    from ffpt.models.model_file import read_model_file

    parent = read_model_file(whole_dir / "run" / "round_01_train" / "committee" / "member_1" / "model.pt")
    assert parent["provenance"]["stage"] == "finetune"
    assert parent["provenance"]["parent"]["path"].endswith("round_00_train/committee/member_1/model.pt")
    assert (whole_dir / "run" / "stability_vs_labels.png").stat().st_size > 1000
    assert "| round | labels |" in (whole_dir / "run" / "report.md").read_text()

    # the same loop killed while round 1 labels its picks, then run again
    config = _al_config(killed_dir)
    command = [sys.executable, "-m", "ffpt", "al", str(config), "--out", str(killed_dir / "run"), "--quiet"]
    env = {**os.environ, "FFPT_TEACHER_LOG": str(killed_dir / "calls.log"),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    cache = killed_dir / "run" / "round_01_label" / "cache"
    deadline = time.monotonic() + 300
    while not (cache.exists() and any(cache.rglob("*.json"))):
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "round 1 never started labelling"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed_dir / "run" / "rounds.json").exists()
    subprocess.run(command, check=True, capture_output=True, env=env)

    assert _labels_of(killed_dir / "run") == _labels_of(whole_dir / "run")
    calls = (killed_dir / "calls.log").read_text().split()
    assert len(calls) == len(set(calls)) == 7  # the teacher check and every picked frame, each once


def test_experiment_section_gives_both_arms_the_same_loop(tmp_path):
    from ffpt.config import ConfigError, load_config
    from ffpt.workflows.active_learning import experiment_al_config
    from ffpt.workflows.config import ExperimentConfig

    root = Path(__file__).resolve().parents[1]
    config = load_config(ExperimentConfig, root / "experiments" / "ethanol_al.yaml", [], {})
    data = {"valid": "valid.extxyz", "test": "test.extxyz"}
    ft = experiment_al_config(config, "ffpt-ft", "labels.extxyz", data, "pretrain/model.pt")
    scratch = experiment_al_config(config, "scratch", "labels.extxyz", data, None)
    assert str(ft.pretrained) == "pretrain/model.pt" and scratch.pretrained is None
    assert ft.teacher == scratch.teacher == "gfn2"
    same = ("select", "stop", "explore", "committee", "rounds", "labels", "valid", "test", "model", "training")
    for key in same:
        assert getattr(ft, key) == getattr(scratch, key), key
    with pytest.raises(ConfigError, match="active_learning.budget"):
        load_config(ExperimentConfig, root / "experiments" / "ethanol_al.yaml", ["active_learning.budget=7"], {})


def test_a_teacher_that_does_not_reproduce_the_first_labels_is_refused_before_training(tmp_path, monkeypatch,
                                                                                       capsys):
    sys.path.insert(0, str(Path(__file__).parent))
    monkeypatch.setenv("FFPT_TEACHER_LOG", str(tmp_path / "calls.log"))
    config = _al_config(tmp_path)
    # another Morse well depth: another "level of theory" than the first labels
    assert main(["al", str(config), "teacher_options.epsilon=2.0", "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "initial.extxyz frame 0: teacher 'helpers_teachers:LoggedMorse'" in err and "energy zero" in err
    assert not (tmp_path / "run" / "round_00_train").exists()


def test_total_energy_of_a_combustion_frame_adds_the_data_set_free_atoms():
    from ase.units import Hartree

    from ffpt.systems.h2combustion import FREE_ATOM_ENERGY_HARTREE, total_energy
    from ffpt.units import KCAL_PER_MOL

    ho2 = Atoms("HO2", positions=[[0, 0, 0], [0.97, 0, 0], [1.5, 1.1, 0]])
    ho2.info["REF_energy"] = -124.516 * KCAL_PER_MOL  # data set: kcal/mol relative to free atoms
    expected = (-124.516 / 627.5 + FREE_ATOM_ENERGY_HARTREE[1] + 2 * FREE_ATOM_ENERGY_HARTREE[8]) * Hartree
    assert total_energy(ho2) == pytest.approx(expected, abs=1e-6)

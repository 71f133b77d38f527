"""Kill -9 at a seeded random point of ``train``, ``md``, ``label`` and ``run``, then the same command
again: the result is the uninterrupted run's. And a run folder started in one working directory
resumes from another with no stage recomputed."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
import yaml
from ase.build import molecule
from conftest import emt_frames
from helpers_faults import EXPERIMENT_STAGES, TINY_EXPERIMENT, env

from ffpt.cli import main
from ffpt.data import read_frames, write_frames



def kill_point(verb: str, low: int, high: int) -> int:
    """A random kill point in [low, high) for ``verb``: seeded, the same in every session and order."""
    return int(np.random.default_rng([28, sum(map(ord, verb))]).integers(low, high))


def kill_when(cmd: list, ready, cwd=None, timeout: float = 240) -> None:
    """Start ``cmd``, SIGKILL its process group as soon as ``ready()``; fails if it ends before."""
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env(),
                               cwd=cwd, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            assert process.poll() is None, f"ended before the kill point: {process.stderr.read()[-3000:]}"
            assert time.monotonic() < deadline, "kill point not reached in time"
            time.sleep(0.02)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def ffpt_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "ffpt", *map(str, args)]


@pytest.fixture
def one_thread():
    """In-process runs with the one thread of the killed subprocess (same arithmetic, same bits)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_train_killed_at_a_random_epoch_resumes_to_the_same_weights(tmp_path, one_thread):
    data = write_frames(tmp_path / "train.extxyz", emt_frames(n=12, seed=3))
    valid = write_frames(tmp_path / "valid.extxyz", emt_frames(n=3, seed=4))
    epochs = 5

    def train(out):
        return ffpt_cmd("train", "--train", data, "--valid", valid, "--out", out, "--max-epochs", epochs,
                        "--batch-size", 4, "--seed", 5, "model.n_features=8", "model.n_layers=1", "model.n_basis=4",
                        "training.progress_bar=false")

    assert main(train(tmp_path / "whole")[3:]) == 0
    killed = tmp_path / "killed"
    at = kill_point("train", 1, epochs - 1)  # kill once epoch `at` is checkpointed

    def checkpointed() -> bool:
        try:
            return torch.load(killed / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] >= at
        except (OSError, RuntimeError, EOFError, KeyError):
            return False

    kill_when(train(killed), checkpointed)
    assert not (killed / "model.pt").exists()
    assert main(train(killed)[3:]) == 0
    whole = torch.load(tmp_path / "whole" / "model.pt", weights_only=True)["state_dict"]
    resumed = torch.load(killed / "model.pt", weights_only=True)["state_dict"]
    assert whole.keys() == resumed.keys()
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


def test_md_killed_at_a_random_step_resumes_to_the_same_trajectory(tmp_path):
    ase.io.write(tmp_path / "ethanol.xyz", molecule("CH3CH2OH"))
    steps = 1000

    def md(out):
        return ffpt_cmd("md", "--calculator", "uff", "--structure", tmp_path / "ethanol.xyz", "--steps", steps,
                        "--ensemble", "langevin", "--temperature", 500, "--save-every", 20, "--seed", 7,
                        "--out", out, "--no-progress")

    assert main(md(tmp_path / "whole")[3:]) == 0
    killed = tmp_path / "killed"
    at = kill_point("md", steps // 5, 4 * steps // 5)

    def step() -> int:
        try:
            return json.loads((killed / "checkpoint.json").read_text())["step"]
        except (OSError, ValueError, KeyError):
            return -1

    kill_when(md(killed), lambda: step() >= at)
    assert not (killed / "stability.json").exists()
    assert main(md(killed)[3:]) == 0
    a = ase.io.read(tmp_path / "whole" / "trajectory.extxyz", ":")
    b = ase.io.read(killed / "trajectory.extxyz", ":")
    assert [f.info["step"] for f in a] == [f.info["step"] for f in b] == list(range(0, steps + 1, 20))
    assert all(np.array_equal(x.positions, y.positions) for x, y in zip(a, b))


def test_label_killed_after_a_random_frame_resumes_to_the_same_labels(tmp_path, capsys):
    from test_label_runner import TEACHER, clusters

    write_frames(tmp_path / "in.extxyz", clusters(24, seed=9))

    def label(out, log, delay):
        return ffpt_cmd("label", "--data", tmp_path / "in.extxyz", "--out", out, "--teacher", TEACHER,
                        "--teacher-option", f"log_file={log}", "--teacher-option", f"delay={delay}", "--no-progress")

    assert main(label(tmp_path / "whole.extxyz", tmp_path / "whole.log", 0.0)[3:]) == 0
    log = tmp_path / "killed.log"
    at = kill_point("label", 3, 20)

    def labelled() -> int:
        return len(log.read_text().splitlines()) if log.exists() else 0

    kill_when(label(tmp_path / "killed.extxyz", log, 0.1), lambda: labelled() >= at)
    assert not (tmp_path / "killed.extxyz").exists()
    capsys.readouterr()
    assert main(label(tmp_path / "killed.extxyz", log, 0.0)[3:]) == 0
    assert int(re.search(r"; (\d+) from cache", capsys.readouterr().out).group(1)) >= at - 1  # the frame in progress may be lost
    a, b = read_frames(tmp_path / "whole.extxyz"), read_frames(tmp_path / "killed.extxyz")
    assert len(a) == len(b) == 24
    for x, y in zip(a, b):
        assert np.array_equal(x.positions, y.positions)
        assert x.info["REF_energy"] == y.info["REF_energy"] and np.array_equal(x.arrays["REF_forces"],
                                                                             y.arrays["REF_forces"])


@pytest.fixture(scope="module")
def finished_experiment(tmp_path_factory) -> Path:
    """The tiny experiment run to its end from its own folder, with relative paths: ``HOME/run``
    (in this process, on one thread like the killed subprocess)."""
    home = tmp_path_factory.mktemp("home")
    (home / "exp.yaml").write_text(yaml.safe_dump(TINY_EXPERIMENT))
    threads, cwd = torch.get_num_threads(), os.getcwd()
    torch.set_num_threads(1)
    os.chdir(home)
    try:
        assert main(["run", "exp.yaml", "--out", "run", "--quiet"]) == 0
    finally:
        os.chdir(cwd)
        torch.set_num_threads(threads)
    return home


def test_run_killed_in_a_random_stage_resumes_to_the_same_results(finished_experiment, tmp_path, one_thread, capsys):
    stage = EXPERIMENT_STAGES[kill_point("run", 0, len(EXPERIMENT_STAGES))]
    out = tmp_path / "run"
    cmd = ffpt_cmd("run", finished_experiment / "exp.yaml", "--out", out, "--quiet")
    kill_when(cmd, lambda: (out / stage / "inputs.json").exists())
    assert not (out / "results.json").exists()
    assert main(cmd[3:]) == 0
    stdout = capsys.readouterr().out
    assert f"[{stage}] running" not in stdout, (stage, stdout)  # resumed (or it had finished)
    whole = json.loads((finished_experiment / "run" / "results.json").read_text())
    assert json.loads((out / "results.json").read_text())["arms"] == whole["arms"], stage


def test_a_run_folder_resumes_from_another_working_directory(finished_experiment, tmp_path, monkeypatch, capsys):
    """Rerun from another folder, with other spellings of the same paths: every stage is up to date."""
    results = json.loads((finished_experiment / "run" / "results.json").read_text())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    relative = os.path.relpath(finished_experiment, elsewhere)
    assert main(["run", f"{relative}/exp.yaml", "--out", f"{relative}/run", "--quiet"]) == 0
    out = capsys.readouterr().out
    for stage in EXPERIMENT_STAGES:
        assert f"[{stage}] up to date, skipped" in out, out
    assert "running" not in out and "resuming" not in out
    assert json.loads((finished_experiment / "run" / "results.json").read_text())["arms"] == results["arms"]

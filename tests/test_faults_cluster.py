"""An external Dask cluster (``dask scheduler`` + ``dask worker``) started in another working
directory, and ``ffpt`` commands with relative paths: the paths are made absolute before any task
leaves the client, so the label cache lands beside the output (a rerun takes every frame from it)
and ``md --seeds`` finds its relative model file."""

from __future__ import annotations

import json
import os
import re
import signal
import shutil
import subprocess
import time

import pytest
from helpers_faults import env, write_inputs

from ffpt.cli import main
from ffpt.data import write_frames


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A scheduler and one worker process, both running in their own folder; yields the scheduler file."""
    elsewhere = tmp_path_factory.mktemp("cluster_home")
    scheduler_file = elsewhere / "scheduler.json"
    dask = shutil.which("dask")
    assert dask, "the dask command (distributed) is installed with ffpt"
    procs = [subprocess.Popen([dask, "scheduler", "--scheduler-file", str(scheduler_file), "--port", "0",
                               "--no-dashboard", "--host", "127.0.0.1"], cwd=elsewhere, env=env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists():
            assert time.monotonic() < deadline and procs[0].poll() is None, "scheduler did not start"
            time.sleep(0.1)
        procs.append(subprocess.Popen([dask, "worker", "--scheduler-file", str(scheduler_file), "--nworkers", "1",
                                       "--nthreads", "1", "--no-dashboard", "--name", "w0"], cwd=elsewhere,
                                      env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True))
        from distributed import Client

        with Client(scheduler_file=str(scheduler_file), timeout="30s") as client:
            client.wait_for_workers(1, timeout=60)
        yield scheduler_file, elsewhere
    finally:
        for proc in reversed(procs):  # each with its own process group: the worker's nanny and its child
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_relative_paths_work_on_an_external_cluster(cluster, tmp_path, monkeypatch, capsys):
    scheduler_file, elsewhere = cluster
    here = tmp_path / "here"
    inputs = write_inputs(here)
    shutil.copy(scheduler_file, here / "sched.json")
    from test_label_runner import TEACHER, clusters

    write_frames(here / "in.extxyz", clusters(6, seed=4))
    label = ["label", "--data", "in.extxyz", "--out", "labels.extxyz", "--teacher", TEACHER, "--scheduler", "sched.json",
             "--teacher-option", f"log_file={tmp_path / 'calls.log'}", "--no-progress"]
    monkeypatch.chdir(here)  # the client runs here (in this process), the worker elsewhere
    assert main(label) == 0
    assert re.search(r"6/6 frames labelled .*; 0 from cache, 6 computed", capsys.readouterr().out)
    assert len(list((here / "labels.cache").rglob("*.json"))) == 6  # beside the output, written by the worker
    assert not (elsewhere / "labels.cache").exists()
    assert main(label) == 0
    assert "6 from cache, 0 computed" in capsys.readouterr().out
    assert len((tmp_path / "calls.log").read_text().splitlines()) == 6  # each frame computed once, on the worker

    assert main(["md", "--calculator", inputs["model"].name, "--structure", inputs["water"].name, "--seeds", "0", "1",
                 "--steps", "10", "--save-every", "5", "--out", "batch", "--scheduler", "sched.json",
                 "--no-progress"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    for seed in (0, 1):
        assert json.loads((here / "batch" / f"seed_{seed}" / "stability.json").read_text())["steps"] == 10
    assert not (elsewhere / "batch").exists()

"""ffpt.execution (Dask) under labelling and sampling: same labels on any number of workers, a dead
worker loses and repeats no frame, a second client reads the cache, verbs run on a running scheduler."""

from __future__ import annotations

import json
import logging
import os
import signal
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from distributed import Client, LocalCluster
from helpers_teachers import CountingMorse, fingerprint
from test_label_runner import clusters, log_lines, morse

from ffpt.cli import main
from ffpt.data import read_frames, write_frames
from ffpt.execution import THREAD_VARIABLES, InlineExecutor, completed, executor
from ffpt.teachers.runner import label_frames

TEACHER = "helpers_teachers:CountingMorse"


class DyingMorse(CountingMorse):
    """CountingMorse whose process SIGKILLs itself on the frame ``victim`` (a fingerprint), once:
    ``marker`` records that it died. Death lands before the frame is logged or cached."""

    def __init__(self, log_file: str, victim: str, marker: str, delay: float = 0.0):
        super().__init__(log_file, delay=delay)
        self.victim, self.marker = victim, marker

    def compute(self, atoms):
        if fingerprint(atoms) == self.victim and not os.path.exists(self.marker):
            Path(self.marker).touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return super().compute(atoms)


@pytest.fixture(scope="module")
def cluster():
    """A running two-worker Dask cluster, started apart from ffpt (as ``dask scheduler`` would be)."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as running:
        yield running


def assert_same_labels(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.info["REF_energy"] == y.info["REF_energy"]  # bitwise
        np.testing.assert_array_equal(x.arrays["REF_forces"], y.arrays["REF_forces"])


def test_completed_yields_as_tasks_finish_and_raises_a_task_error():
    assert list(completed(InlineExecutor(), pow, [(2, 3), (3, 2)])) == [(0, 8), (1, 9)]
    with pytest.raises(ZeroDivisionError):
        list(completed(InlineExecutor(), divmod, [(1, 1), (1, 0)]))


def test_embedded_cluster_workers_get_their_thread_variables():
    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    with executor(workers=2, threads_per_worker=2) as pool:
        seen = pool.submit(lambda: [os.environ.get(n) for n in THREAD_VARIABLES]).result()
        worker = pool.submit(os.getpid).result()
    assert seen == ["2"] * len(THREAD_VARIABLES) and worker != os.getpid()
    assert {name: os.environ.get(name) for name in THREAD_VARIABLES} == saved  # this process's values back


def test_two_workers_label_bitwise_like_one_and_a_second_client_reads_the_cache(cluster, tmp_path):
    frames = clusters(12, seed=20)
    log = tmp_path / "calls.log"
    options = {"log_file": str(log), "delay": 0.02}
    one = label_frames(frames, TEACHER, options, tmp_path / "one", progress=False)
    with Client(cluster) as client:
        two = label_frames(frames, TEACHER, options, tmp_path / "two", executor=client.get_executor(pure=False),
                           progress=False)
        pids = set(client.run(os.getpid).values())
    assert len(pids) == 2 and os.getpid() not in pids
    assert (two.n_cached, two.n_computed) == (0, 12) and two.indices == one.indices
    assert_same_labels(one.frames, two.frames)
    assert len(log_lines(log)) == 24

    with Client(cluster) as client:  # a new client, as after a killed one
        again = label_frames(frames, TEACHER, options, tmp_path / "two", executor=client.get_executor(pure=False),
                             progress=False)
    assert (again.n_cached, again.n_computed) == (12, 0) and len(log_lines(log)) == 24
    assert_same_labels(one.frames, again.frames)


def test_a_worker_killed_mid_run_loses_no_frame_and_repeats_none(tmp_path):
    frames = clusters(16, seed=21)
    log, marker = tmp_path / "calls.log", tmp_path / "died"
    options = {"log_file": str(log), "victim": fingerprint(frames[7]), "marker": str(marker), "delay": 0.05}
    run = label_frames(frames, "test_execution:DyingMorse", options, tmp_path / "cache", workers=2, progress=False)
    assert marker.exists()  # a worker was SIGKILLed while labelling frame 7
    assert run.indices == list(range(16)) and not run.failures and run.n_computed == 16
    assert Counter(log_lines(log)) == Counter(fingerprint(a) for a in frames)  # each frame computed once
    for atoms, out in zip(frames, run.frames):
        energy, forces = morse(atoms)
        assert out.info["REF_energy"] == pytest.approx(energy, abs=1e-12)
        np.testing.assert_allclose(out.arrays["REF_forces"], forces, atol=1e-12)


def test_label_and_sample_verbs_run_on_a_running_scheduler(cluster, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    write_frames(tmp_path / "in.extxyz", clusters(6, seed=22))
    log = tmp_path / "calls.log"

    def label(out: str, *more: str) -> int:
        return main(["label", "--data", str(tmp_path / "in.extxyz"), "--out", str(tmp_path / out), "--teacher",
                     TEACHER, "--teacher-option", f"log_file={log}", "--no-progress", *more])

    assert label("local.extxyz") == 0
    assert label("remote.extxyz", "--scheduler", cluster.scheduler_address) == 0
    # what `dask scheduler --scheduler-file` writes, reduced to the key clients read
    (tmp_path / "scheduler.json").write_text(json.dumps({"address": cluster.scheduler_address}))
    assert label("file.extxyz", "--scheduler", str(tmp_path / "scheduler.json")) == 0
    local = read_frames(tmp_path / "local.extxyz")
    assert_same_labels(local, read_frames(tmp_path / "remote.extxyz"))
    assert_same_labels(local, read_frames(tmp_path / "file.extxyz"))
    assert len(log_lines(log)) == 18  # three caches, six frames each

    def sample(out: str, *more: str) -> int:
        return main(["sample", "--seeds", "O", "CO", "--teacher", "uff", "--out", str(tmp_path / out), "--md-frames",
                     "0", "--nm-frames", "0", "--random-frames", "2", "--random-sigmas", "0.05", "0.1",
                     "--no-progress", *more])

    assert sample("s_local.extxyz") == 0
    assert sample("s_remote.extxyz", "--scheduler", cluster.scheduler_address) == 0
    assert_same_labels(read_frames(tmp_path / "s_local.extxyz"), read_frames(tmp_path / "s_remote.extxyz"))

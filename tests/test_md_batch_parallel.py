"""MD batches on a Dask cluster: seeds run concurrently, each gives what it gives alone, a killed
batch resumes, and an input error still raises. One 2-worker LocalCluster serves the module."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase.build import molecule
from ase.calculators.lj import LennardJones
from ase.cluster import Icosahedron

from ffpt.cli import main
from ffpt.data import DataError
from ffpt.execution import executor
from ffpt.jobs.md import run_batch
from ffpt.simulate.config import MDConfig

SEEDS = [0, 1, 2]
CONFIG = MDConfig(steps=200, timestep_fs=5.0, temperature_K=40, ensemble="langevin", friction_per_fs=0.02,
                  save_every=10)


class SlowLJ(LennardJones):
    """Smooth Lennard-Jones argon that sleeps ``delay_s`` per evaluation (the results do not depend on it)."""

    def __init__(self, delay_s: float = 0.0):
        super().__init__(sigma=3.4, epsilon=0.0104, rc=8.0, smooth=True)
        self.delay_s = delay_s

    def calculate(self, *args, **kwargs):
        time.sleep(self.delay_s)
        super().calculate(*args, **kwargs)


@dataclass(frozen=True)
class Recorder:
    """Calculator factory that notes, from the worker, which process built it and when."""

    log_dir: str
    delay_s: float = 0.0

    def __call__(self):
        Path(self.log_dir, f"{os.getpid()}-{time.time_ns()}.json").write_text(
            json.dumps({"pid": os.getpid(), "start": time.time()}))
        return SlowLJ(self.delay_s)


class RejectsStart(LennardJones):
    def calculate(self, *args, **kwargs):
        raise DataError("start.xyz frame 0: element Ar is not in the model")


def ar13():
    return Icosahedron("Ar", noshells=2, latticeconstant=5.26)


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as local:
        yield local.scheduler_address


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The seeds run one after another in this process."""
    out = tmp_path_factory.mktemp("reference")
    run_batch(ar13(), SlowLJ, SEEDS, CONFIG, out, progress=False)
    return out


def assert_same_runs(out: Path, reference: Path, seeds=SEEDS, name="trajectory.extxyz"):
    """Bitwise the same frames (positions, momenta, energies) and outcome, seed by seed."""
    for seed in seeds:
        frames = ase.io.read(out / f"seed_{seed}" / name, ":")
        expected = ase.io.read(reference / f"seed_{seed}" / name, ":")
        assert [f.info["step"] for f in frames] == [f.info["step"] for f in expected]
        for got, want in zip(frames, expected):
            assert np.array_equal(got.positions, want.positions)
            assert np.array_equal(got.get_momenta(), want.get_momenta())
        stability, expected_stability = ({k: v for k, v in json.loads((d / f"seed_{seed}" / "stability.json")
                                                                      .read_text()).items() if k != "wall_s"}
                                         for d in (out, reference))
        assert stability == expected_stability
    got, want = (json.loads((d / "batch.json").read_text())["time_to_failure_fs"] for d in (out, reference))
    assert got == want


def test_seeds_run_concurrently_and_each_as_alone(tmp_path, cluster, reference):
    log = tmp_path / "log"
    log.mkdir()
    with executor(scheduler=cluster) as pool:
        batch = run_batch(ar13(), Recorder(str(log), delay_s=0.005), SEEDS, CONFIG, tmp_path / "par",
                          progress=False, executor=pool)
    assert batch.seeds == SEEDS and all(r.steps == CONFIG.steps for r in batch.results)
    assert_same_runs(tmp_path / "par", reference)
    calls = [json.loads(p.read_text()) for p in log.iterdir()]
    assert len(calls) == 3 and len({c["pid"] for c in calls}) == 2 and os.getpid() not in {c["pid"] for c in calls}
    first_end = min((tmp_path / "par" / f"seed_{s}" / "stability.json").stat().st_mtime for s in SEEDS)
    assert sorted(c["start"] for c in calls)[1] < first_end  # two seeds started before any finished


def test_an_input_error_on_the_start_frame_raises_through_the_cluster(tmp_path, cluster):
    with executor(scheduler=cluster) as pool, pytest.raises(DataError, match="start.xyz frame 0: element Ar"):
        run_batch(ar13(), RejectsStart, SEEDS, CONFIG, tmp_path, progress=False, executor=pool)
    assert not (tmp_path / "batch.json").exists() and not list(tmp_path.rglob("stability.json"))


def test_a_killed_batch_resumes_each_seed(tmp_path, cluster, reference):
    """A batch on an embedded 2-worker cluster is killed (client and workers) once seeds have
    checkpoints; run again it finishes every seed exactly as the uninterrupted runs."""
    out = tmp_path / "batch"
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_md_batch_parallel import CONFIG, SEEDS, Recorder, ar13
        from ffpt.execution import executor
        from ffpt.jobs.md import run_batch
        with executor(2) as pool:
            run_batch(ar13(), Recorder({str(tmp_path)!r}, delay_s=0.03), SEEDS, CONFIG, {str(out)!r},
                      progress=False, executor=pool)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    try:
        deadline = time.time() + 120
        while not list(out.glob("seed_*/checkpoint.json")) and time.time() < deadline:
            assert proc.poll() is None, "the batch ended before it could be killed"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the client and its cluster's processes
        proc.wait()
    assert list(out.glob("seed_*/checkpoint.json")) and not (out / "batch.json").exists()
    assert any(not (out / f"seed_{s}" / "stability.json").exists() for s in SEEDS)
    with executor(scheduler=cluster) as pool:
        run_batch(ar13(), SlowLJ, SEEDS, CONFIG, out, progress=False, executor=pool)
    assert_same_runs(out, reference)


def test_md_verb_seeds_on_a_running_scheduler(tmp_path, cluster, capsys):
    structure = tmp_path / "ethanol.xyz"
    ase.io.write(structure, molecule("CH3CH2OH"))
    common = ["md", "--calculator", "mmff94", "--structure", str(structure), "--steps", "60", "--timestep", "0.5",
              "--temperature", "300", "--ensemble", "langevin", "--friction", "0.01", "--save-every", "20",
              "--no-progress", "--seeds", "0", "1", "2"]
    assert main([*common, "--out", str(tmp_path / "alone")]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert main([*common, "--out", str(tmp_path / "cluster"), "--scheduler", cluster]) == 0
    assert json.loads(capsys.readouterr().out) == alone
    assert_same_runs(tmp_path / "cluster", tmp_path / "alone")

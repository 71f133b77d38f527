"""The labelling runner and ``ffpt label``: cache, resume after a real kill, failures, config."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase import Atoms
from ase.calculators.morse import MorsePotential
from helpers_teachers import CRASH_CHARGE, FAIL_CHARGE, CountingMorse, fingerprint

from ffpt.cli import main
from ffpt.config import parse_option_items as parse_options
from ffpt.data import read_frames, write_frames
from ffpt.teachers.runner import (
    LEVEL_KEY,
    LabelConfig,
    TEACHER_KEY,
    cache_path,
    frame_key,
    label_dataset,
    label_frames,
)

TESTS = Path(__file__).parent
TEACHER = "helpers_teachers:CountingMorse"


def clusters(n: int, seed: int = 0, n_atoms: int = 4) -> list[Atoms]:
    """``n`` random H clusters with no two atoms closer than 0.8 A."""
    rng = np.random.default_rng(seed)
    frames = []
    while len(frames) < n:
        pos = rng.uniform(0.0, 2.5, size=(n_atoms, 3))
        d = np.linalg.norm(pos[:, None] - pos[None], axis=-1) + 10 * np.eye(n_atoms)
        if d.min() > 0.8:
            frames.append(Atoms(f"H{n_atoms}", positions=pos))
    return frames


def morse(atoms: Atoms) -> tuple[float, np.ndarray]:
    probe = atoms.copy()
    probe.calc = MorsePotential(epsilon=1.0, r0=1.1, rho0=6.0)
    return probe.get_potential_energy(), probe.get_forces()


def log_lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_labels_match_teacher_and_cache_is_reused(tmp_path):
    frames = clusters(5)
    frames.append(frames[1].copy())  # a duplicate geometry is labelled once
    log = tmp_path / "calls.log"
    options = {"log_file": str(log)}
    run = label_frames(frames, TEACHER, options, tmp_path / "cache", workers=1, progress=False)
    assert run.indices == list(range(6)) and not run.failures
    assert (run.n_cached, run.n_computed) == (0, 5)
    assert sorted(log_lines(log)) == sorted(fingerprint(a) for a in frames[:5])
    for atoms, out in zip(frames, run.frames):
        energy, forces = morse(atoms)
        np.testing.assert_allclose(out.positions, atoms.positions)
        assert out.info["REF_energy"] == pytest.approx(energy, abs=1e-12)
        np.testing.assert_allclose(out.arrays["REF_forces"], forces, atol=1e-12)
        assert out.info[TEACHER_KEY] == "counting-morse" and out.info[LEVEL_KEY] == "Morse"

    again = label_frames(frames, TEACHER, options, tmp_path / "cache", workers=1, progress=False)
    assert (again.n_cached, again.n_computed) == (5, 0)
    assert len(log_lines(log)) == 5  # no teacher call on the rerun
    for a, b in zip(run.frames, again.frames):
        assert a.info["REF_energy"] == b.info["REF_energy"]
        np.testing.assert_array_equal(a.arrays["REF_forces"], b.arrays["REF_forces"])


def test_frame_key_tracks_geometry_state_and_teacher():
    atoms = clusters(1)[0]
    info = CountingMorse(log_file=os.devnull).info
    key = frame_key(atoms, info)
    same = atoms.copy()
    same.positions += 1e-9  # below the 1e-6 A rounding
    assert frame_key(same, info) == key
    moved = atoms.copy()
    moved.positions[2, 1] += 1e-4
    charged = atoms.copy()
    charged.info["charge"] = 1
    triplet = atoms.copy()
    triplet.info["spin"] = 3
    boxed = atoms.copy()
    boxed.cell = [8.0, 8.0, 8.0]
    boxed.pbc = True
    other = CountingMorse(log_file=os.devnull, epsilon=2.0).info
    keys = {frame_key(a, info) for a in (moved, charged, triplet, boxed)} | {frame_key(atoms, other)}
    assert len(keys) == 5 and key not in keys


def test_failures_are_reported_cached_and_retried(tmp_path):
    frames = clusters(4, seed=1)
    frames[1].info["charge"] = FAIL_CHARGE
    frames[3].info["charge"] = CRASH_CHARGE
    log = tmp_path / "calls.log"
    options = {"log_file": str(log)}
    report = tmp_path / "failures.json"
    run = label_frames(frames, TEACHER, options, tmp_path / "cache", progress=False, report_path=report)
    assert run.indices == [0, 2]
    assert [f.index for f in run.failures] == [1, 3]
    assert f"charge {FAIL_CHARGE}" in run.failures[0].reason
    assert "unexpected RuntimeError: simulated crash" in run.failures[1].reason
    written = json.loads(report.read_text())
    assert (written["n_frames"], written["n_labelled"], written["n_failed"]) == (4, 2, 2)
    assert [f["index"] for f in written["failures"]] == [1, 3]

    # a LabelFailure is a result and is cached; an unexpected error may be transient and is retried
    cached = label_frames(frames, TEACHER, options, tmp_path / "cache", progress=False)
    assert (cached.n_cached, cached.n_computed) == (3, 1) and [f.index for f in cached.failures] == [1, 3]
    retried = label_frames(frames, TEACHER, options, tmp_path / "cache", progress=False, retry_failed=True)
    assert (retried.n_cached, retried.n_computed) == (2, 2)
    assert len(log_lines(log)) == 2


def test_option_values_are_typed():
    assert parse_options(["xc=pbe", "grids_level=3", "conv_tol=1e-9", "density_fit=false", "basis=6-31g"]) == {
        "xc": "pbe", "grids_level": 3, "conv_tol": 1e-9, "density_fit": False, "basis": "6-31g"}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_options(["grids_level"])


def _cli(tmp_path: Path, log: Path, delay: float, workers: int) -> list[str]:
    return [
        sys.executable, "-c", "import sys; from ffpt.cli import main; sys.exit(main())",
        "label", "--data", str(tmp_path / "in.extxyz"), "--out", str(tmp_path / "out.extxyz"),
        "--teacher", TEACHER, "--option", f"log_file={log}", "--option", f"delay={delay}",
        "--workers", str(workers), "--no-progress",
    ]


def test_killed_run_resumes_and_labels_every_frame_exactly_once(tmp_path):
    write_frames(tmp_path / "in.extxyz", clusters(16, seed=2))
    frames = read_frames(tmp_path / "in.extxyz", require_labels=False)  # as the runner sees them
    log = tmp_path / "calls.log"
    cache = tmp_path / "out.cache"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    info = CountingMorse(log_file=str(log)).info
    keys = [frame_key(a, info) for a in frames]

    proc = subprocess.Popen(_cli(tmp_path, log, 0.3, workers=2), env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 90
    try:
        while sum(cache_path(cache, k).exists() for k in keys) < 4:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "labelling made no progress"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the runner and its workers, as a scheduler would
        proc.communicate()
    done = {k for k in keys if cache_path(cache, k).exists()}
    assert 4 <= len(done) < len(frames), "the kill must land part-way"
    assert not (tmp_path / "out.extxyz").exists()
    calls_before = log_lines(log)

    rerun = subprocess.run(_cli(tmp_path, log, 0.0, workers=1), env=env, capture_output=True, text=True, timeout=120,
                           check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(done)} from cache, {len(frames) - len(done)} computed" in rerun.stdout
    new_calls = log_lines(log)[len(calls_before):]
    missing = [fingerprint(a) for a, k in zip(frames, keys) if k not in done]
    # the rerun computes exactly the frames that had no stored result, each once
    assert Counter(new_calls) == Counter(missing)
    # every frame stored before the kill was computed once and never again
    stored = [fingerprint(a) for a, k in zip(frames, keys) if k in done]
    assert all(Counter(calls_before + new_calls)[f] == 1 for f in stored)

    out = read_frames(tmp_path / "out.extxyz")
    assert len(out) == len(frames)
    for atoms, labelled in zip(frames, out):
        energy, forces = morse(atoms)
        np.testing.assert_allclose(labelled.positions, atoms.positions, atol=1e-8)
        assert labelled.info["REF_energy"] == pytest.approx(energy, abs=1e-8)
        np.testing.assert_allclose(labelled.arrays["REF_forces"], forces, atol=1e-8)
        assert labelled.info[TEACHER_KEY] == "counting-morse"


def test_cli_yaml_config_flags_override_and_unknown_keys(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    write_frames(tmp_path / "in.extxyz", clusters(2, seed=3))
    log = tmp_path / "calls.log"
    config = {"data": str(tmp_path / "in.extxyz"), "out": str(tmp_path / "a.extxyz"), "teacher": TEACHER,
              "options": {"log_file": str(log), "epsilon": 1.0}, "progress": False}
    (tmp_path / "good.yaml").write_text(yaml.safe_dump(config))
    rc = main(["label", "--config", str(tmp_path / "good.yaml"), "--out", str(tmp_path / "b.extxyz"),
               "--option", "epsilon=2"])
    assert rc == 0
    assert not (tmp_path / "a.extxyz").exists() and len(read_frames(tmp_path / "b.extxyz")) == 2
    resolved = yaml.safe_load((tmp_path / "b.label.yaml").read_text())
    assert resolved["teacher_options"]["epsilon"] == 2 and resolved["workers"] == 1

    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**config, "wokers": 2}))
    assert main(["label", "--config", str(tmp_path / "bad.yaml")]) == 2
    assert "wokers" in capsys.readouterr().err

    assert main(["label", "--config", str(tmp_path / "good.yaml"), "--teacher", "no-such-teacher"]) == 2
    assert "no-such-teacher" in capsys.readouterr().err
    assert main(["label", "--config", str(tmp_path / "good.yaml"), "--option", "colour=red"]) == 2
    assert "colour" in capsys.readouterr().err
    assert main(["label", "--config", str(tmp_path / "good.yaml"), "--data", str(tmp_path / "none.extxyz")]) == 2
    assert "none.extxyz" in capsys.readouterr().err


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1"}


def _workers_of(parent: int) -> set[int]:
    """Live (not zombie) worker processes spawned by process ``parent`` (the embedded Dask
    cluster's nannies live in the parent and spawn one process per worker), read from /proc."""
    workers = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:  # ended meanwhile
            continue
        state, ppid = stat[stat.rindex(")") + 2:].split()[:2]
        if int(ppid) == parent and state != "Z" and b"spawn_main" in cmdline:
            workers.add(int(entry))
    return workers


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_label_workers_end_when_their_parent_is_killed(tmp_path):
    write_frames(tmp_path / "in.extxyz", clusters(40, seed=4))
    log = tmp_path / "calls.log"
    # output to DEVNULL: a worker that outlived the parent would hold a pipe open forever
    proc = subprocess.Popen(_cli(tmp_path, log, 1.0, workers=2), env=_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: set[int] = set()
    try:
        _wait_for(lambda: len(_workers_of(proc.pid)) == 2 and log_lines(log), proc, "two computing workers")
        workers = _workers_of(proc.pid)
        proc.kill()  # SIGKILL the parent alone: no chance to shut its Dask cluster down
        proc.wait()
        deadline = time.monotonic() + 5
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(w) for w in workers), "label workers outlived their killed parent"
    finally:
        for pid in [proc.pid, *workers]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        proc.wait()


def test_a_second_label_run_on_the_same_output_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    write_frames(tmp_path / "in.extxyz", clusters(20, seed=5))
    log = tmp_path / "calls.log"
    lock = tmp_path / "out.extxyz.lock"
    first = subprocess.Popen(_cli(tmp_path, log, 1.0, workers=1), env=_env(), start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: lock.exists() and log_lines(log), first, "the first run to label")
        second = _cli(tmp_path, log, 0.0, workers=1)[3:]
        assert main(second) == 2
        err = capsys.readouterr().err
        assert (f"{tmp_path / 'out.extxyz'}: is being written by ffpt label, pid {first.pid} on "
                f"{socket.gethostname()}, since ") in err and f"(lock {lock})" in err
        assert first.poll() is None and not (tmp_path / "out.extxyz").exists()
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        first.communicate()
    assert lock.exists()  # left by the killed run, but its lock died with it
    assert main(second) == 0
    assert len(read_frames(tmp_path / "out.extxyz")) == 20 and not lock.exists()


def test_label_outputs_follow_the_umask(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    frames = clusters(2, seed=6)
    frames[1].info["charge"] = FAIL_CHARGE  # so that the failure report is written
    write_frames(tmp_path / "in.extxyz", frames)
    saved = os.umask(0o022)
    try:
        assert main(_cli(tmp_path, tmp_path / "calls.log", 0.0, workers=1)[3:]) == 3  # done, one frame failed
    finally:
        os.umask(saved)
    written = [tmp_path / n for n in ("out.extxyz", "out.failures.json", "out.label.yaml")]
    written += list((tmp_path / "out.cache").rglob("*.json"))
    assert len(written) == 5
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in written} == {p.name: "0o644" for p in written}


def test_a_label_run_refused_on_bad_input_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    write_frames(tmp_path / "in.extxyz", clusters(2, seed=7))
    args = _cli(tmp_path, tmp_path / "calls.log", 0.0, workers=1)[3:]
    teacher = args.index("--teacher") + 1
    assert main(args[:teacher] + ["no-such-teacher"] + args[teacher + 1:]) == 2
    assert main(args + ["--option", "colour=red"]) == 2
    assert main(args[:2] + [str(tmp_path / "none.extxyz")] + args[3:]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.extxyz"]


def strain_derivative(teacher, atoms: Atoms, voigt: int, h: float) -> float:
    """(1/V) dE/d(strain) of Voigt component ``voigt`` by central differences (eV/A^3)."""
    i, j = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)][voigt]
    strain = np.zeros((3, 3))
    strain[i, j] = strain[j, i] = 1.0 if i == j else 0.5  # a shear counts in both off-diagonal entries
    energies = []
    for sign in (1, -1):
        strained = atoms.copy()
        strained.set_cell(atoms.cell.array @ (np.eye(3) + sign * h * strain), scale_atoms=True)
        energies.append(teacher.label(strained).energy)
    return (energies[0] - energies[1]) / (2 * h) / atoms.get_volume()


def test_gfn2_periodic_stress_is_written_and_cached(tmp_path):
    """GFN2-xTB labels of a periodic two-water box carry REF_stress (eV/A^3) equal to the strain
    derivative of the energy, written to the output file and read back unchanged from the cache."""
    from ffpt.teachers.xtb import GFN2Teacher

    box = Atoms("OH2OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0], [2.0, 2.0, 2.0], [2.96, 2.0, 2.0],
                                     [1.76, 2.93, 2.0]], cell=[[4.2, 0.3, 0.0], [0.0, 4.0, 0.0], [0.2, 0.0, 4.4]], pbc=True)
    box.rattle(0.05, seed=3)
    write_frames(tmp_path / "box.extxyz", [box])
    config = LabelConfig(data=tmp_path / "box.extxyz", out=tmp_path / "labelled.extxyz", teacher="gfn2",
                         progress=False)
    first, _ = label_dataset(config)
    assert (first.n_cached, first.n_computed) == (0, 1)
    (written,) = read_frames(config.out)
    stress = written.info["REF_stress"]
    assert stress.shape == (6,) and np.abs(stress).max() > 1e-3  # eV/A^3: a compressed box, not zero
    teacher = GFN2Teacher()
    for voigt in (0, 2, 3, 5):  # two normal and two shear components
        assert strain_derivative(teacher, box, voigt, 1e-3) == pytest.approx(stress[voigt], abs=2e-5)
    second, _ = label_dataset(config)
    assert (second.n_cached, second.n_computed) == (1, 0)
    np.testing.assert_array_equal(read_frames(config.out)[0].info["REF_stress"], stress)

"""Fault injection: concurrent writers, a read-only or full file system, names too long, a dead lock
holder. Every case ends with its exit status, no traceback and one line naming the path; a failed
write leaves the previous file whole.

The read-only and full file systems are real tmpfs mounts where this process may mount them (root),
else the same ``OSError`` injected at this process's write calls (``helpers_faults``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
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
from helpers_faults import (
    OUTPUT_NAMES, TINY_EXPERIMENT, env, full_folder, hh_water, one_error_line, read_only_folder, verb_argv,
    write_inputs,
)

from ffpt.cli import main
from ffpt.errors import UserError
from ffpt.fileio import atomic_write_text, lock_path, output_lock

VERBS = sorted(OUTPUT_NAMES)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("fault_inputs")
    f = write_inputs(folder)
    f["experiment"] = folder / "exp.yaml"
    f["experiment"].write_text(yaml.safe_dump(TINY_EXPERIMENT))
    return f


HOLDER = """
import sys, time
from contextlib import ExitStack
from ffpt.fileio import output_lock
with ExitStack() as stack:
    for out in sys.argv[2:]:
        stack.enter_context(output_lock(out, sys.argv[1]))
    print("held", flush=True)
    time.sleep(600)
"""


def hold_locks(verb: str, *outs: Path) -> subprocess.Popen:
    """Another process holding the output locks of ``outs`` as ``verb``; returns once they are held."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, verb, *map(str, outs)], stdout=subprocess.PIPE,
                              text=True, env=env())
    assert holder.stdout.readline().strip() == "held"
    return holder


# --------------------------------------------------------------------------- locks


def test_the_lock_names_its_holder_and_a_dead_holders_lock_is_taken_over(tmp_path):
    out = tmp_path / "out.extxyz"
    holder = hold_locks("ffpt label", out)
    try:
        record = json.loads(lock_path(out).read_text())
        assert (record["verb"], record["pid"], record["host"]) == ("ffpt label", holder.pid, socket.gethostname())
        with pytest.raises(UserError, match=rf"{out}: is being written by ffpt label, pid {holder.pid} on "):
            with output_lock(out, "ffpt label"):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)  # dies holding it: no cleanup runs
        holder.wait()
    assert lock_path(out).exists()  # the dead holder's file is still there ...
    with output_lock(out, "ffpt label") as lock:  # ... but its flock died with it
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock_path(out).exists()


def test_every_writer_refuses_a_second_writer(inputs, tmp_path, capsys):
    """Each verb that writes an output, started while another process holds the output's lock, exits 2
    naming the output and the holder, and writes nothing."""
    outs = {verb: tmp_path / OUTPUT_NAMES[verb] for verb in VERBS}
    holder = hold_locks("ffpt first", *outs.values())
    try:
        for verb in VERBS:
            code = main(verb_argv(verb, inputs, outs[verb]))
            line = one_error_line(verb, capsys.readouterr().err)
            assert code == 2, (verb, line)
            assert f"{outs[verb]}: is being written by ffpt first, pid {holder.pid} on {socket.gethostname()}" in line
            assert not outs[verb].exists(), verb
    finally:
        holder.kill()
        holder.wait()


def test_two_md_runs_into_one_folder_leave_one_runs_frames(inputs, tmp_path, capsys):
    out = tmp_path / "md"
    steps, every = 3000, 100
    cmd = [sys.executable, "-m", "ffpt", "md", "--calculator", "uff", "--structure", str(inputs["ethanol"]),
           "--steps", str(steps), "--save-every", str(every), "--seed", "1", "--out", str(out), "--no-progress"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.json").exists():
        assert first.poll() is None, first.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    code = main(cmd[3:])  # the second writer, while the first runs
    line = one_error_line("md", capsys.readouterr().err)
    running = first.poll() is None
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert code == 2 and running, line
    assert f"is being written by ffpt md, pid {first.pid}" in line
    frames = ase.io.read(out / "trajectory.extxyz", ":")
    assert [f.info["step"] for f in frames] == list(range(0, steps + 1, every))
    assert json.loads((out / "stability.json").read_text())["steps"] == steps


# --------------------------------------------------------------------------- read-only and full file systems


@pytest.mark.parametrize("verb", ["train", "sample", "md", "label", "export", "metad", "scan"])
def test_a_read_only_output_is_a_located_user_error(verb, inputs, tmp_path, monkeypatch, capsys):
    with read_only_folder(tmp_path, monkeypatch) as (folder, how):
        out = folder / OUTPUT_NAMES[verb]
        code = main(verb_argv(verb, inputs, out))
        line = one_error_line(verb, capsys.readouterr().err)
    assert code == 2, line
    assert f"{folder}" in line and "Read-only file system" in line, (how, line)


@pytest.mark.parametrize("verb", ["sample", "train", "label", "md"])
def test_a_full_disk_is_a_located_user_error(verb, inputs, tmp_path, monkeypatch, capsys):
    with full_folder(tmp_path, monkeypatch) as (folder, how):
        out = folder / OUTPUT_NAMES[verb]
        code = main(verb_argv(verb, inputs, out))
        line = one_error_line(verb, capsys.readouterr().err)
    assert code == 2, line
    assert f"{folder}" in line and "No space left on device" in line, (how, line)


def test_a_failed_write_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    first = lambda folder: atomic_write_text(folder / "result.json", "first version")  # noqa: E731
    with full_folder(tmp_path, monkeypatch, free=8192, prepare=first) as (folder, how):
        path = folder / "result.json"
        with pytest.raises(OSError) as caught:
            atomic_write_text(path, "x" * 200_000)  # more than is left
        assert caught.value.filename == str(path), how
        assert path.read_text() == "first version"
        assert not list(folder.glob("*.tmp")) and not list(folder.glob(".*.tmp"))  # no temporary file left


def test_a_training_checkpoint_that_does_not_fit_leaves_the_previous_one(tmp_path, monkeypatch):
    """Lightning's checkpoints go through AtomicCheckpointIO: written in the checkpoint's folder, so a
    full disk there fails the write (naming the file) instead of truncating ``best.ckpt``."""
    from ffpt.training.checkpoint_io import AtomicCheckpointIO

    io = AtomicCheckpointIO()
    small = {"epoch": 1, "state_dict": {"w": torch.ones(4)}}
    large = {"epoch": 2, "state_dict": {"w": torch.ones(200_000)}}  # 800 kB: more than the disk holds
    first = lambda folder: io.save_checkpoint(small, folder / "checkpoints" / "best.ckpt")  # noqa: E731
    with full_folder(tmp_path, monkeypatch, free=64 * 1024, prepare=first) as (folder, how):
        path = folder / "checkpoints" / "best.ckpt"
        with pytest.raises(OSError) as caught:
            io.save_checkpoint(large, path)
        assert caught.value.filename == str(path), how
        kept = torch.load(path, weights_only=False)
        assert kept["epoch"] == 1 and torch.equal(kept["state_dict"]["w"], torch.ones(4))
        assert [p.name for p in path.parent.iterdir()] == ["best.ckpt"]  # no temporary file left


# --------------------------------------------------------------------------- names too long


def test_a_valid_250_character_name_is_written_atomically(tmp_path):
    path = tmp_path / ("n" * 246 + ".txt")  # 250 bytes: fits, while NAME.<random>.tmp would not
    atomic_write_text(path, "ok")
    assert path.read_text() == "ok" and [p.name for p in tmp_path.iterdir()] == [path.name]


@pytest.mark.parametrize("verb, name, too_long", [
    ("label", "l" * 242 + ".extxyz", "l" * 242 + ".failures.json"),  # valid, but a derived name is not
    ("sample", "s" * 244 + ".extxyz", "s" * 244 + ".config.yaml"),
    ("train", "t" * 256, "t" * 256),
    ("md", "m" * 256, "m" * 256),
])
def test_a_name_too_long_is_a_located_user_error_before_any_work(verb, name, too_long, inputs, tmp_path, capsys):
    out = tmp_path / name
    code = main(verb_argv(verb, inputs, out))
    line = one_error_line(verb, capsys.readouterr().err)
    assert code == 2, line
    assert f"{tmp_path / too_long}: File name too long" in line
    assert [p.name for p in tmp_path.iterdir()] == []  # nothing labelled, sampled or trained for nothing


# --------------------------------------------------------------------------- working directories


def test_an_md_folder_resumes_with_other_spellings_of_its_files(inputs, tmp_path, monkeypatch):
    """``ffpt md`` continues its own folder whether its files are given relative (from two folders)
    or absolute: the folder records resolved paths and compares files by content."""
    home = tmp_path / "home"
    home.mkdir()
    for name in ("model", "water"):
        (home / inputs[name].name).write_bytes(inputs[name].read_bytes())
    args = ["--save-every", "5", "--seed", "3", "--no-progress"]
    monkeypatch.chdir(home)
    assert main(["md", "--calculator", "model.pt", "--structure", "water.xyz", "--steps", "10", "--out", "r", *args]) == 0
    monkeypatch.chdir(tmp_path)
    assert main(["md", "--calculator", str(home / "model.pt"), "--structure", str(home / "water.xyz"), "--steps", "20",
                 "--out", str(home / "r"), *args]) == 0
    assert main(["md", "--calculator", "home/model.pt", "--structure", "home/water.xyz", "--steps", "30", "--out",
                 "home/r", *args]) == 0
    steps = [f.info["step"] for f in ase.io.read(home / "r" / "trajectory.extxyz", ":")]
    assert steps == list(range(0, 31, 5))


# --------------------------------------------------------------------------- partial results


def test_label_with_untypable_frames_writes_the_rest_and_exits_3(tmp_path, capsys):
    """Frames the force field cannot type fail one by one: the others are labelled and written, the
    failed ones named on stderr and in the failures report, and the exit status (3) says so."""
    from ffpt.data import read_frames, write_frames

    good = [molecule("H2O"), molecule("CH4"), molecule("NH3")]
    for i, atoms in enumerate(good):
        atoms.positions += 0.01 * i
    write_frames(tmp_path / "in.extxyz", [good[0], hh_water(), good[1], good[2]])
    out = tmp_path / "out.extxyz"
    code = main(["label", "--data", str(tmp_path / "in.extxyz"), "--out", str(out), "--teacher", "uff",
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "Traceback" not in err
    assert "1 frames failed" in err and "frame 1:" in err and "atoms [0, 1, 2]" in err, err
    labelled = read_frames(out)
    assert [a.get_chemical_formula() for a in labelled] == ["H2O", "CH4", "H3N"]
    assert all(np.isfinite(a.info["REF_energy"]) for a in labelled)
    report = json.loads((tmp_path / "out.failures.json").read_text())
    assert report["n_failed"] == 1 and [f["index"] for f in report["failures"]] == [1], report
    assert "atoms [0, 1, 2]" in report["failures"][0]["reason"]


def test_label_help_documents_the_partial_exit_status():
    done = subprocess.run([sys.executable, "-m", "ffpt", "label", "--help"], capture_output=True, text=True,
                          env=env(), timeout=120)
    assert done.returncode == 0
    assert "3 done, but some frames failed" in " ".join(done.stdout.split())

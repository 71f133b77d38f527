"""``ffpt md`` and ``ffpt metad`` killed with SIGKILL mid-run and started again on the same folder end
exactly where an uninterrupted run ends (same machine): trajectory, HILLS and COLVAR bit for bit."""

import json
import signal
import subprocess
import sys
import time

import ase.io
import numpy as np
import pytest
from ase.build import molecule

STEPS = 3000
VERBS = {
    "md": ["--ensemble", "langevin", "--temperature", "500", "--save-every", "10", "--seed", "7"],
    "metad": ["--cv", "O1_H1", "--r0", "1.2", "--pace", "20", "--height", "1", "--sigma", "0.05",
              "--temperature", "500", "--seed", "7", "checkpoint_every=50"],
}


def command(verb, structure, out):
    return [sys.executable, "-m", "ffpt", verb, "--calculator", "uff", "--structure", str(structure),
            "--steps", str(STEPS), "--out", str(out), "--no-progress", *VERBS[verb]]


def checkpoint_step(out) -> int:
    try:
        return json.loads((out / "checkpoint.json").read_text())["step"]
    except (OSError, ValueError, KeyError):
        return -1


def kill_mid_run(cmd, out):
    """Start ``cmd``, SIGKILL it once its checkpoint passed a third of the run, before it ends."""
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while checkpoint_step(out) < STEPS // 3:
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "no checkpoint in time"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return checkpoint_step(out)


@pytest.mark.parametrize("verb", ["md", "metad"])
def test_a_killed_run_resumes_to_the_uninterrupted_result(tmp_path, verb):
    structure = tmp_path / "ethanol.xyz"
    ase.io.write(structure, molecule("CH3CH2OH"))
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(command(verb, structure, whole), check=True, capture_output=True)

    at = kill_mid_run(command(verb, structure, killed), killed)
    assert 0 < at < STEPS, "the kill must land mid-run"
    assert not (killed / "stability.json").exists()
    subprocess.run(command(verb, structure, killed), check=True, capture_output=True)

    a, b = ase.io.read(whole / "trajectory.extxyz", ":"), ase.io.read(killed / "trajectory.extxyz", ":")
    assert [f.info["step"] for f in a] == [f.info["step"] for f in b]
    assert all(np.array_equal(x.positions, y.positions) for x, y in zip(a, b))
    assert json.loads((whole / "stability.json").read_text())["simulated_fs"] == \
        json.loads((killed / "stability.json").read_text())["simulated_fs"]
    if verb == "metad":
        for name in ("HILLS", "COLVAR"):
            assert (whole / name).read_text() == (killed / name).read_text(), name

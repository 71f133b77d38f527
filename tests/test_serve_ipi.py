"""``ffpt serve MODEL --ipi ADDRESS``: an ffpt model drives a real i-PI path-integral run.

The test starts i-PI (2 beads, 5 NVT steps with the PILE-L thermostat, a periodic water molecule)
on a UNIX socket with a unique name, runs ``ffpt serve`` against it and checks that i-PI wrote all
5 steps with a finite conserved quantity and that both processes exited 0. Both are killed in the
end whatever happens. No network address is used: the socket is a file under /tmp.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import uuid
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase.build import molecule
from test_cli_errors import tiny_model

from ffpt.cli import main
from ffpt.simulate.ipi import IPIAddress, parse_address

SRC = Path(__file__).resolve().parents[1] / "src"

INPUT = """<simulation verbosity='low'>
  <output prefix='run'>
    <properties stride='1' filename='out'> [ step, conserved{{electronvolt}}, temperature{{kelvin}},
      potential{{electronvolt}} ] </properties>
  </output>
  <total_steps> 5 </total_steps>
  <prng><seed> 12345 </seed></prng>
  <ffsocket name='ffpt' mode='unix'><address> {address} </address></ffsocket>
  <system>
    <initialize nbeads='2'>
      <file mode='ase'> water.extxyz </file>
      <velocities mode='thermal' units='kelvin'> 300 </velocities>
    </initialize>
    <forces><force forcefield='ffpt'/></forces>
    <motion mode='dynamics'>
      <dynamics mode='nvt'>
        <timestep units='femtosecond'> 0.5 </timestep>
        <thermostat mode='pile_l'><tau units='femtosecond'> 100 </tau></thermostat>
      </dynamics>
    </motion>
    <ensemble><temperature units='kelvin'> 300 </temperature></ensemble>
  </system>
</simulation>
"""


def _stop(process: subprocess.Popen | None) -> None:
    if process is not None and process.poll() is None:
        process.kill()
        process.wait(timeout=10)


def test_ipi_pimd_with_ffpt_model(tmp_path):
    model = tiny_model(tmp_path / "tiny.pt", elements=(1, 8))
    water = molecule("H2O", cell=[8.0, 8.0, 8.0], pbc=True)
    water.center()
    ase.io.write(tmp_path / "water.extxyz", water)
    name = f"ffpt-test-{uuid.uuid4().hex[:12]}"
    (tmp_path / "input.xml").write_text(INPUT.format(address=name))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    ipi = None
    try:
        with open(tmp_path / "ipi.log", "w") as log:
            ipi = subprocess.Popen([str(Path(sysconfig.get_path("scripts")) / "i-pi"), "input.xml"],
                                   cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env=env)
        client = subprocess.run(
            [sys.executable, "-m", "ffpt", "serve", str(model), "--ipi", f"unix:{name}",
             "--structure", "water.extxyz", "--wait", "30"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90,
        )
        ipi_rc = ipi.wait(timeout=30)
    finally:
        _stop(ipi)
        Path(f"/tmp/ipi_{name}").unlink(missing_ok=True)
    assert client.returncode == 0, client.stderr
    assert ipi_rc == 0, (tmp_path / "ipi.log").read_text()[-2000:]
    summary = json.loads(client.stdout.strip().splitlines()[-1])
    assert summary["n_atoms"] == 3
    assert summary["force_calls"] >= 2 * 5  # two beads, five steps (and the initial forces)
    table = np.loadtxt(tmp_path / "run.out", ndmin=2)
    assert table[:, 0].tolist() == [0, 1, 2, 3, 4, 5]
    conserved = table[:, 1]
    assert np.isfinite(conserved).all() and np.isfinite(table[:, 3]).all()
    assert np.ptp(conserved) < 1e-3  # eV over 5 steps of 0.5 fs: a 3-atom run that conserves energy


@pytest.mark.parametrize("text, expected", [
    ("unix:water", IPIAddress(name="water")),
    ("water", IPIAddress(name="water")),
    ("localhost:31415", IPIAddress(host="localhost", port=31415)),
])
def test_parse_address(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize("argv, named", [
    (["serve", "missing.pt", "--ipi", "x", "--structure", "{water}"], "missing.pt"),
    (["serve", "{model}", "--ipi", "host:notaport", "--structure", "{water}"], "host:notaport"),
    (["serve", "{model}", "--ipi", "x", "--structure", "nowhere.xyz"], "nowhere.xyz"),
    (["serve", "{model}", "--ipi", "x"], "structure"),
    (["serve", "{model}", "--ipi", f"ffpt-none-{uuid.uuid4().hex[:12]}", "--structure", "{water}", "--wait", "0"],
     "no i-PI server"),
])
def test_serve_user_errors(tmp_path, capsys, argv, named):
    files = {"model": tiny_model(tmp_path / "tiny.pt", elements=(1, 8)), "water": tmp_path / "water.xyz"}
    ase.io.write(files["water"], molecule("H2O"))
    assert main([word.format(**files) for word in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("ffpt serve: error:") == 1 and named in err and "Traceback" not in err


def test_help_names_ipi(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    assert "i-PI" in capsys.readouterr().out

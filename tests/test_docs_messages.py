"""Messages and defaults a newcomer tripped on (issue 31, item 4), each explained in the docs:
an npz without units names the flag; ``ffpt serve`` says that i-PI needs a cell; ``ffpt al``
explores at its temperatures unless told otherwise; its report says why test errors are '–'."""

from __future__ import annotations

import uuid

import ase.io
import numpy as np
from ase.build import molecule

from ffpt.cli import main
from ffpt.workflows.active_learning import ExploreConfig
from ffpt.workflows.al_report import missing_test_note


def test_npz_without_units_names_the_flag(tmp_path, capsys):
    atoms = molecule("H2O")
    path = tmp_path / "nounit.npz"
    np.savez(path, R=atoms.positions[None], z=atoms.numbers, E=np.zeros(1), F=np.zeros((1, 3, 3)))
    assert main(["train", "--train", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nounit.npz" in err[0] and "--energy-unit" in err[0], err


def test_serve_says_ipi_needs_a_cell(tmp_path, capsys):
    structure = tmp_path / "water.xyz"
    ase.io.write(structure, molecule("H2O"))
    name = f"ffpt-docs-{uuid.uuid4().hex[:8]}"  # nothing listens there
    assert main(["serve", "--calculator", "uff", "--ipi", f"unix:{name}", "--structure", str(structure),
                 "--wait", "0.2"]) == 2
    err = capsys.readouterr().err
    assert "has no cell; i-PI needs one even for a gas-phase molecule" in err
    assert err.strip().splitlines()[-1].startswith("ffpt serve: error: no i-PI server") and "no cell" in err


def test_serve_is_quiet_about_cells_for_a_box(tmp_path, capsys):
    structure = tmp_path / "water.extxyz"
    atoms = molecule("H2O")
    atoms.set_cell([10.0, 10.0, 10.0])
    ase.io.write(structure, atoms)
    assert main(["serve", "--calculator", "uff", "--ipi", f"unix:ffpt-docs-{uuid.uuid4().hex[:8]}",
                 "--structure", str(structure), "--wait", "0.2"]) == 2
    assert "note:" not in capsys.readouterr().err


def test_active_learning_md_section_explores_at_its_temperature(tmp_path):
    given = ExploreConfig(structures=[tmp_path / "a.xyz"], md={"steps": 100, "timestep_fs": 0.5})
    assert given.md.ensemble == "langevin" and given.md.steps == 100
    assert ExploreConfig(structures=[tmp_path / "a.xyz"]).md.ensemble == "langevin"
    assert ExploreConfig(structures=[tmp_path / "a.xyz"], md={"ensemble": "nve"}).md.ensemble == "nve"


def test_active_learning_report_says_why_test_errors_are_missing():
    note = missing_test_note({"test": None})
    assert len(note) == 1 and "no test file was given" in note[0] and "`test`" in note[0]
    assert missing_test_note({"test": "/data/test.extxyz"}) == []

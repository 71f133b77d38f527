"""mace_run_train as users run it (ffpt.training.mace_cli): the command carries the recipe, a tiny run
yields a model MACE's own calculator serves, a failure names the log."""

import json

import numpy as np
import pytest
from pydantic import ValidationError

from conftest import emt_frames
from ffpt.data import write_frames
from ffpt.training.mace_cli import (
    COMMAND_FILE, MaceCliError, MaceCliRecipe, mace_cli_command, train_with_mace_cli,
)

pytest.importorskip("mace")

TINY = dict(hidden_irreps="4x0e + 4x1o", max_num_epochs=3, start_swa=2, batch_size=4, correlation=2, max_ell=1,
            num_interactions=1, num_radial_basis=4)


def test_command_holds_every_recipe_flag(tmp_path):
    recipe = MaceCliRecipe()
    command = mace_cli_command(tmp_path / "t.xyz", tmp_path / "v.xyz", tmp_path / "test.xyz", tmp_path, recipe, seed=7)
    assert command[0] == "mace_run_train"
    for name, value in recipe.model_dump().items():
        flag = f"--{name}" if value is True else f"--{name}={value}"
        assert flag in command, flag
    for flag in ("--seed=7", "--energy_key=REF_energy", "--forces_key=REF_forces", "--device=cpu",
                 "--restart_latest", f"--test_file={(tmp_path / 'test.xyz').resolve()}"):
        assert flag in command
    # the documented recipe's choices that are kept as they are
    assert {"--swa", "--ema", "--amsgrad", "--ema_decay=0.99", "--r_max=5.0", "--default_dtype=float64",
            "--E0s=average", "--forces_weight=100.0", "--swa_energy_weight=1000.0"} <= set(command)


def test_without_swa_no_stage_two_flags(tmp_path):
    command = mace_cli_command(tmp_path / "t", tmp_path / "v", None, tmp_path, MaceCliRecipe(swa=False), seed=0)
    assert not [c for c in command if c.startswith(("--swa", "--start_swa"))]
    assert not [c for c in command if c.startswith("--test_file")]


def test_stage_two_must_start_inside_the_run():
    with pytest.raises(ValidationError, match="start_swa"):
        MaceCliRecipe(max_num_epochs=10, start_swa=10)
    with pytest.raises(ValidationError, match="hidden_irrep"):
        MaceCliRecipe(hidden_irrep="8x0e")  # a typo is an error, not a silent default


@pytest.fixture(scope="module")
def tiny_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("mace_cli")
    train = write_frames(root / "train.extxyz", emt_frames(names=("CH3OH",), n=8, seed=0))
    valid = write_frames(root / "valid.extxyz", emt_frames(names=("CH3OH",), n=4, seed=1))
    return train, valid


def test_tiny_run_gives_a_model_mace_calculator_serves(tiny_sets, tmp_path):
    from mace.calculators import MACECalculator

    train, valid = tiny_sets
    recipe = MaceCliRecipe(**TINY)
    out = tmp_path / "run"
    model = train_with_mace_cli(train, valid, out, recipe, seed=1)
    assert model.name == "mace_stagetwo.model"
    record = json.loads((out / COMMAND_FILE).read_text())
    assert record["command"] == mace_cli_command(train, valid, None, out, recipe, seed=1)
    log = (out / "mace_run_train.log").read_text()
    assert "Changing loss based on Stage Two Weights" in log  # the switch happened at start_swa

    atoms = emt_frames(names=("CH3OH",), n=1, seed=5)[0]
    atoms.calc = MACECalculator(model_paths=str(model), device="cpu", default_dtype="float64")
    forces = atoms.get_forces()
    assert forces.shape == (len(atoms), 3) and np.isfinite(forces).all()
    # E0s=average: the energy sits near the labels' per-element zero, not near 0
    assert abs(atoms.get_potential_energy() - atoms.info["REF_energy"]) < 0.1 * abs(atoms.info["REF_energy"]) + 1.0
    # a finished run is found again without running mace_run_train (the log does not grow)
    assert train_with_mace_cli(train, valid, out, recipe, seed=1) == model
    assert (out / "mace_run_train.log").read_text() == log
    # the same folder with another command is refused
    with pytest.raises(MaceCliError, match="another command"):
        train_with_mace_cli(train, valid, out, recipe, seed=2)


def test_failed_run_raises_with_the_log_tail(tiny_sets, tmp_path, monkeypatch):
    """A run that fails (here a stand-in that prints and exits 3, so the test needs no mace start-up)."""
    import sys

    from ffpt.training import mace_cli

    failing = [sys.executable, "-c", "import sys; print('\\n'.join(f'line {k}' for k in range(40))); sys.exit(3)"]
    monkeypatch.setattr(mace_cli, "mace_cli_command", lambda *args: failing)
    train, valid = tiny_sets
    with pytest.raises(MaceCliError, match="exited with status 3") as info:
        train_with_mace_cli(train, valid, tmp_path / "bad", MaceCliRecipe(**TINY))
    message = str(info.value)
    assert "mace_run_train.log" in message and "line 39" in message and "line 5\n" not in message  # the tail only

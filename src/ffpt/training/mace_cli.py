"""MACE trained as its users train it: ``mace_run_train`` (mace-torch 0.3.16) as a subprocess on extxyz.

:class:`MaceCliRecipe` holds every flag with its value. The defaults are MACE's documented training
example (README "Training" and docs guide/training.rst, the small-molecule recipe used for rMD17):

    --model=MACE --hidden_irreps='128x0e + 128x1o' --r_max=5.0 --batch_size=10 --max_num_epochs=1500
    --swa --start_swa=1200 --ema --ema_decay=0.99 --amsgrad --restart_latest --device=cuda

with everything that example leaves out at mace_run_train's own defaults (lr 0.01, swa_lr 1e-3,
energy/forces weights 1/100, stage-two ("swa") weights 1000/100, ReduceLROnPlateau factor 0.8,
scheduler_patience 50, weight_decay 5e-7, default_dtype float64, eval_interval 1, patience 2048,
clip_grad 10, scaling rms_forces_scaling, 8 Bessel functions, correlation 3, 2 interactions).

Scaled to a 2-core CPU and to tens of labelled frames, and why:

- ``hidden_irreps`` 128 -> 64 channels (``64x0e + 64x1o``): a quarter of the cost per step; the
  documented alternative sizes are 128 or 256 channels, 64 is what fits the machine.
- ``batch_size`` 10 -> 5: with 50 training frames, 10 optimizer steps per epoch instead of 5.
- ``max_num_epochs`` 1500 -> 300, ``start_swa`` 1200 -> 240: the same 80 % share of epochs in stage one.
- ``E0s`` a fixed dict of isolated-atom energies -> ``average`` (least squares on the training
  frames): the labels hold no isolated atoms, and the dict of the example belongs to another method.
- ``device`` cuda -> cpu.

Everything else is unchanged. ``restart_latest`` is always on: a killed run resumes from its last
checkpoint.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ffpt import keys

NAME = "mace"  # --name: the model files are NAME.model and NAME_stagetwo.model
COMMAND_FILE = "command.json"
LOG_FILE = "mace_run_train.log"


class MaceCliError(RuntimeError):
    """``mace_run_train`` exited with an error; the message ends with its log's tail."""


class MaceCliRecipe(BaseModel):
    """Every ``mace_run_train`` flag ffpt sets, with its value (module docstring: source and scaling)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: Literal["MACE", "ScaleShiftMACE"] = "MACE"
    hidden_irreps: str = "64x0e + 64x1o"
    r_max: float = Field(5.0, gt=0, description="A")
    num_interactions: int = Field(2, ge=1)
    num_radial_basis: int = Field(8, ge=1)
    correlation: int = Field(3, ge=1)
    max_ell: int = Field(3, ge=0)
    scaling: Literal["rms_forces_scaling", "std_scaling", "no_scaling"] = "rms_forces_scaling"
    E0s: str = "average"
    batch_size: int = Field(5, ge=1)
    valid_batch_size: int = Field(10, ge=1)
    max_num_epochs: int = Field(300, ge=1)
    lr: float = Field(0.01, gt=0)
    weight_decay: float = Field(5e-7, ge=0)
    optimizer: Literal["adam", "adamw"] = "adam"
    amsgrad: Literal[True] = True  # mace_run_train 0.3.16 has no flag that turns it off
    scheduler_patience: int = Field(50, ge=0)
    lr_factor: float = Field(0.8, gt=0, lt=1)
    energy_weight: float = Field(1.0, ge=0)
    forces_weight: float = Field(100.0, ge=0)
    swa: bool = True
    start_swa: int | None = Field(240, ge=0, description="epoch of the stage-two switch")
    swa_lr: float = Field(1e-3, gt=0)
    swa_energy_weight: float = Field(1000.0, ge=0)
    swa_forces_weight: float = Field(100.0, ge=0)
    ema: bool = True
    ema_decay: float = Field(0.99, gt=0, lt=1)
    clip_grad: float = Field(10.0, gt=0)
    patience: int = Field(2048, ge=1)
    eval_interval: int = Field(1, ge=1)
    default_dtype: Literal["float32", "float64"] = "float64"
    error_table: str = "PerAtomMAE"

    @model_validator(mode="after")
    def _stage_two_inside_run(self) -> MaceCliRecipe:
        if self.swa and self.start_swa is not None and self.start_swa >= self.max_num_epochs:
            raise ValueError(f"start_swa ({self.start_swa}) must be below max_num_epochs ({self.max_num_epochs})")
        return self

    def flags(self) -> list[str]:
        """The recipe as ``--flag=value`` arguments (store-true flags bare, left out when off)."""
        out = []
        for name, value in self.model_dump().items():
            if name in ("swa_lr", "swa_energy_weight", "swa_forces_weight", "start_swa") and not self.swa:
                continue
            if value is None:
                continue
            if isinstance(value, bool):
                if value:
                    out.append(f"--{name}")
                continue
            out.append(f"--{name}={value}")
        return out


def mace_cli_command(
    train_path: Path, valid_path: Path, test_path: Path | None, out_dir: Path, recipe: MaceCliRecipe, seed: int
) -> list[str]:
    """The ``mace_run_train`` command line: ffpt's label keys, CPU, resumable, every recipe flag."""
    out_dir = Path(out_dir).resolve()
    command = [
        "mace_run_train",
        f"--name={NAME}",
        f"--seed={seed}",
        f"--work_dir={out_dir}",
        f"--train_file={Path(train_path).resolve()}",
        f"--valid_file={Path(valid_path).resolve()}",
    ]
    if test_path is not None:
        command.append(f"--test_file={Path(test_path).resolve()}")
    command += [
        f"--energy_key={keys.ENERGY}",
        f"--forces_key={keys.FORCES}",
        "--device=cpu",
        "--num_workers=0",
        "--restart_latest",
        "--save_cpu",
        *recipe.flags(),
    ]
    return command


def model_file(out_dir: Path, recipe: MaceCliRecipe) -> Path:
    """The model a finished run leaves: the stage-two model when ``swa`` is on, else the stage-one one."""
    return Path(out_dir) / (f"{NAME}_stagetwo.model" if recipe.swa else f"{NAME}.model")


def train_with_mace_cli(
    train_path: Path, valid_path: Path, out_dir: Path, recipe: MaceCliRecipe = MaceCliRecipe(), seed: int = 0,
    threads: int = 1, test_path: Path | None = None,
) -> Path:
    """Run ``mace_run_train`` in ``out_dir`` (``threads`` CPU threads); returns the model file.

    The command is written to ``out_dir/command.json`` first, the output to ``mace_run_train.log``.
    A finished run (its model file present, same command) returns at once; an interrupted one resumes
    from its latest checkpoint. Raises :class:`MaceCliError` with the log's tail when it fails.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    command = mace_cli_command(train_path, valid_path, test_path, out_dir, recipe, seed)
    target = model_file(out_dir, recipe)
    record_path = out_dir / COMMAND_FILE
    record = {"command": command, "shell": shlex.join(command), "threads": threads}
    if record_path.exists() and json.loads(record_path.read_text())["command"] != command:
        raise MaceCliError(f"{out_dir}: holds a mace_run_train run with another command ({record_path}); "
                           f"use another folder")
    if target.exists() and record_path.exists():
        return target
    from ffpt.fileio import atomic_write_json

    atomic_write_json(record_path, record)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    log_path = out_dir / LOG_FILE
    with open(log_path, "a") as log:
        result = subprocess.run(command, cwd=out_dir, env=env, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0 or not target.exists():
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-25:])
        why = f"exited with status {result.returncode}" if result.returncode else f"left no {target.name}"
        raise MaceCliError(f"mace_run_train {why} in {out_dir} (log {log_path}); last lines:\n{tail}")
    return target

"""An evaluation job: a model file's errors on labelled frames of one or more files -> JSON (meV/atom,
meV/A; all frames, per file, per ``config_type`` and per ``channel``), a parity plot, and optionally
the frames with predictions (``MLIP_energy``/``MLIP_forces``, like ``mace_eval_configs``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import Field, field_validator

from ffpt import keys
from ffpt.data.formats import DataFormat

GROUP_KEYS = (keys.CONFIG_TYPE, keys.CHANNEL)  # frame info keys errors are also grouped by


class EvalConfig(DataFormat):
    """What ``ffpt eval`` needs; ``json`` defaults to the first DATA file's stem + ``.errors.json``,
    ``plot`` to the JSON's stem + ``.png``. Keys and units of the data files: :class:`DataFormat`."""

    model: Path = Field(description="ffpt model file")
    data: list[Path] = Field(description="labelled frames: one file or a list (extxyz, npz, ASE db)")
    json_path: Path | None = Field(None, alias="json", description="errors JSON")
    plot: Path | None = Field(None, description="parity plot PNG")
    predictions: Path | None = Field(None, description="extxyz of the frames with MLIP_energy/MLIP_forces")
    batch_size: int = Field(64, ge=1)
    device: str = "cpu"

    @field_validator("data", mode="before")
    @classmethod
    def _one_or_more(cls, value):
        value = [value] if isinstance(value, (str, Path)) else value
        if isinstance(value, list) and not value:
            raise ValueError("give at least one data file")
        return value

    def json_file(self) -> Path:
        return self.json_path or self.data[0].with_suffix(".errors.json")

    def plot_file(self) -> Path:
        return self.plot or self.json_file().with_suffix(".png")


@dataclass
class EvalResult:
    table: object  # ffpt.observables.errors.ErrorTable of all frames
    groups: dict  # "file" / "config_type" / "channel" -> {name: ErrorTable}
    json_path: Path
    plot: Path
    predictions: Path | None


def group_tables(frames, energies, forces, labels: dict[str, list[str]]) -> dict:
    """``{group: {name: ErrorTable}}`` of the frames sharing each value of each labelling; a frame
    without a value is grouped under ``"-"``; a labelling no frame has is left out."""

    from ffpt.observables.errors import error_table

    groups = {}
    for group, names in labels.items():
        if all(name == "-" for name in names):
            continue
        tables = {}
        for name in dict.fromkeys(names):
            idx = [k for k, n in enumerate(names) if n == name]
            tables[name] = error_table([frames[k] for k in idx], np.asarray(energies)[idx], [forces[k] for k in idx])
        groups[group] = tables
    return groups


def run_eval(config: EvalConfig) -> EvalResult:
    """Errors of ``config.model`` on every file of ``config.data``; every frame is checked against the
    model first."""
    from ffpt.analysis.errors import parity_plot
    from ffpt.data.io import read_frames, write_frames
    from ffpt.fileio import atomic_write_json
    from ffpt import load_calculator
    from ffpt.models.calculator import check_structure
    from ffpt.models.committee import committee_predictions, is_committee_file
    from ffpt.models.exported import is_package
    from ffpt.models.mace_cli_model import is_mace_cli_model
    from ffpt.models.inference import calculator_predictions, predict_frames
    from ffpt.models.model_file import load_model
    from ffpt.observables.errors import error_table

    frames, files = [], []
    for path in config.data:
        part = read_frames(path, fmt=config)
        frames += part
        files += [str(path)] * len(part)
    names = [f"{path} frame {k}" for path, k in zip(files, _frame_numbers(files))]
    if is_committee_file(config.model):
        # members that stack: batches of frames, all members in one call; others one frame per call
        committee = load_calculator(config.model, device=config.device)
        energies, forces = committee_predictions(committee, frames, names, config.batch_size)
    elif is_package(config.model) or is_mace_cli_model(config.model):
        # .pt2 or a mace_run_train .model: through its calculator, one frame per call
        energies, forces = calculator_predictions(load_calculator(config.model), frames, names)
    else:
        model = load_model(config.model, device=config.device)
        for atoms, path, k in zip(frames, files, _frame_numbers(files)):
            check_structure(model, atoms, str(config.model), where=f"{path} frame {k}")
        energies, forces = predict_frames(model, frames, config.batch_size, config.device)
    table = error_table(frames, energies, forces)
    labels = {"file": files} | {key: [str(a.info.get(key, "-")) for a in frames] for key in GROUP_KEYS}
    groups = group_tables(frames, energies, forces, labels)
    json_path = config.json_file()
    json_path.parent.mkdir(parents=True, exist_ok=True)
    report = {**table.as_dict(), "model": str(config.model),
              "data": str(config.data[0]) if len(config.data) == 1 else [str(p) for p in config.data],
              **{f"per_{group}": {name: t.as_dict() for name, t in tables.items()} for group, tables in groups.items()}}
    atomic_write_json(json_path, report)
    plot = parity_plot(frames, energies, forces, config.plot_file(), config.model.name)
    if config.predictions is not None:
        write_frames(config.predictions, _with_predictions(frames, energies, forces))
    return EvalResult(table, groups, json_path, Path(plot), config.predictions)


def _frame_numbers(files: list[str]) -> list[int]:
    """Each frame's index within its own file."""
    seen: dict[str, int] = {}
    numbers = []
    for path in files:
        numbers.append(seen.get(path, 0))
        seen[path] = numbers[-1] + 1
    return numbers


def _with_predictions(frames, energies, forces):
    out = []
    for atoms, energy, f in zip(frames, energies, forces):
        atoms = atoms.copy()
        atoms.info[keys.PREDICTED_ENERGY] = float(energy)
        atoms.arrays[keys.PREDICTED_FORCES] = f
        out.append(atoms)
    return out

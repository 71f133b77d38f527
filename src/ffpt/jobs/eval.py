"""An evaluation job: a model file's errors on labelled frames -> JSON (meV/atom, meV/A) and parity plot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from ffpt.config import Strict


class EvalConfig(Strict):
    """What ``ffpt eval`` needs; ``json`` defaults to DATA's stem + ``.errors.json``, ``plot`` to the
    JSON's stem + ``.png``."""

    model: Path = Field(description="ffpt model file")
    data: Path = Field(description="labelled frames (extxyz with REF_energy/REF_forces)")
    json_path: Path | None = Field(None, alias="json", description="errors JSON")
    plot: Path | None = Field(None, description="parity plot PNG")
    batch_size: int = Field(64, ge=1)
    device: str = "cpu"

    def json_file(self) -> Path:
        return self.json_path or self.data.with_suffix(".errors.json")

    def plot_file(self) -> Path:
        return self.plot or self.json_file().with_suffix(".png")


@dataclass
class EvalResult:
    table: object  # ffpt.analysis.errors.ErrorTable
    json_path: Path
    plot: Path


def run_eval(config: EvalConfig) -> EvalResult:
    """Errors of ``config.model`` on ``config.data``; every frame is checked against the model first."""
    from ffpt.analysis.errors import error_table, parity_plot
    from ffpt.data.io import read_frames
    from ffpt.fileio import atomic_write_json
    from ffpt.models.calculator import check_structure
    from ffpt.models.inference import predict_frames
    from ffpt.models.model_file import load_model

    model = load_model(config.model, device=config.device)
    frames = read_frames(config.data)
    for k, atoms in enumerate(frames):
        check_structure(model, atoms, str(config.model), where=f"{config.data} frame {k}")
    energies, forces = predict_frames(model, frames, config.batch_size, config.device)
    table = error_table(frames, energies, forces)
    json_path = config.json_file()
    json_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(json_path, {**table.as_dict(), "model": str(config.model), "data": str(config.data)})
    plot = parity_plot(frames, energies, forces, config.plot_file(), config.model.name)
    return EvalResult(table, json_path, Path(plot))

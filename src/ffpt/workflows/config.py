"""The experiment configuration: one YAML file describes an FFPT-FT vs scratch comparison."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from ffpt.training.config import FinetuneConfig, ModelConfig, Strict, TrainingConfig


class CombustionSource(Strict):
    """Ab initio labels from the hydrogen-combustion benchmark (a path in the config, never hard-wired)."""

    root: Path  # folder of the npz files
    methods: list[Literal["aimd", "irc", "nm"]] = ["aimd", "irc"]
    train_channels: list[str] | None = None  # default: all channels not held out
    test_channels: list[str] | None = None  # held-out channels for the test set (default: random split)


class AbInitioConfig(Strict):
    """Where fine-tuning and test labels come from: exactly one of ``teacher``, ``data``, ``h2combustion``."""

    teacher: str | None = None  # label configurations sampled with the force field
    teacher_options: dict[str, Any] = {}
    sampling: dict[str, Any] = {}  # SamplingConfig fields (no seeds/out) for those configurations
    data: Path | None = None  # or: an existing labelled extxyz file
    h2combustion: CombustionSource | None = None
    workers: int = 2
    n_test: int = 100
    n_valid: int = 10
    split_seed: int = 0

    @model_validator(mode="after")
    def _one_source(self):
        given = [k for k in ("teacher", "data", "h2combustion") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"needs exactly one of teacher, data, h2combustion (got {given or 'none'})")
        return self


class StabilityConfig(Strict):
    """MD stability batches of the models at the largest budget (``md``: ffpt.simulate MDConfig fields)."""

    structure: Path | None = None  # default: the first seed structure
    n_runs: int = Field(4, ge=1)
    md: dict[str, Any] = {}


class MetadStageConfig(Strict):
    """Well-tempered metadynamics from a combustion channel's TS with each arm's model."""

    channel: str
    geometries: Path  # folder with TS_<channel>.xyz
    reactions: Path  # reactions.json (CV definitions)
    options: dict[str, Any] = {}  # further MetadParameters / run options


class ExperimentConfig(Strict):
    name: str
    seeds: list[dict[str, Any]] = Field(min_length=1)  # ffpt.sampling SeedSpec entries
    pretraining: dict[str, Any] = {}  # SamplingConfig fields (no seeds/out): FF teacher and samplers
    abinitio: AbInitioConfig
    budgets: list[int] = Field(min_length=1)  # numbers of fine-tuning frames
    arm_seeds: int = Field(1, ge=1)  # independent repeats per arm and budget
    model: ModelConfig = ModelConfig()
    pretrain: TrainingConfig = TrainingConfig(stage="pretrain")
    finetune: TrainingConfig = TrainingConfig(stage="finetune")
    finetune_options: FinetuneConfig = FinetuneConfig()
    stability: StabilityConfig | None = None
    metad: MetadStageConfig | None = None

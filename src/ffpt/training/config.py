"""Validated training configuration (YAML or flags); unknown keys and wrong types name the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

Stage = Literal["scratch", "pretrain", "finetune"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class DataConfig(Strict):
    train: Path
    valid: Path | None = None  # else a seeded fraction of train
    valid_fraction: float = 0.1
    split_seed: int = 0
    max_train_frames: int | None = None  # seeded subset of the training set


class ModelConfig(Strict):
    architecture: str = "newtonnet"
    cutoff: float = 5.0  # A
    n_features: int = 64
    n_layers: int = 3
    n_basis: int = 20
    dtype: Literal["float32", "float64"] = "float32"
    options: dict[str, Any] = {}  # further architecture-specific constructor arguments


class FinetuneConfig(Strict):
    init: Path | None = None  # pre-trained model file (required for stage 'finetune')
    refit_references: bool = True  # least-squares per-element energies on the new labels
    reset_head: bool = False  # re-initialise the output head
    freeze: list[str] = []  # parameter-name prefixes to keep fixed, e.g. ["embedding", "layers.0"]
    lr: float | None = None  # learning rate for fine-tuning (default: training.lr)


class TrainingConfig(Strict):
    stage: Stage = "scratch"
    max_epochs: int = 100
    max_time_minutes: float | None = None
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.0
    energy_weight: float = 1.0  # on MSE of energy per atom, eV^2
    forces_weight: float = 10.0  # on MSE of force components, (eV/A)^2
    huber_delta: float | None = None  # Huber instead of MSE, quadratic below this error (eV/atom, eV/A)
    ema_decay: float = 0.99
    grad_clip: float = 10.0
    lr_factor: float = 0.5
    lr_patience: int = 10  # epochs without improvement before the learning rate drops
    early_stopping_patience: int = 30
    seed: int = 0
    accelerator: str = "cpu"
    devices: int | str = 1
    num_nodes: int = 1
    progress_bar: bool = True

    @field_validator("max_epochs", "batch_size")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError("must be >= 1")
        return v

    @field_validator("huber_delta")
    @classmethod
    def _positive_delta(cls, v: float | None) -> float | None:
        if v is not None and v <= 0:
            raise ValueError("must be > 0 (eV/atom, eV/A) or null for MSE")
        return v


class TrainConfig(Strict):
    data: DataConfig
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    finetune: FinetuneConfig = FinetuneConfig()
    out: Path = Path("runs/train")


class ConfigError(ValueError):
    """An invalid configuration; the message names the file and key."""


def _format(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"{source}: key '{key}': {msg}")
    return "\n".join(lines)


def parse_config(cls: type[Strict], values: dict, source: str = "config") -> Strict:
    """Validate ``values`` as ``cls``; errors name the source and the dotted key."""
    try:
        return cls.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(_format(exc, source)) from None


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such config file")
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return values


def apply_overrides(values: dict, overrides: list[str]) -> dict:
    """Apply ``dotted.key=value`` overrides (values parsed as YAML scalars) to a nested dict."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}': expected dotted.key=value")
        key, raw = item.split("=", 1)
        node = values
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{item}': '{part}' is not a section")
        node[parts[-1]] = yaml.safe_load(raw)
    return values


def save_config(config: Strict, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))

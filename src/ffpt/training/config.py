"""Validated training configuration (YAML or flags); unknown keys and wrong types name the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from ffpt.config import Strict
from ffpt.data.formats import DataFormat

Stage = Literal["scratch", "pretrain", "finetune"]


class DataConfig(DataFormat):
    """Training (and validation) frames; keys and units of the files: :class:`DataFormat` fields
    (``data.energy_key``, ``data.energy_unit``, ...)."""

    train: Path
    valid: Path | None = None  # else a seeded fraction of train
    valid_fraction: float = 0.1
    split_seed: int = 0
    max_train_frames: int | None = None  # seeded subset of the training set

    @field_validator("valid_fraction")
    @classmethod
    def _fraction(cls, v: float) -> float:
        if not 0 < v < 1:
            raise ValueError("must be between 0 and 1 (exclusive)")
        return v

    @field_validator("max_train_frames")
    @classmethod
    def _some_frames(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError("must be >= 1 or null for all frames")
        return v


class ModelConfig(Strict):
    architecture: str = "newtonnet"
    cutoff: float = 5.0  # A
    n_features: int = 64
    n_layers: int = 3
    n_basis: int = 20
    dtype: Literal["float32", "float64"] = "float32"
    options: dict[str, Any] = {}  # architecture-specific constructor arguments (ffpt.models.options)

    @field_validator("architecture")
    @classmethod
    def _known_architecture(cls, value: str) -> str:
        from ffpt.models.options import OPTIONS

        if value not in OPTIONS:
            raise ValueError(f"unknown architecture '{value}'; known: {', '.join(sorted(OPTIONS))}")
        return value

    @field_validator("options")
    @classmethod
    def _typed_options(cls, value: dict, info: ValidationInfo) -> dict:
        """Checked against the architecture's options model: a typo is an error naming ``options.KEY``."""
        from ffpt.models.options import validate_options

        if "architecture" not in info.data:  # the architecture itself is invalid: reported there
            return value
        return validate_options(info.data["architecture"], value)


class ReplayConfig(DataFormat):
    """Force-field frames (e.g. the pre-training set) mixed into fine-tuning so that it keeps what
    pre-training taught (replay fine-tuning, as MACE's for foundation models). Keys and units of the
    file: :class:`DataFormat` fields.

    Every epoch trains on all fine-tuning frames plus a fresh draw of replay frames, drawn from
    ``(training.seed, epoch)``, so that ``fraction`` of the epoch's samples are replay frames.
    Force-field and ab-initio energy zeros differ: with ``energy_weight`` 0 (default) replay energies
    are left out of the loss; above 0 they are shifted by per-element offsets (least squares) onto the
    fine-tuning labels' zero and weighted by it, relative to ``training.energy_weight``.
    """

    frames: Path
    fraction: float = Field(0.2, gt=0, lt=1, description="share of each epoch's training samples")
    forces_weight: float = Field(1.0, ge=0, description="on replay forces, relative to training.forces_weight")
    energy_weight: float = Field(0.0, ge=0, description="on replay energies, relative to training.energy_weight "
                                                        "(0: left out)")


class FinetuneConfig(Strict):
    init: Path | None = None  # pre-trained model file (required for stage 'finetune'), or a committee.json
    refit_references: bool = True  # least-squares per-element energies on the new labels
    reset_head: bool = False  # re-initialise the output head
    freeze: list[str] = []  # parameter-name prefixes to keep fixed, e.g. ["embedding", "layers.0"]
    lr: float | None = None  # learning rate for fine-tuning (default: training.lr)
    replay: ReplayConfig | None = None  # force-field frames mixed into every epoch


class TrainingConfig(Strict):
    stage: Stage = "scratch"
    max_epochs: int = 100
    max_time_minutes: float | None = None
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.0
    energy_weight: float = 1.0  # on MSE of energy per atom, eV^2
    forces_weight: float = 10.0  # on MSE of force components, (eV/A)^2
    stress_weight: float = 0.0  # on MSE of stress components, (eV/A^3)^2; frames with REF_stress and a 3D cell
    huber_delta: float | None = None  # Huber instead of MSE, quadratic below this error (eV/atom, eV/A)
    # false: the loss sees the model without its repulsion prior (model.options.zbl), so the network alone
    # fits the labels; for pre-training on a force field whose short-range wall is softer than the
    # prior, which would otherwise teach the network to cancel the prior (BENCHMARKS.md, 12d)
    fit_prior: bool = True
    optimizer: Literal["adamw", "adam"] = "adamw"  # adam: weight decay as an L2 term in the gradient (MACE's)
    amsgrad: bool = False  # the AMSGrad variant (MACE's default: true)
    # which parameters weight_decay applies to: all, or MACE's groups (interaction linears and products
    # decay; embedding, radial MLPs, skip connections and readouts do not)
    weight_decay_groups: Literal["all", "mace"] = "all"
    ema_decay: float = 0.99
    ema_warmup: bool = False  # torch_ema's (MACE's) warm-up of the EMA: decay min(ema_decay, (1+k)/(10+k)) at step k
    grad_clip: float = 10.0  # on the gradient norm
    # ReduceLROnPlateau on val_loss (MACE's own defaults: factor 0.8, patience 50)
    lr_factor: float = 0.5
    lr_patience: int = 10  # epochs without improvement before the learning rate drops
    early_stopping_patience: int = 30
    # MACE's stage two ("swa"): from epoch swa_start (0-based) on, the loss weights and the learning rate
    # switch to the swa_* values (unset: unchanged), the plateau scheduler stops, and the best checkpoint
    # and early stopping count from the switch on (the loss changed meaning). Like mace_run_train, no
    # weights are averaged (MACE updates an AveragedModel but saves the EMA weights).
    swa_start: int | None = Field(None, ge=0)
    swa_lr: float | None = Field(None, gt=0)  # MACE's: 1e-3
    swa_energy_weight: float | None = Field(None, ge=0)  # MACE's: 1000
    swa_forces_weight: float | None = Field(None, ge=0)  # MACE's: 100
    seed: int = 0
    accelerator: str = "cpu"
    devices: int | str = 1  # per node
    num_nodes: int = 1
    strategy: str = "auto"  # Lightning strategy, e.g. ddp, ddp_fork, ddp_find_unused_parameters_false
    progress_bar: bool = True

    @field_validator("max_epochs", "batch_size")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError("must be >= 1")
        return v

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, value: str) -> str:
        if value == "auto":
            return value
        from lightning.pytorch.strategies import StrategyRegistry

        known = [name for name in StrategyRegistry.available_strategies() if "spawn" not in name]
        if "spawn" in value:  # spawn pickles the run for each process; Lightning's EMA callback does not pickle
            raise ValueError(f"'{value}' is not supported (a spawned process cannot take over the run); use ddp")
        if value not in known:
            raise ValueError(f"unknown strategy '{value}'; known: auto, {', '.join(known)}")
        return value

    @model_validator(mode="after")
    def _stage_two_inside_run(self) -> "TrainingConfig":
        if self.swa_start is not None and self.swa_start >= self.max_epochs:
            raise ValueError(f"swa_start ({self.swa_start}) must be below max_epochs ({self.max_epochs})")
        stage_two = [k for k in ("swa_lr", "swa_energy_weight", "swa_forces_weight") if getattr(self, k) is not None]
        if self.swa_start is None and stage_two:
            raise ValueError(f"{', '.join(stage_two)} need swa_start (the epoch stage two begins)")
        return self

    @field_validator("stress_weight")
    @classmethod
    def _non_negative(cls, v: float) -> float:
        if v < 0:
            raise ValueError("must be >= 0")
        return v

    @field_validator("huber_delta")
    @classmethod
    def _positive_delta(cls, v: float | None) -> float | None:
        if v is not None and v <= 0:
            raise ValueError("must be > 0 (eV/atom, eV/A) or null for MSE")
        return v


class CommitteeConfig(Strict):
    """K members trained side by side (:mod:`ffpt.training.committee`); 1 is a single model."""

    size: int = Field(1, ge=1, description="number of members (K times the cost of one run)")
    bootstrap: bool = Field(True, description="each member trains on a bootstrap resample of the labels")


class TrainConfig(Strict):
    data: DataConfig
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    finetune: FinetuneConfig = FinetuneConfig()
    committee: CommitteeConfig = CommitteeConfig()
    out: Path = Path("runs/train")



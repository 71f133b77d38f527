"""The experiment configuration: one YAML file describes an FFPT-FT vs scratch comparison of one or
more architectures (and optionally MACE trained by ``mace_run_train`` itself as a reference arm)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, ValidationError, ValidationInfo, field_validator, model_validator

from ffpt.config import Strict
from ffpt.jobs.metad import MetadConfig
from ffpt.sampling.config import SamplerSettings, SeedSpec
from ffpt.simulate.config import MDConfig
from ffpt.training.config import FinetuneConfig, ModelConfig, TrainingConfig
from ffpt.training.mace_cli import MaceCliRecipe
from ffpt.workflows.active_learning import ActiveLearningSettings
from ffpt.workflows.combustion_starts import ChannelId, CombustionStarts


class CombustionSource(Strict):
    """Ab initio labels from the hydrogen-combustion benchmark (a path in the config, never hard-wired)."""

    root: Path  # folder of the npz files
    methods: list[Literal["aimd", "irc", "nm"]] = ["aimd", "irc"]
    train_channels: list[ChannelId] | None = None  # default: all channels not held out
    test_channels: list[ChannelId] | None = None  # held-out channels for the test set (default: random split)
    # the data set's energies relative to free atoms, or total energies: the zero of new labels from a
    # DFT teacher at the data set's level (active learning with PySCF)
    energy_zero: Literal["free_atoms", "total"] = "free_atoms"


class AbInitioSampling(SamplerSettings):
    """Sampling of the configurations the ab initio teacher labels: laid over ``pretraining``
    (only the keys given here change), optionally with seeds of its own."""

    seeds: list[SeedSpec] | None = Field(None, min_length=1)


class AbInitioConfig(Strict):
    """Where fine-tuning and test labels come from: exactly one of ``teacher``, ``data``, ``h2combustion``."""

    teacher: str | None = None  # label configurations sampled with the force field
    teacher_options: dict[str, Any] = {}
    sampling: AbInitioSampling = AbInitioSampling()
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


def temperature_name(temperature_K: float) -> str:
    """One of ``stability.extra_temperatures`` (K) in stage, figure and results names: ``1000K``."""
    return f"{temperature_K:g}K"


class StabilityConfig(Strict):
    """MD stability batches of every arm seed's model at each of ``budgets`` (default: every
    budget), ``n_runs`` runs per model and start. The start is ``structure`` (default: the first
    seed structure) or, with ``h2combustion``, every channel's stationary point.
    ``md.monitors.reference_rdf: abinitio`` means the RDF of the ab initio configurations."""

    structure: Path | None = None
    h2combustion: CombustionStarts | None = None
    n_runs: int = Field(4, ge=1)  # MD runs per model and start; pooled over seeds: n_runs * arm_seeds
    # run the MD with each model's AOTInductor package (``ffpt export``, checked against the model; one
    # cached export stage per model): about 3x faster for small molecules (BENCHMARKS.md 10); the
    # mace_run_train arm's model is converted to ffpt's MACE first (ffpt.models.mace_convert)
    exported: bool = False
    # the packages' float type (default: each model's own). MACE trains in float64 and runs MD in float32
    # at about twice the speed (BENCHMARKS.md 13c); the export checks the package against the model file
    export_dtype: Literal["float32", "float64"] | None = None
    budgets: list[int] | None = Field(None, min_length=1)  # default: every budget of the experiment
    # the same runs to rounding (ffpt.dynamics.batched); not part of the stage key, so cached batches stand;
    # with exported, one package call per step for the batch (BENCHMARKS.md 15b)
    batch: int | None = Field(None, ge=1)  # run each model's MD seeds as batched replicas, this many together
    md: MDConfig = MDConfig()
    # more MD temperatures (K) for the same models, each in stages of its own beside those at
    # md.temperature_K (name suffix _<T>K, e.g. stability_ffpt-ft_n10_s0_1000K; each model's export shared);
    # results.json stability_extra["1000K"], a table and survival figure per temperature in report.md
    extra_temperatures: list[float] = []

    @field_validator("extra_temperatures")
    @classmethod
    def _new_temperatures(cls, temperatures: list[float], info: ValidationInfo) -> list[float]:
        if any(t <= 0 for t in temperatures):
            raise ValueError(f"{temperatures}: each temperature (K) > 0")
        if len(set(temperatures)) != len(temperatures):
            raise ValueError(f"{temperatures}: each temperature once")
        main = info.data["md"].temperature_K if "md" in info.data else None
        if main in temperatures:
            raise ValueError(f"{main:g} K is already stability.md.temperature_K (the main temperature)")
        return temperatures

    @model_validator(mode="after")
    def _model_is_the_calculator(self):
        given = sorted({"calculator", "teacher_options", "structure"} & self.md.model_fields_set)
        if given:
            raise ValueError(f"md: {given} are set by the experiment (each arm's model; stability.structure)")
        if self.structure is not None and self.h2combustion is not None:
            raise ValueError("give structure or h2combustion, not both")
        if "batch" in self.md.model_fields_set:
            raise ValueError("md.batch: batched replicas of the stability runs are stability.batch")
        if self.export_dtype is not None and not self.exported:
            raise ValueError("export_dtype: the packages' float type needs exported: true")
        return self


class MetadStageConfig(Strict):
    """Well-tempered metadynamics from combustion channels' TS with each arm's model: ``runs``
    independent runs (MD seeds ``options.seed`` + 0, 1, ...) per arm and channel, compared across
    runs and arms (barrier, reaction free energy, FES convergence, unphysical products)."""

    channel: ChannelId | None = None  # one channel, or:
    channels: list[ChannelId] | None = Field(None, min_length=1)  # several (exactly one of channel, channels)
    runs: int = Field(1, ge=1)  # independent runs per arm and channel (their spread is the error bar)
    budget: int | None = Field(None, ge=1)  # whose models: arm seed 0 at this budget (default the largest)
    geometries: Path  # folder with TS_<channel>.xyz (and reactant_/product_ for the reference barriers)
    reactions: Path  # reactions.json (CV definitions)
    options: MetadConfig = MetadConfig()  # further run options (steps, temperature_K, upper_walls, ...)
    # per channel: option keys that replace those of ``options`` there (e.g. upper_walls on its atoms)
    channel_options: dict[ChannelId, MetadConfig] = {}

    @model_validator(mode="after")
    def _stage_sets_the_source(self):
        for where, options in [("options", self.options),
                               *((f"channel_options.{c}", o) for c, o in self.channel_options.items())]:
            given = sorted({"calculator", "teacher_options", "structure", "channel", "reactions", "cv"}
                           & options.model_fields_set)
            if given:
                raise ValueError(f"{where}: {given} are set by the stage (model, geometries, channel, reactions)")
        if (self.channel is None) == (self.channels is None):
            raise ValueError("give exactly one of channel, channels")
        if self.channels is not None and len(set(self.channels)) != len(self.channels):
            raise ValueError(f"channels {self.channels}: each channel once")
        unknown = sorted(set(self.channel_options) - set(self.channel_list))
        if unknown:
            raise ValueError(f"channel_options {unknown}: not among the channels {self.channel_list}")
        return self

    @property
    def channel_list(self) -> list[str]:
        return [self.channel] if self.channel is not None else list(self.channels)

    def run_seed(self, run: int) -> int:
        """The MD seed of run ``run`` (0, 1, ...)."""
        return self.options.seed + run

    def given_options(self, channel: str) -> dict:
        """The option keys given for ``channel`` (JSON values): ``options`` with its ``channel_options``
        laid over them."""
        over = self.channel_options.get(channel)
        return {**self.options.model_dump(mode="json", exclude_unset=True),
                **(over.model_dump(mode="json", exclude_unset=True) if over is not None else {})}

    def resolved_options(self, channel: str) -> MetadConfig:
        """Every option of ``channel``'s runs (defaults filled in)."""
        return MetadConfig.model_validate(self.given_options(channel))

    def job_config(self, model_path: str | Path, channel: str | None = None, run: int = 0) -> MetadConfig:
        """The metadynamics job of one arm's model from ``channel``'s TS geometry (default the first
        channel), run ``run`` (its own MD seed)."""
        from ffpt.config import parse_config
        from ffpt.systems.h2combustion import stationary_point_path

        channel = channel or self.channel_list[0]
        seed = {"seed": self.run_seed(run)} if run else {}
        return parse_config(MetadConfig, {
            **self.given_options(channel), **seed,
            "calculator": str(model_path),
            "structure": str(stationary_point_path(self.geometries, "TS", channel)),
            "channel": channel,
            "reactions": str(self.reactions),
        }, source="metad")


class ExperimentActiveLearning(ActiveLearningSettings):
    """Active learning for each arm, from the arm's model at ``budget`` labels (the smallest budget by
    default): the same initial labels, teacher, selection rule and label budget for both arms."""

    budget: int | None = Field(None, ge=1, description="starting labels: one of budgets (default the smallest)")
    arms: list[Literal["ffpt-ft", "scratch"]] = Field(["ffpt-ft", "scratch"], min_length=1)


# Hyper-parameters an architecture is trained with when it is not the first of ``architectures``,
# laid over the shared ``model``/``pretrain``/``finetune`` sections (``per_architecture`` over these).
# MACE: the small-molecule (rMD17) recipe of mace-torch's README (Batatia et al. 2022) with
# mace_run_train's defaults for what it leaves out: 2 interactions, correlation 3, max_ell 3, L = 1
# features, 8 Bessel functions, float64; Adam with AMSGrad, lr 0.01, weight decay 5e-7 on MACE's
# parameter groups, EMA 0.99 with torch_ema's warm-up, gradient norm clipped at 10, energy/force
# weights 1/100 (MSE per atom / per component, as ffpt's), plateau factor 0.8 after 50 epochs; stage
# two ("swa") with lr 1e-3 and weights 1000/100 from 3/4 of max_epochs on (mace_run_train's start_swa
# default) unless swa_start is given (null: no stage two). Channels 128 -> 64 for CPUs (128x0e +
# 128x1o in the README); batch 5 for fine-tuning budgets of 10-50 frames (10 in the README for 950).
_MACE_TRAINING = {"optimizer": "adam", "amsgrad": True, "lr": 0.01, "weight_decay": 5e-7,
                  "weight_decay_groups": "mace", "energy_weight": 1.0, "forces_weight": 100.0, "ema_decay": 0.99,
                  "ema_warmup": True, "grad_clip": 10.0, "lr_factor": 0.8, "lr_patience": 50,
                  "swa_lr": 1e-3, "swa_energy_weight": 1000.0, "swa_forces_weight": 100.0}
RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    "mace": {
        "model": {"n_features": 64, "n_layers": 2, "n_basis": 8, "dtype": "float64",
                  "options": {"max_ell": 3, "max_L": 1, "correlation": 3}},
        "pretrain": _MACE_TRAINING,
        "finetune": {**_MACE_TRAINING, "batch_size": 5},
    },
}
STAGE_TWO = ("swa_lr", "swa_energy_weight", "swa_forces_weight")


def _stage_two_start(values: dict, given: dict) -> dict:
    """A recipe's stage two starts at 3/4 of ``max_epochs`` (mace_run_train's rule) unless ``swa_start``
    was given; ``swa_start: null`` (or fewer than 2 epochs) turns stage two off."""
    if "swa_start" in given and given["swa_start"] is not None:
        return values
    if "swa_start" in given or values["max_epochs"] < 2:
        return {k: v for k, v in values.items() if k not in STAGE_TWO} | {"swa_start": None}
    return {**values, "swa_start": max(1, values["max_epochs"] // 4 * 3)}


ARM_KINDS = ("ffpt-ft", "scratch")
REFERENCE_ARM = "mace-cli"  # MACE trained by mace_run_train on each arm's frames (``mace_reference``)


class ArchitectureSettings(Strict):
    """One architecture's own settings: keys laid over the shared section of the same name (and over
    the architecture's built-in recipe, :data:`RECIPES`); nested mappings (``model.options``,
    ``finetune_options.replay``) are merged key by key."""

    model: dict[str, Any] = {}
    pretrain: dict[str, Any] = {}
    finetune: dict[str, Any] = {}
    finetune_options: dict[str, Any] = {}


@dataclass(frozen=True)
class ArchitectureRun:
    """The resolved settings of one architecture of an experiment and the names of its stages: the first
    architecture keeps the plain names (``pretrain_s0``, arms ``ffpt-ft``/``scratch``), another one
    prefixes them (``pretrain_mace_s0``, arms ``mace-ffpt-ft``/``mace-scratch``)."""

    architecture: str
    first: bool
    model: ModelConfig
    pretrain: TrainingConfig
    finetune: TrainingConfig
    finetune_options: FinetuneConfig

    def arm(self, kind: str) -> str:
        return kind if self.first else f"{self.architecture}-{kind}"

    def pretrain_stage(self, seed: int) -> str:
        return f"pretrain_s{seed}" if self.first else f"pretrain_{self.architecture}_s{seed}"


@dataclass(frozen=True)
class Arm:
    """One arm of the comparison: ``kind`` ffpt-ft (fine-tuned from the pre-trained model) or scratch;
    ``trainer`` ffpt or mace-cli (``mace_run_train``, the reference arm)."""

    name: str
    architecture: str
    kind: str
    trainer: str = "ffpt"

    @property
    def own_scratch(self) -> str | None:
        """The scratch arm of the same architecture trained by ffpt (``None`` for a scratch arm)."""
        if self.kind != "ffpt-ft":
            return None
        return self.name[: -len("ffpt-ft")] + "scratch"

    def compared_with(self, present, best: str | None, best_role: str) -> dict[str, list[str]]:
        """The scratch arms an FFPT-FT arm is tested against, each with its roles: its own architecture's
        scratch arm (when in ``present``) and ``best`` (the best scratch arm by ``best_role``'s measure)."""
        against: dict[str, list[str]] = {}
        if self.own_scratch in present:
            against.setdefault(self.own_scratch, []).append("its own architecture's scratch arm")
        if best is not None:
            against.setdefault(best, []).append(best_role)
        return against


def _laid_over(base: dict, over: dict) -> dict:
    """``over``'s keys replace ``base``'s; mappings in both are merged key by key."""
    merged = dict(base)
    for key, value in over.items():
        merged[key] = _laid_over(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) \
            else value
    return merged


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"key '{'.'.join(str(p) for p in e['loc'])}': "
                     f"{'unknown key' if e['type'] == 'extra_forbidden' else e['msg']}" for e in exc.errors())


class ExperimentConfig(Strict):
    name: str
    seeds: list[SeedSpec] = Field(min_length=1)
    pretraining: SamplerSettings = SamplerSettings()  # FF teacher and samplers
    abinitio: AbInitioConfig
    budgets: list[int] = Field(min_length=1)  # numbers of fine-tuning frames
    arm_seeds: int = Field(1, ge=1)  # independent repeats per arm and budget
    model: ModelConfig = ModelConfig()
    pretrain: TrainingConfig = TrainingConfig(stage="pretrain")
    finetune: TrainingConfig = TrainingConfig(stage="finetune")
    finetune_options: FinetuneConfig = FinetuneConfig()
    # several architectures trained on the same labels, splits and arm seeds (default: model.architecture).
    # The shared sections above are the first architecture's settings; another architecture takes them
    # with its built-in recipe (RECIPES) and its per_architecture entry laid over them (options are never
    # shared between architectures)
    architectures: list[str] | None = Field(None, min_length=1)
    per_architecture: dict[str, ArchitectureSettings] = {}
    # MACE trained by mace_run_train itself on each budget's and arm seed's frames (arm 'mace-cli', from
    # scratch); it runs its MD through MACE's ASE calculator, or with stability.exported as an exported
    # package of its model converted to ffpt's MACE (the same energies and forces)
    mace_reference: MaceCliRecipe | None = None
    stability: StabilityConfig | None = None
    metad: MetadStageConfig | None = None
    active_learning: ExperimentActiveLearning | None = None

    _runs: list[ArchitectureRun] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _resolve_architectures(self):
        from ffpt.models.options import OPTIONS

        names = self.architectures or [self.model.architecture]
        unknown = [name for name in names if name not in OPTIONS]
        if unknown:
            raise ValueError(f"architectures: unknown {unknown}; known: {', '.join(sorted(OPTIONS))}")
        if len(set(names)) != len(names):
            raise ValueError(f"architectures {names}: each architecture once")
        if self.architectures and "architecture" in self.model.model_fields_set and self.model.architecture != names[0]:
            raise ValueError(f"model.architecture '{self.model.architecture}' must be the first of architectures "
                             f"{names} (the shared sections are the first architecture's settings)")
        unknown = sorted(set(self.per_architecture) - set(names))
        if unknown:
            raise ValueError(f"per_architecture {unknown}: not among architectures {names}")
        self._runs = [self._resolved(name, k == 0) for k, name in enumerate(names)]
        return self

    def _resolved(self, architecture: str, first: bool) -> ArchitectureRun:
        """The settings of ``architecture``: the shared sections, its recipe unless it is the first, its
        ``per_architecture`` entry; errors name the key."""
        recipe = {} if first else RECIPES.get(architecture, {})
        own = self.per_architecture.get(architecture, ArchitectureSettings())
        shared = {"model": self.model, "pretrain": self.pretrain, "finetune": self.finetune,
                  "finetune_options": self.finetune_options}
        resolved = {}
        for section, value in shared.items():
            base = value.model_dump(mode="json")
            if section == "model":
                base = {**base, "architecture": architecture} if first else \
                    {**base, "architecture": architecture, "options": {}}  # options belong to one architecture
            values = _laid_over(_laid_over(base, recipe.get(section, {})), getattr(own, section))
            if "swa_lr" in recipe.get(section, {}):
                shared_given = {k: base[k] for k in value.model_fields_set if k == "swa_start"}
                values = _stage_two_start(values, {**shared_given, **getattr(own, section)})
            try:
                resolved[section] = type(value).model_validate(values)
            except ValidationError as exc:
                where = f"per_architecture.{architecture}.{section}" if architecture in self.per_architecture \
                    else f"{section} (for architecture '{architecture}')"
                raise ValueError(f"{where}: {_problems(exc)}") from None
        return ArchitectureRun(architecture, first, **resolved)

    @property
    def architecture_runs(self) -> list[ArchitectureRun]:
        """Every architecture's resolved settings, the first (plain stage names) first."""
        return list(self._runs)

    @property
    def arms(self) -> list[Arm]:
        """Every arm: FFPT-FT and scratch of each architecture, then the mace_run_train reference arm."""
        arms = [Arm(run.arm(kind), run.architecture, kind) for run in self._runs for kind in ARM_KINDS]
        if self.mace_reference is not None:
            arms.append(Arm(REFERENCE_ARM, "mace", "scratch", "mace-cli"))
        return arms

    @model_validator(mode="after")
    def _active_learning_inputs(self):
        a = self.active_learning
        if a is None:
            return self
        if a.budget is not None and a.budget not in self.budgets:
            raise ValueError(f"active_learning.budget {a.budget} is not one of budgets {self.budgets}")
        if a.teacher is None and self.abinitio.teacher is None:
            raise ValueError("active_learning.teacher is required when abinitio has no teacher")
        return self

    @model_validator(mode="after")
    def _stability_budgets_are_budgets(self):
        if self.stability is not None and self.stability.budgets is not None:
            unknown = sorted(set(self.stability.budgets) - set(self.budgets))
            if unknown:
                raise ValueError(f"stability.budgets {unknown} are not among budgets {sorted(self.budgets)}")
        return self

    @model_validator(mode="after")
    def _metad_budget_is_a_budget(self):
        if self.metad is not None and self.metad.budget is not None and self.metad.budget not in self.budgets:
            raise ValueError(f"metad.budget {self.metad.budget} is not one of budgets {sorted(self.budgets)}")
        return self

    def at_temperature(self, temperature_K: float) -> ExperimentConfig:
        """This experiment with its stability MD at ``temperature_K`` (K): the settings of one of
        ``stability.extra_temperatures`` (its stages' MD, key and report)."""
        s = self.stability
        md = s.md.model_copy(update={"temperature_K": temperature_K})
        return self.model_copy(update={"stability": s.model_copy(update={"md": md})})

    @property
    def stability_budgets(self) -> list[int]:
        """The budgets with MD stability runs (sorted; empty without a stability section)."""
        if self.stability is None:
            return []
        return sorted(set(self.stability.budgets or self.budgets))

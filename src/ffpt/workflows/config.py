"""The experiment configuration: one YAML file describes an FFPT-FT vs scratch comparison."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from ffpt.config import Strict
from ffpt.jobs.metad import MetadConfig
from ffpt.sampling.config import SamplerSettings, SeedSpec
from ffpt.simulate.config import MDConfig
from ffpt.training.config import FinetuneConfig, ModelConfig, TrainingConfig
from ffpt.workflows.active_learning import ActiveLearningSettings


def _channel_id(value):
    """A channel id as the data set spells it: YAML reads ``01`` or ``12`` as a number -> '01', '12'."""
    return f"{value:02d}" if isinstance(value, int) and not isinstance(value, bool) else value


ChannelId = Annotated[str, BeforeValidator(_channel_id)]


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


class CombustionStarts(Strict):
    """MD starts at a stationary point of every listed hydrogen-combustion channel, each run in its
    channel's spin state (multiplicity from ``reactions``)."""

    geometries: Path  # folder with {kind}_{channel}.xyz
    reactions: Path  # reactions.json
    kind: Literal["reactant", "TS", "product"] = "TS"
    channels: list[ChannelId] | None = None  # ids or numbers ("12" = 12a and 12b); default: every channel with a geometry
    # named sets of channels with their own stable fractions and log-rank test, e.g. channels tuned on
    # and channels kept as the check: {tune: ["01", ..., "13"], check: ["14", ..., "19"]}
    groups: dict[str, list[ChannelId]] = {}


class StabilityConfig(Strict):
    """MD stability batches of every arm seed's model at each of ``budgets`` (default: every
    budget), ``n_runs`` runs per model and start. The start is ``structure`` (default: the first
    seed structure) or, with ``h2combustion``, every channel's stationary point.
    ``md.monitors.reference_rdf: abinitio`` means the RDF of the ab initio configurations."""

    structure: Path | None = None
    h2combustion: CombustionStarts | None = None
    n_runs: int = Field(4, ge=1)  # MD runs per model and start; pooled over seeds: n_runs * arm_seeds
    # run the MD with each model's AOTInductor package (``ffpt export``, checked against the model; one
    # cached export stage per model): about 3x faster for small molecules (BENCHMARKS.md 10)
    exported: bool = False
    budgets: list[int] | None = Field(None, min_length=1)  # default: every budget of the experiment
    md: MDConfig = MDConfig()

    @model_validator(mode="after")
    def _model_is_the_calculator(self):
        given = sorted({"calculator", "teacher_options", "structure"} & self.md.model_fields_set)
        if given:
            raise ValueError(f"md: {given} are set by the experiment (each arm's model; stability.structure)")
        if self.structure is not None and self.h2combustion is not None:
            raise ValueError("give structure or h2combustion, not both")
        return self


class MetadStageConfig(Strict):
    """Well-tempered metadynamics from a combustion channel's TS with each arm's model."""

    channel: str
    geometries: Path  # folder with TS_<channel>.xyz
    reactions: Path  # reactions.json (CV definitions)
    options: MetadConfig = MetadConfig()  # further run options (steps, temperature_K, upper_walls, ...)

    @model_validator(mode="after")
    def _stage_sets_the_source(self):
        given = sorted({"calculator", "teacher_options", "structure", "channel", "reactions", "cv"}
                       & self.options.model_fields_set)
        if given:
            raise ValueError(f"options: {given} are set by the stage (model, geometries, channel, reactions)")
        return self

    def job_config(self, model_path: str | Path) -> MetadConfig:
        """The metadynamics job of one arm's model from the channel's TS geometry."""
        from ffpt.config import parse_config
        from ffpt.systems.h2combustion import stationary_point_path

        return parse_config(MetadConfig, {
            **self.options.model_dump(exclude_unset=True),
            "calculator": str(model_path),
            "structure": str(stationary_point_path(self.geometries, "TS", self.channel)),
            "channel": self.channel,
            "reactions": str(self.reactions),
        }, source="metad")


class ExperimentActiveLearning(ActiveLearningSettings):
    """Active learning for each arm, from the arm's model at ``budget`` labels (the smallest budget by
    default): the same initial labels, teacher, selection rule and label budget for both arms."""

    budget: int | None = Field(None, ge=1, description="starting labels: one of budgets (default the smallest)")
    arms: list[Literal["ffpt-ft", "scratch"]] = Field(["ffpt-ft", "scratch"], min_length=1)


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
    stability: StabilityConfig | None = None
    metad: MetadStageConfig | None = None
    active_learning: ExperimentActiveLearning | None = None

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

    @property
    def stability_budgets(self) -> list[int]:
        """The budgets with MD stability runs (sorted; empty without a stability section)."""
        if self.stability is None:
            return []
        return sorted(set(self.stability.budgets or self.budgets))

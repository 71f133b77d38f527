"""The sampling configuration, filled from YAML and/or command-line flags (validated by pydantic)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from ffpt.config import Strict

class SeedSpec(Strict):
    """One source of seed structures: exactly one of ``smiles``, ``file``, ``combustion``."""

    smiles: str | None = None
    file: Path | None = None
    combustion: Path | None = None  # hydrogen-combustion data directory (holds reactions.json)
    name: str | None = None
    index: str = ":"  # file: frames to take (ase index string)
    isolate: bool | None = None  # file: cut molecules out (default: when the frame is periodic)
    max_molecules: PositiveInt | None = None  # file: keep the first N molecules cut out
    channels: list[str] | None = None  # combustion: default all
    kinds: list[Literal["reactant", "TS", "product"]] = ["reactant", "TS", "product"]
    topology: Literal["self", "reactant", "product"] = "self"  # combustion: whose bonds are kept

    @model_validator(mode="after")
    def _one_source(self):
        given = [k for k in ("smiles", "file", "combustion") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"a seed needs exactly one of smiles, file, combustion (got {given or 'none'})")
        return self


class MDConfig(Strict):
    """Langevin MD with the teacher: ``frames`` per seed and temperature (K), one every ``stride`` steps.
    With ``densities`` (g/cm^3) each periodic seed box is first rescaled rigidly to each density
    (:mod:`ffpt.sampling.density_range`) and the frames of a temperature are split evenly over them."""

    temperatures: list[PositiveFloat] = [300.0, 1000.0, 3000.0]
    # g/cm^3: sample each periodic seed box at these mass densities (molecules moved rigidly, cell scaled)
    densities: list[PositiveFloat] | None = Field(None, min_length=1)
    frames: int = Field(100, ge=0)
    stride: PositiveInt = 10
    timestep: PositiveFloat = 0.5  # fs
    friction: PositiveFloat = 0.01  # 1/fs
    equilibration: int = Field(100, ge=0)  # steps before the first frame
    overlap: float = Field(0.5, ge=0)  # skip frames with atoms closer than this x covalent-radius sum


class NormalModeConfig(Strict):
    """Normal-mode sampling: ``frames`` per seed and temperature (K)."""

    temperatures: list[PositiveFloat] = [300.0, 1000.0, 3000.0]
    frames: int = Field(100, ge=0)
    optimize: bool = True  # start from the force-field minimum
    delta: PositiveFloat = 0.005  # finite-difference step of the Hessian, A
    overlap: float = Field(0.5, ge=0)  # redraw when atoms are closer than this x covalent-radius sum (see labelling)


class RandomConfig(Strict):
    """Random Gaussian displacements: ``frames`` per seed and width ``sigma`` (A)."""

    sigmas: list[PositiveFloat] = [0.02, 0.05, 0.1]
    frames: int = Field(100, ge=0)
    overlap: float = Field(0.5, ge=0)  # redraw when atoms are closer than this x covalent-radius sum (see labelling)


class CompressedConfig(Strict):
    """Compressed contacts: ``frames`` per seed, each with one intramolecular pair (bonded, or
    non-bonded if ``nonbonded``) at a uniform ``min_factor``..``max_factor`` x its seed distance."""

    frames: int = Field(50, ge=0)
    min_factor: PositiveFloat = 0.5
    max_factor: PositiveFloat = 0.9
    nonbonded: bool = True

    @model_validator(mode="after")
    def _range(self):
        if self.min_factor > self.max_factor:
            raise ValueError(f"min_factor ({self.min_factor}) must not exceed max_factor ({self.max_factor})")
        return self


class CrowdedConfig(Strict):
    """Crowded frames (:mod:`ffpt.sampling.crowded`): ``frames`` clusters of ``molecules`` sampled
    molecules each, atoms of different molecules ``min_distance`` to ``min_distance + shell`` A apart
    at the closest contact; labels are the sum of each molecule's own force-field labels."""

    frames: int = Field(500, ge=0)
    molecules: int = Field(4, ge=2)
    min_distance: PositiveFloat = 2.0
    shell: PositiveFloat = 1.0


class SamplerSettings(Strict):
    """How to sample and label around seeds (everything but the seeds and the output file);
    ``None`` for a sampler switches it off. The ``pretraining`` section of an experiment."""

    teacher: str = "uff"
    teacher_options: dict[str, Any] = {}  # --teacher-option KEY=VALUE
    seed: int = 0
    split: bool = True  # sample each molecule of a seed on its own (lone atoms dropped)
    md: MDConfig | None = MDConfig()
    normal_modes: NormalModeConfig | None = NormalModeConfig()
    random: RandomConfig | None = RandomConfig()
    compressed: CompressedConfig | None = None  # off unless asked for
    crowded: CrowdedConfig | None = None  # off unless asked for; made from the other samplers' frames


class SamplingConfig(SamplerSettings):
    """Everything ``ffpt sample`` needs: the settings, the seeds and the output file."""

    seeds: list[SeedSpec] = Field(min_length=1)
    out: Path
    workers: int = Field(1, ge=1)  # processes of the embedded Dask cluster (1: in this process)
    scheduler: str | None = None  # tcp://HOST:PORT or scheduler file of a running Dask cluster

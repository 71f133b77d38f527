"""Validated configuration of MD runs (YAML or flags). Units: fs, K, A.

Unknown keys and wrong types are errors that name the key; the resolved config is saved
next to every run (``md_config.yaml``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class ConfigError(ValueError):
    """A bad configuration; the message names the file and key at fault."""


class MonitorConfig(BaseModel):
    """Stability monitors; a monitor set to ``None`` is off. Non-finite energy/forces is always on."""

    model_config = ConfigDict(extra="forbid")

    min_distance: float | None = Field(0.5, gt=0, description="fail when two atoms are closer (A)")
    min_pair_distance: dict[str, float] | None = Field(
        None, description="per element pair, e.g. {'O-O': 2.2}: fail when two such atoms are closer (A)"
    )
    max_bond_deviation: float | None = Field(
        None, gt=0, description="fail when a start-frame bond deviates more than this (A); 0.5 for molecules"
    )
    allowed_species: list[str] | None = Field(
        None, description="Hill formulas of allowed molecules, e.g. ['H2', 'O2', 'HO', 'H2O']"
    )
    species_patience_fs: float = Field(
        0.0, ge=0, description="foreign species must persist this long before the run fails (fs)"
    )
    reference_rdf: Path | None = Field(None, description="RDF json or reference trajectory (liquids)")
    rdf_threshold: float = Field(1.5, gt=0, description="fail when sum over pairs of int |g-g_ref| dr exceeds (A)")
    rdf_window: int = Field(20, ge=1, description="number of checked frames in the RDF window")
    rdf_rmax: float = Field(6.0, gt=0, description="RDF range (A) when the reference is a trajectory")
    rdf_bins: int = Field(120, ge=2, description="RDF bins when the reference is a trajectory (a json keeps its own)")
    rdf_pairs: list[str] | None = Field(None, description="element pairs like 'O-H'; default: all pairs")


class MDConfig(BaseModel):
    """One MD run: integrator, thermostat, output and monitors."""

    model_config = ConfigDict(extra="forbid")

    calculator: str | None = Field(None, description="model file or teacher name (name:key=value,...)")
    structure: Path | None = Field(None, description="starting structure (any ASE-readable file)")
    structure_index: int = Field(0, description="frame of the structure file to start from")
    steps: int = Field(1000, ge=1)
    timestep_fs: float = Field(0.5, gt=0)
    temperature_K: float = Field(300.0, ge=0, description="initial velocities and thermostat target")
    ensemble: Literal["nve", "langevin", "bussi"] = "nve"
    friction_per_fs: float = Field(0.01, gt=0, description="Langevin friction (1/fs)")
    taut_fs: float = Field(100.0, gt=0, description="Bussi coupling time (fs)")
    seed: int = Field(0, ge=0)
    save_every: int = Field(10, ge=1, description="steps between saved frames (and checkpoints)")
    check_every: int = Field(10, ge=1, description="steps between stability checks")
    trajectory_format: Literal["extxyz", "traj"] = "extxyz"
    fix_com: bool = Field(True, description="keep the centre of mass fixed (removes 3 degrees of freedom)")
    zero_rotation: bool = Field(True, description="remove initial angular momentum of non-periodic systems")
    monitors: MonitorConfig = Field(default_factory=MonitorConfig)

    @model_validator(mode="after")
    def _thermostat_needs_temperature(self) -> "MDConfig":
        if self.ensemble != "nve" and self.temperature_K <= 0:
            raise ValueError(f"ensemble '{self.ensemble}' needs temperature_K > 0")
        return self

    def resume_compatible(self, other: "MDConfig") -> list[str]:
        """Keys (other than ``steps``) whose values differ: a run cannot resume across them."""
        mine, theirs = self.model_dump(mode="json"), other.model_dump(mode="json")
        return sorted(k for k in mine if k != "steps" and mine[k] != theirs[k])


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "<root>"
        lines.append(f"{source}: key '{key}': {err['msg']}")
    return "\n".join(lines)


def make_md_config(values: dict[str, Any], source: str = "config") -> MDConfig:
    """Validate a mapping into :class:`MDConfig`; errors name ``source`` and the key."""
    try:
        return MDConfig.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None


def load_md_config(path: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None) -> MDConfig:
    """Read a YAML file (optional), apply ``overrides`` (``None`` values are ignored), validate.

    Override keys may be dotted (``"monitors.min_distance"``).
    """
    values: dict[str, Any] = {}
    source = "flags"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.exists():
            raise ConfigError(f"{path}: no such config file")
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: top level must be a mapping, got {type(loaded).__name__}")
        values = loaded
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        target = values
        *parents, leaf = key.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
            if not isinstance(target, dict):
                raise ConfigError(f"{source}: key '{parent}' must be a mapping")
        target[leaf] = value
    return make_md_config(values, source)


"""Validated configuration of MD runs (YAML or flags). Units: fs, K, A.

Unknown keys and wrong types are errors that name the key; the resolved config is saved
next to every run (``md_config.yaml``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from ffpt.config import Strict


class MonitorConfig(Strict):
    """Stability monitors; a monitor set to ``None`` is off. Non-finite energy/forces is always on."""

    min_distance: float | None = Field(0.5, gt=0, description="fail when two atoms are closer (A)")
    min_pair_distance: dict[str, float] | None = Field(
        None, description="per element pair, e.g. {'O-O': 2.2}: fail when two such atoms are closer (A)"
    )
    max_bond_deviation: float | None = Field(
        None, gt=0, description="fail when a start-frame bond deviates more than this (A); 0.5 for molecules"
    )
    bond_reference: Literal["relaxed", "start"] = Field(
        "relaxed", description="bond reference lengths: the start frame relaxed with the run's calculator"
        " (start frame if that does not converge), or the start frame itself; which pairs are bonds"
        " always comes from the start frame"
    )
    relax_fmax: float = Field(0.05, gt=0, description="relaxation of the bond reference converges below (eV/A)")
    relax_steps: int = Field(300, ge=1, description="at most this many optimiser steps for the bond reference")
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


class UncertaintyConfig(Strict):
    """Committee disagreement along a run (calculators with ``forces_std``, e.g. several model files).
    Recorded by default for a committee; the thresholds act on the largest per-atom force spread."""

    every: int = Field(1, ge=1, description="steps between recorded values")
    mark_above: float | None = Field(
        None, gt=0, description="count frames whose max force spread exceeds this (eV/A) and note the first")
    stop_above: float | None = Field(
        None, gt=0, description="stop the run when the max force spread exceeds this (eV/A); off by default")


class MDConfig(Strict):
    """One MD run: integrator, thermostat, output and monitors."""

    calculator: str | list[str] | None = Field(
        None, description="model file, teacher name, or a committee: a list of model files or a committee.json")
    teacher_options: dict[str, Any] = Field(default_factory=dict, description="options of a teacher calculator")
    structure: Path | None = Field(None, description="starting structure (any ASE-readable file)")
    structure_index: int = Field(0, description="frame of the structure file to start from")
    steps: int = Field(1000, ge=1)
    timestep_fs: float = Field(0.5, gt=0)
    temperature_K: float = Field(300.0, ge=0, description="initial velocities and thermostat target")
    ensemble: Literal["nve", "langevin", "bussi", "npt"] = "nve"
    friction_per_fs: float = Field(0.01, gt=0, description="Langevin friction (1/fs)")
    taut_fs: float = Field(100.0, gt=0, description="Bussi or NPT (Nose-Hoover chain) thermostat coupling time (fs)")
    pressure_bar: float = Field(1.01325, description="NPT target pressure (bar)")
    taup_fs: float = Field(1000.0, gt=0, description="NPT (MTK) barostat coupling time (fs)")
    nvt_steps: int = Field(0, ge=0, description=(
        "NPT only: steps at fixed cell (Bussi thermostat, taut_fs) before the barostat starts, so that a start "
        "frame made with another potential sheds its strain before the cell moves"))
    seed: int = Field(0, ge=0)
    batch: int | None = Field(None, ge=1, description=(
        "with several seeds: run this many replicas together, one model call per step for all of them "
        "(ensembles nve, langevin, bussi); unset: one replica at a time"))
    save_every: int = Field(10, ge=1, description="steps between saved frames (and checkpoints)")
    check_every: int = Field(10, ge=1, description="steps between stability checks")
    trajectory_format: Literal["extxyz", "traj"] = "extxyz"
    fix_com: bool = Field(True, description="keep the centre of mass fixed (removes 3 degrees of freedom)")
    zero_rotation: bool = Field(True, description="remove initial angular momentum of non-periodic systems")
    monitors: MonitorConfig = Field(default_factory=MonitorConfig)
    uncertainty: UncertaintyConfig | None = Field(
        None, description="committee disagreement record and thresholds (default: recorded for a committee)")

    @model_validator(mode="after")
    def _thermostat_needs_temperature(self) -> "MDConfig":
        if self.ensemble != "nve" and self.temperature_K <= 0:
            raise ValueError(f"ensemble '{self.ensemble}' needs temperature_K > 0")
        if self.batch is not None and self.ensemble == "npt":
            raise ValueError("batch: batched replicas run nve, langevin or bussi; npt runs one replica at a time")
        if self.nvt_steps and self.ensemble != "npt":
            raise ValueError(f"nvt_steps is the NVT lead-in of ensemble 'npt', not of '{self.ensemble}'")
        return self

"""Simulations with any ASE calculator: one MD engine with stability monitors, well-tempered metadynamics."""

from ffpt.simulate.calculators import resolve
from ffpt.simulate.config import MDConfig, MonitorConfig
from ffpt.simulate.md import MDResult, run_md
from ffpt.simulate.metad import MetadParameters, MetadynamicsCalculator, Wall, run_metadynamics
from ffpt.simulate.monitors import build_monitors

__all__ = [
    "MDConfig",
    "MDResult",
    "MetadParameters",
    "MetadynamicsCalculator",
    "MonitorConfig",
    "Wall",
    "build_monitors",
    "resolve",
    "run_md",
    "run_metadynamics",
]

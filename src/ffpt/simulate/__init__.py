"""Simulations with any ASE calculator: one MD engine (:mod:`ffpt.dynamics.engine`) with observers
(stability monitors, trajectory sinks, hill deposition), ``ffpt md`` runs and well-tempered metadynamics."""

from ffpt.simulate.calculators import resolve
from ffpt.simulate.config import MDConfig, MonitorConfig
from ffpt.dynamics.engine import Dynamics, Integrator, MDResult, MDState, MonitorObserver, Observer, Stop
from ffpt.simulate.md import run_md
from ffpt.simulate.metad import MetadParameters, MetadynamicsCalculator, Wall, run_metadynamics
from ffpt.simulate.monitors import build_monitors

__all__ = [
    "Dynamics",
    "Integrator",
    "MDConfig",
    "MDResult",
    "MDState",
    "MetadParameters",
    "MetadynamicsCalculator",
    "MonitorConfig",
    "MonitorObserver",
    "Observer",
    "Stop",
    "Wall",
    "build_monitors",
    "resolve",
    "run_md",
    "run_metadynamics",
]

"""ffpt models inside OpenMM through ``openmmml`` (``pip install ffpt[openmm]``).

The entry point ``ffpt`` in the group ``openmmml.potentials`` registers :class:`FfptPotentialImplFactory`
when ``openmmml`` is imported, so::

    from openmmml import MLPotential
    potential = MLPotential("ffpt", model="runs/ft/model.pt")          # spin=, charge=, device=, dtype=
    system = potential.createSystem(topology)                          # the whole topology
    mixed = potential.createMixedSystem(topology, mm_system, ml_atoms)  # ML/MM: the model on ml_atoms

The model runs as an ASE calculator (:class:`~ffpt.models.calculator.MLIPCalculator`) in an OpenMM
``PythonForce`` (openmmml's ``ase`` implementation), which converts at the edge: OpenMM's nm and kJ/mol
to and from ffpt's Angstrom and eV. ``openmmtorch`` is not needed (its PyPI wheels need CUDA).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from ase import Atoms
from openmm import unit
from openmmml.mlpotential import MLPotentialImpl, MLPotentialImplFactory

from ffpt import keys
from ffpt.models.calculator import MLIPCalculator
from ffpt.models.model_file import load_model
from ffpt.models.potential import InteratomicPotential, ModelInputError
from ffpt.units import NM_PER_A


class FfptPotentialImplFactory(MLPotentialImplFactory):
    """Makes :class:`FfptPotentialImpl` for ``MLPotential("ffpt", model=..., ...)``."""

    def createImpl(self, name: str, **args) -> MLPotentialImpl:
        return FfptPotentialImpl(name, **args)


class FfptPotentialImpl(MLPotentialImpl):
    """An ffpt model in an OpenMM System.

    ``model``: an ffpt model file (or an :class:`InteratomicPotential`); ``spin`` (multiplicity 2S+1)
    and ``charge`` (e): the model's inputs for the atoms it computes; ``device`` ("cpu", "cuda");
    ``dtype`` ("float32", "float64"; default: the model file's). ``createSystem`` and
    ``createMixedSystem`` take ``spin`` and ``charge`` too, overriding these.
    """

    def __init__(self, name: str, model: str | os.PathLike | InteratomicPotential | None = None,
                 spin: int | None = None, charge: int | None = None, device: str = "cpu",
                 dtype: str | None = None):
        if model is None:
            raise ModelInputError(f'MLPotential("{name}") needs model=PATH (an ffpt model file)')
        if isinstance(model, InteratomicPotential):
            self.model, self.source = model, "in memory"
        else:
            self.model, self.source = load_model(model, device=device), str(model)
        self.name, self.spin, self.charge, self.device = name, spin, charge, device
        self.dtype = getattr(torch, dtype) if dtype else None

    def addForces(self, topology, system, atoms, forceGroup: int, **args):
        """Add a ``PythonForce`` computing the model on ``atoms`` (indices; None: all) of ``topology``."""
        from openmmml.models.asepotential import ASEPotentialImpl

        included = list(topology.atoms())
        if atoms is not None:
            included = [included[i] for i in atoms]
        unknown = [a.index for a in included if a.element is None]
        if unknown:
            raise ModelInputError(f"OpenMM topology atom {unknown[0]}: no element; the ffpt model needs one")
        box = topology.getPeriodicBoxVectors()  # nm; OpenMM sets the current box at each evaluation
        cell = None if box is None else np.asarray(box.value_in_unit(unit.nanometer)) / NM_PER_A
        ase_atoms = Atoms(numbers=[a.element.atomic_number for a in included], cell=cell, pbc=box is not None)
        inputs = {keys.SPIN: args.get("spin", self.spin), keys.CHARGE: args.get("charge", self.charge)}
        ase_atoms.info.update({key: value for key, value in inputs.items() if value is not None})
        calculator = MLIPCalculator(self.model, device=self.device, dtype=self.dtype, source=self.source)
        calculator.check_atoms(ase_atoms, where="OpenMM topology")  # element, named by index in the ML subset
        self.model.check_frame(ase_atoms, where="OpenMM topology")  # a spin the model cannot take
        ase_atoms.calc = calculator
        ASEPotentialImpl(self.name).addForces(topology, system, atoms, forceGroup, aseAtoms=ase_atoms)

    def getMLLongRange(self) -> bool:
        """ffpt models are local (a cutoff; no long-range term): for openmmml's ML/MM embeddings."""
        return False

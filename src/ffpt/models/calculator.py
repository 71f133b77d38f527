"""The ASE calculator of an ffpt model: energy (eV), forces (eV/A), stress (eV/A^3, periodic cells)."""

from __future__ import annotations

import os

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes
from ase.data import chemical_symbols
from ase.stress import full_3x3_to_voigt_6_stress

from ffpt.data.frames import DataError, check_cell
from ffpt import keys
from ffpt.models.graph import NeighborListBuilder, graph_from_atoms
from ffpt.models.model_file import load_model
from ffpt.models.potential import InteratomicPotential, check_spin


class UnknownElementError(DataError, KeyError):
    """A structure with an element the model was not trained on (also a ``KeyError``, as the graph's)."""

    __str__ = BaseException.__str__  # no quotes around the message, unlike KeyError's


def check_structure(model, atoms, source: str, where: str | None = None) -> None:
    """A :class:`DataError` for a structure ``model`` (anything with ``elements``; read from the file
    ``source``) cannot evaluate:
    an element it was not trained on (naming the atom index, element and model file) or a periodic
    cell of zero volume. ``where`` (e.g. "water.xyz frame 3") prefixes the message."""
    prefix = f"{where}, " if where else ""
    known = np.isin(atoms.numbers, model.elements)
    if not known.all():
        i = int(np.flatnonzero(~known)[0])
        missing = sorted({chemical_symbols[z] for z in atoms.numbers[~known]})
        names = ", ".join(chemical_symbols[z] for z in model.elements)
        raise UnknownElementError(f"{prefix}atom {i} ({chemical_symbols[atoms.numbers[i]]}): element(s) "
                                  f"{missing} not known to model {source} (elements: {names})")
    check_cell(atoms, where or "frame")


class GraphCalculator(Calculator):
    """What the eager and the exported calculator share: the frame checks (elements, cell, spin), the
    neighbour list (vesin) and ASE's results. Subclasses set ``elements``, ``cutoff`` (A), ``max_spin``,
    ``architecture``, ``dtype``, ``device``, ``source`` and implement :meth:`evaluate`."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]
    elements: list[int]
    cutoff: float  # A
    max_spin: int
    architecture: str
    dtype: torch.dtype
    device: torch.device
    source: str

    def evaluate(self, graph, stress: bool) -> tuple[float, np.ndarray, np.ndarray | None]:  # pragma: no cover
        """Energy (eV), forces (N, 3) eV/A and, if ``stress``, the stress (3, 3) eV/A^3 of a one-frame graph."""
        raise NotImplementedError

    def check_atoms(self, atoms, where: str | None = None) -> None:
        """See :func:`check_structure`."""
        check_structure(self, atoms, self.source, where)

    def check_state(self, atoms, tol=1e-15):
        """ASE's checks plus the frame's spin multiplicity and charge (inputs of the model)."""
        changes = super().check_state(atoms, tol)
        if self.atoms is not None:
            for key in (keys.SPIN, keys.CHARGE):
                if atoms.info.get(key) != self.atoms.info.get(key):
                    changes.append(key)
        return changes

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        check_spin(self.atoms, self.max_spin, self.architecture)  # a spin the model would ignore: user error
        self.check_atoms(self.atoms)
        want_stress = "stress" in properties and bool(self.atoms.pbc.all())
        if "stress" in properties and not want_stress:
            raise NotImplementedError("stress needs a cell periodic in all three directions")
        graph = graph_from_atoms(self.atoms, self.elements, self.neighbors, dtype=self.dtype).to(self.device)
        self.results = self.graph_results(graph, want_stress)

    def graph_results(self, graph, stress: bool) -> dict:
        """ASE's results (energy eV, forces eV/A, stress as Voigt 6-vector eV/A^3) of a one-frame graph."""
        energy, forces, stress_3x3 = self.evaluate(graph, stress)
        results = {"energy": energy, "free_energy": energy, "forces": forces}
        if stress:
            results["stress"] = full_3x3_to_voigt_6_stress(stress_3x3)
        return results


class MLIPCalculator(GraphCalculator):
    """Serves any :class:`InteratomicPotential` to ASE. ``source``: the model file, named in errors."""

    def __init__(
        self,
        model: InteratomicPotential,
        device: str = "cpu",
        dtype: torch.dtype | None = None,
        compile: bool = False,
        source: str | os.PathLike | None = None,
        **kwargs,
    ):
        """``compile``: run the network through ``torch.compile`` (dynamic shapes). The first call then
        takes minutes (code generation); later calls are faster (about 3x for NewtonNet on CPU)."""
        super().__init__(**kwargs)
        self.source = str(source) if source is not None else "in memory"
        self.device = torch.device(device)
        self.model = model.to(device=self.device, dtype=dtype) if dtype else model.to(self.device)
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        if compile:
            self.model.atomic_energies = torch.compile(self.model.atomic_energies, dynamic=True)
        self.dtype = next(self.model.parameters()).dtype
        self.elements, self.max_spin, self.architecture = model.elements, model.max_spin, model.architecture
        self.cutoff = float(self.model.cutoff)
        self.neighbors = NeighborListBuilder(self.model.cutoff)

    @classmethod
    def from_file(
        cls, path: str | os.PathLike, device: str = "cpu", dtype: torch.dtype | None = None, compile: bool = False,
        **kwargs,
    ):
        return cls(load_model(path, device=device), device=device, dtype=dtype, compile=compile, source=path,
                   **kwargs)

    def evaluate(self, graph, stress: bool):
        pred = self.model(graph, forces=True, stress=stress)
        forces = pred.forces.detach().cpu().numpy().astype(float)
        return float(pred.energy.detach().cpu().sum()), forces, (
            pred.stress[0].detach().cpu().numpy().astype(float) if stress else None)

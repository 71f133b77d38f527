"""The ASE calculator of an ffpt model: energy (eV), forces (eV/A), stress (eV/A^3, periodic cells)."""

from __future__ import annotations

import os

import torch
from ase.calculators.calculator import Calculator, all_changes

from ffpt import keys
from ffpt.models.graph import NeighborListBuilder, graph_from_atoms
from ffpt.models.model_file import load_model
from ffpt.models.potential import InteratomicPotential


class MLIPCalculator(Calculator):
    """Serves any :class:`InteratomicPotential` to ASE."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(
        self,
        model: InteratomicPotential,
        device: str = "cpu",
        dtype: torch.dtype | None = None,
        compile: bool = False,
        **kwargs,
    ):
        """``compile``: run the network through ``torch.compile`` (dynamic shapes). The first call then
        takes minutes (code generation); later calls are faster (about 3x for NewtonNet on CPU)."""
        super().__init__(**kwargs)
        self.device = torch.device(device)
        self.model = model.to(device=self.device, dtype=dtype) if dtype else model.to(self.device)
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        if compile:
            self.model.atomic_energies = torch.compile(self.model.atomic_energies, dynamic=True)
        self.dtype = next(self.model.parameters()).dtype
        self.neighbors = NeighborListBuilder(self.model.cutoff)

    @classmethod
    def from_file(
        cls, path: str | os.PathLike, device: str = "cpu", dtype: torch.dtype | None = None, compile: bool = False,
        **kwargs,
    ):
        return cls(load_model(path, device=device), device=device, dtype=dtype, compile=compile, **kwargs)

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
        self.model.check_frame(self.atoms)  # a spin the model would ignore is a user error naming the frame
        graph = graph_from_atoms(self.atoms, self.model.elements, self.neighbors, dtype=self.dtype)
        graph = graph.to(self.device)
        want_stress = "stress" in properties and bool(self.atoms.pbc.all())
        pred = self.model(graph, forces=True, stress=want_stress)
        energy = float(pred.energy.detach().cpu().sum())
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": pred.forces.detach().cpu().numpy().astype(float),
        }
        if want_stress:
            from ase.stress import full_3x3_to_voigt_6_stress

            self.results["stress"] = full_3x3_to_voigt_6_stress(pred.stress[0].detach().cpu().numpy().astype(float))
        elif "stress" in properties:
            raise NotImplementedError("stress needs a cell periodic in all three directions")

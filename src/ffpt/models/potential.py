"""What every ffpt architecture is: atomic energies from a graph, plus per-element references.

E = sum_i [ scale * e_i(network) + ref(Z_i) ] + E_repulsion (optional ZBL core repulsion)  (eV); forces = -dE/dr and stress = (1/V) dE/d(strain)
by autograd. Architectures implement :meth:`InteratomicPotential.atomic_energies`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ffpt.models.graph import AtomicGraph


@dataclass
class Prediction:
    """Energy (G,) eV, forces (N, 3) eV/A, stress (G, 3, 3) eV/A^3 (if asked)."""

    energy: torch.Tensor
    forces: torch.Tensor | None = None
    stress: torch.Tensor | None = None


class InteratomicPotential(nn.Module):
    """Base class: holds elements, cutoff, per-element reference energies and an energy scale."""

    architecture: str = ""
    head_name: str = "head"  # the output part that fine-tuning may re-initialise

    def __init__(self, elements: list[int], cutoff: float):
        super().__init__()
        self.elements = [int(z) for z in elements]
        self.cutoff = float(cutoff)
        self.register_buffer("references", torch.zeros(len(self.elements)))  # eV per atom of element
        self.register_buffer("energy_scale", torch.ones(()))  # eV per network unit
        self.repulsion: nn.Module | None = None  # optional pair prior, e.g. ZBLRepulsion (eV per graph)

    def hparams(self) -> dict:  # pragma: no cover - abstract
        """Constructor arguments (JSON-able), so a model file can rebuild the network."""
        raise NotImplementedError

    def atomic_energies(self, graph: AtomicGraph, edge_vectors: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        """Network atomic energies (N,), in units of ``energy_scale``."""
        raise NotImplementedError

    def network_energy(self, graph: AtomicGraph, edge_vectors: torch.Tensor) -> torch.Tensor:
        """Energy per graph (G,) without the reference energies (network plus repulsion prior), eV."""
        e = self.atomic_energies(graph, edge_vectors) * self.energy_scale
        energy = torch.zeros(graph.n_graphs, dtype=e.dtype, device=e.device).index_add_(0, graph.batch, e)
        if self.repulsion is not None:
            energy = energy + self.repulsion(graph, edge_vectors)
        return energy

    def reference_energy(self, graph: AtomicGraph) -> torch.Tensor:
        """Sum of per-element reference energies per graph (G,), eV."""
        ref = self.references[graph.species]
        return torch.zeros(graph.n_graphs, dtype=ref.dtype, device=ref.device).index_add_(0, graph.batch, ref)

    def forward(
        self, graph: AtomicGraph, forces: bool = True, stress: bool = False, training: bool = False
    ) -> Prediction:
        positions, cell = graph.positions, graph.cell
        strain = None
        if forces and not positions.requires_grad:
            positions = positions.detach().requires_grad_(True)
        if stress:
            strain = torch.zeros_like(cell, requires_grad=True)
            sym = 0.5 * (strain + strain.transpose(1, 2))
            positions = positions + torch.einsum("ni,nij->nj", positions, sym[graph.batch])
            cell = cell + torch.bmm(cell, sym)
        vectors = graph.edge_vectors(positions, cell)
        energy = self.network_energy(graph, vectors) + self.reference_energy(graph)
        out = Prediction(energy=energy)
        if forces or stress:
            inputs = [positions] + ([strain] if stress else [])
            grads = torch.autograd.grad(energy.sum(), inputs, create_graph=training)
            if forces:
                out.forces = -grads[0]
            if stress:
                volume = torch.linalg.det(graph.cell).abs().view(-1, 1, 1)
                out.stress = grads[-1] / volume
        return out

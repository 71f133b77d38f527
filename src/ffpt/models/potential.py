"""What every ffpt architecture is: atomic energies from a graph, plus per-element references.

E = sum_i [ scale * e_i(network) + ref(Z_i) ] + E_repulsion (optional ZBL core repulsion)  (eV); forces = -dE/dr and stress = (1/V) dE/d(strain)
by autograd. Architectures implement :meth:`InteratomicPotential.atomic_energies`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ffpt import keys
from ffpt.data.frames import default_multiplicity, describe_frame, spin_of
from ffpt.errors import UserError
from ffpt.models.graph import AtomicGraph


class ModelInputError(UserError):
    """A frame this model cannot take as it is (e.g. a spin state it has no input for); names the frame."""


@dataclass
class Prediction:
    """Energy (G,) eV, forces (N, 3) eV/A, stress (G, 3, 3) eV/A^3 (if asked)."""

    energy: torch.Tensor
    forces: torch.Tensor | None = None
    stress: torch.Tensor | None = None


def check_spin(atoms, max_spin: int, architecture: str, where: str | None = None) -> None:
    """Raise :class:`ModelInputError` naming the frame if a model with spin input up to ``max_spin``
    (0: none) would ignore or cannot take the frame's spin (``info["spin"]``): a model without spin
    input takes only the default multiplicity (the lowest for the electron count), never silently
    another state."""
    spin = spin_of(atoms)
    if spin is None:
        return
    where = where or describe_frame(atoms)
    if max_spin == 0 and spin != default_multiplicity(atoms):
        raise ModelInputError(
            f"{where}: spin multiplicity {spin} (info['spin']), but architecture '{architecture}' has no "
            f"spin input and would ignore it; drop info['spin'] or train a model with spin input "
            f"(newtonnet, model.options.spin_states)"
        )
    if max_spin and spin > max_spin:
        raise ModelInputError(f"{where}: spin multiplicity {spin} above this model's {max_spin}")


def cell_volume(cell: torch.Tensor) -> torch.Tensor:
    """|a . (b x c)| of cells (G, 3, 3), A^3 (a triple product, not ``linalg.det``: exports to plain ops)."""
    return torch.linalg.cross(cell[:, 0], cell[:, 1]).mul(cell[:, 2]).sum(-1).abs()


class InteratomicPotential(nn.Module):
    """Base class: holds elements, cutoff, per-element reference energies and an energy scale."""

    architecture: str = ""
    head_name: str = "head"  # the output part that fine-tuning may re-initialise

    @classmethod
    def saved_hparams(cls, hparams: dict) -> dict:
        """The constructor arguments of a model file's ``hparams``: an architecture whose defaults changed
        fills in what older files meant."""
        return hparams

    def __init__(self, elements: list[int], cutoff: float):
        super().__init__()
        self.elements = [int(z) for z in elements]
        self.cutoff = float(cutoff)
        self.register_buffer("references", torch.zeros(len(self.elements)))  # eV per atom of element
        self.register_buffer("energy_scale", torch.ones(()))  # eV per network unit
        self.repulsion: nn.Module | None = None  # optional pair prior, e.g. ZBLRepulsion (eV per graph)

    @property
    def max_spin(self) -> int:
        """Highest spin multiplicity the model takes as input; 0: no spin input."""
        return 0

    def check_frame(self, atoms, where: str | None = None) -> None:
        """See :func:`check_spin`."""
        check_spin(atoms, self.max_spin, self.architecture, where)

    def _check_graph_spin(self, graph: AtomicGraph) -> None:
        """:meth:`check_frame` for frames already made graphs (spins valid for their electron count, so
        a multiplicity >= 3 is never the default); the frame is named by formula and batch entry."""
        limit = self.max_spin or 2
        if graph.spin.numel() == 0 or int(graph.spin.max()) <= limit:
            return
        k = int(torch.argmax(graph.spin))
        numbers = [self.elements[int(s)] for s in graph.species[graph.batch == k]]
        from ase import Atoms

        frame = Atoms(numbers=numbers)
        frame.info[keys.SPIN] = int(graph.spin[k])
        self.check_frame(frame, where=f"{describe_frame(frame)} (batch entry {k})")

    def hparams(self) -> dict:  # pragma: no cover - abstract
        """Constructor arguments (JSON-able), so a model file can rebuild the network."""
        raise NotImplementedError

    def atomic_energies(self, graph: AtomicGraph, edge_vectors: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        """Network atomic energies (N,), in units of ``energy_scale``."""
        raise NotImplementedError

    def network_energy(self, graph: AtomicGraph, edge_vectors: torch.Tensor, check: bool = True,
                       prior: bool = True) -> torch.Tensor:
        """Energy per graph (G,) without the reference energies (network plus repulsion prior), eV.
        ``check``: refuse spins the model cannot take (data-dependent, so off when the model is traced
        for export; the caller checks the frames then). ``prior=False`` leaves the repulsion prior out."""
        if check:
            self._check_graph_spin(graph)
        e = self.atomic_energies(graph, edge_vectors) * self.energy_scale
        energy = torch.zeros(graph.n_graphs, dtype=e.dtype, device=e.device).index_add_(0, graph.batch, e)
        if self.repulsion is not None and prior:
            energy = energy + self.repulsion(graph, edge_vectors)
        return energy

    def reference_energy(self, graph: AtomicGraph) -> torch.Tensor:
        """Sum of per-element reference energies per graph (G,), eV."""
        ref = self.references[graph.species]
        return torch.zeros(graph.n_graphs, dtype=ref.dtype, device=ref.device).index_add_(0, graph.batch, ref)

    def forward(
        self, graph: AtomicGraph, forces: bool = True, stress: bool = False, training: bool = False,
        check: bool = True, prior: bool = True,
    ) -> Prediction:
        """Energy, and forces and stress by autograd. No data-dependent Python control flow past the
        spin check (``check=False`` skips it), so the whole forward traces for export. ``prior=False``:
        without the repulsion prior (the network and reference energies alone)."""
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
        energy = self.network_energy(graph, vectors, check, prior) + self.reference_energy(graph)
        out = Prediction(energy=energy)
        if forces or stress:
            inputs = [positions] + ([strain] if stress else [])
            grads = torch.autograd.grad(energy.sum(), inputs, create_graph=training)
            if forces:
                out.forces = -grads[0]
            if stress:
                # a cell without volume (not periodic) gets zero stress, finite, so that a loss that
                # masks such frames out keeps finite gradients
                volume = cell_volume(graph.cell).view(-1, 1, 1)
                periodic = volume > 0
                out.stress = grads[-1] / torch.where(periodic, volume, torch.ones_like(volume)) * periodic
        return out

"""Atomic graphs: frames as tensors with neighbour lists, batched by concatenation."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Sequence

import numpy as np
import torch
from ase import Atoms
from ase.stress import voigt_6_to_full_3x3_stress
from vesin import NeighborList

from ffpt import keys
from ffpt.data.frames import spin_of


@dataclass
class AtomicGraph:
    """One frame or a batch of frames.

    positions (N, 3) A; species (N,) index into the model's element list; batch (N,) graph of each
    atom; edge_index (2, E) as (receiver i, sender j) with r_ij = r_j - r_i + shifts @ cell;
    shifts (E, 3) integer cell offsets; cell (G, 3, 3) A; n_atoms (G,); spin (G,) multiplicity
    2S+1 (0: not given); optional labels energy (G,) eV, forces (N, 3) eV/A and stress (G, 3, 3) eV/A^3,
    with per-graph loss weights ``energy_weight``, ``forces_weight`` and ``stress_weight`` (G,): 0 leaves a
    label out of the loss (a frame without stress, or the energy of a replayed force-field frame).
    """

    positions: torch.Tensor
    species: torch.Tensor
    batch: torch.Tensor
    edge_index: torch.Tensor
    shifts: torch.Tensor
    cell: torch.Tensor
    n_atoms: torch.Tensor
    spin: torch.Tensor
    energy: torch.Tensor | None = None
    forces: torch.Tensor | None = None
    stress: torch.Tensor | None = None
    energy_weight: torch.Tensor | None = None
    forces_weight: torch.Tensor | None = None
    stress_weight: torch.Tensor | None = None

    @property
    def n_graphs(self) -> int:
        return self.n_atoms.shape[0]  # not int(): a symbolic size while export traces

    def to(self, device=None, dtype=None) -> "AtomicGraph":
        """Move to ``device``; floating tensors are cast to ``dtype`` if given."""
        out = {}
        for f in fields(self):
            t = getattr(self, f.name)
            if t is None:
                out[f.name] = None
            elif t.is_floating_point():
                out[f.name] = t.to(device=device, dtype=dtype or t.dtype)
            else:
                out[f.name] = t.to(device=device)
        return replace(self, **out)

    def edge_vectors(self, positions: torch.Tensor | None = None, cell: torch.Tensor | None = None) -> torch.Tensor:
        """r_ij (E, 3), A, differentiable in ``positions`` and ``cell``."""
        positions = self.positions if positions is None else positions
        cell = self.cell if cell is None else cell
        i, j = self.edge_index
        offsets = torch.einsum("ek,ekl->el", self.shifts.to(positions.dtype), cell[self.batch[i]])
        # index_select, not positions[j]: its backward is a scatter-add, not an accumulating index_put
        return positions.index_select(0, j) - positions.index_select(0, i) + offsets


class NeighborListBuilder:
    """Full neighbour lists within ``cutoff`` (A) from vesin; periodic along ``atoms.pbc``."""

    def __init__(self, cutoff: float):
        self.cutoff = float(cutoff)
        self._nl = NeighborList(cutoff=self.cutoff, full_list=True)

    def __call__(self, positions: np.ndarray, cell: np.ndarray, pbc) -> tuple[np.ndarray, np.ndarray]:
        pbc = np.asarray(pbc, dtype=bool)
        box = np.where(pbc[:, None], cell, 0.0) if pbc.any() else np.zeros((3, 3))
        if pbc.any() and abs(np.linalg.det(cell)) < 1e-9:
            raise ValueError("periodic frame has a degenerate cell")
        i, j, S = self._nl.compute(np.ascontiguousarray(positions, dtype=float), box, pbc, "ijS")
        return np.stack([i, j]).astype(np.int64), S.astype(np.int64)


def species_index(numbers: np.ndarray, elements: Sequence[int]) -> np.ndarray:
    """Map atomic numbers to indices of ``elements``; unknown elements raise ``KeyError``."""
    lookup = np.full(119, -1, dtype=np.int64)
    lookup[np.asarray(elements)] = np.arange(len(elements))
    idx = lookup[numbers]
    if (idx < 0).any():
        from ase.data import chemical_symbols

        missing = sorted({chemical_symbols[z] for z in numbers[idx < 0]})
        known = [chemical_symbols[z] for z in elements]
        raise KeyError(f"element(s) {missing} not known to this model (elements: {known})")
    return idx


def graph_from_atoms(
    atoms: Atoms,
    elements: Sequence[int],
    neighbors: NeighborListBuilder,
    with_labels: bool = False,
    dtype: torch.dtype = torch.get_default_dtype(),
) -> AtomicGraph:
    """Tensor form of one frame; labels taken from ``REF_energy``/``REF_forces``/``REF_stress`` if asked
    (loss weights 1; the stress weight 0 unless the frame has a stress and a cell periodic in 3D)."""
    cell = np.asarray(atoms.cell.array, dtype=float)
    edge_index, shifts = neighbors(atoms.positions, cell, atoms.pbc)
    graph = AtomicGraph(
        positions=torch.tensor(atoms.positions, dtype=dtype),
        species=torch.from_numpy(species_index(atoms.numbers, elements)),
        batch=torch.zeros(len(atoms), dtype=torch.long),
        edge_index=torch.from_numpy(edge_index),
        shifts=torch.from_numpy(shifts),
        cell=torch.tensor(cell, dtype=dtype).unsqueeze(0),
        n_atoms=torch.tensor([len(atoms)], dtype=torch.long),
        spin=torch.tensor([spin_of(atoms, default=0)], dtype=torch.long),
    )
    if with_labels:
        graph.energy = torch.tensor([float(atoms.info[keys.ENERGY])], dtype=dtype)
        graph.forces = torch.tensor(np.asarray(atoms.arrays[keys.FORCES]), dtype=dtype)
        has_stress = keys.STRESS in atoms.info and bool(atoms.pbc.all())
        stress = voigt_6_to_full_3x3_stress(np.asarray(atoms.info[keys.STRESS], dtype=float)) if has_stress \
            else np.zeros((3, 3))
        graph.stress = torch.tensor(stress, dtype=dtype).unsqueeze(0)
        graph.energy_weight = torch.ones(1, dtype=dtype)
        graph.forces_weight = torch.ones(1, dtype=dtype)
        graph.stress_weight = torch.tensor([float(has_stress)], dtype=dtype)
    return graph


LABELS = ("energy", "forces", "stress", "energy_weight", "forces_weight", "stress_weight")


def collate(graphs: Sequence[AtomicGraph]) -> AtomicGraph:
    """Concatenate graphs into one batch (edge indices offset, batch vector renumbered)."""
    offsets = torch.cumsum(torch.tensor([0] + [int(g.n_atoms.sum()) for g in graphs[:-1]]), 0)
    batch, start = [], 0
    for g in graphs:
        batch.append(g.batch + start)
        start += g.n_graphs
    labelled = all(g.energy is not None for g in graphs)

    def labels(name: str):
        return torch.cat([getattr(g, name) for g in graphs]) if labelled else None

    return AtomicGraph(
        positions=torch.cat([g.positions for g in graphs]),
        species=torch.cat([g.species for g in graphs]),
        batch=torch.cat(batch),
        edge_index=torch.cat([g.edge_index + o for g, o in zip(graphs, offsets)], dim=1),
        shifts=torch.cat([g.shifts for g in graphs]),
        cell=torch.cat([g.cell for g in graphs]),
        n_atoms=torch.cat([g.n_atoms for g in graphs]),
        spin=torch.cat([g.spin for g in graphs]),
        **{name: labels(name) for name in LABELS},
    )

"""Frames as precomputed graphs for training."""

from __future__ import annotations

from typing import Sequence

import torch
from ase import Atoms
from torch.utils.data import DataLoader, Dataset

from ffpt.models.graph import AtomicGraph, NeighborListBuilder, collate, graph_from_atoms


class GraphDataset(Dataset):
    """Labelled frames converted once to :class:`AtomicGraph` with neighbour lists at ``cutoff``."""

    def __init__(self, frames: Sequence[Atoms], elements: Sequence[int], cutoff: float, dtype=torch.float32):
        neighbors = NeighborListBuilder(cutoff)
        self.graphs = [graph_from_atoms(a, elements, neighbors, with_labels=True, dtype=dtype) for a in frames]

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, k: int) -> AtomicGraph:
        return self.graphs[k]

    def mean_neighbors(self) -> float:
        edges = sum(g.edge_index.shape[1] for g in self.graphs)
        atoms = sum(int(g.n_atoms.sum()) for g in self.graphs)
        return max(edges / max(atoms, 1), 1.0)


def loader(dataset: GraphDataset, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=collate, generator=generator)

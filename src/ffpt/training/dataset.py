"""Frames as precomputed graphs for training."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from ase import Atoms
from torch.utils.data import DataLoader, Dataset, RandomSampler

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


class EpochShuffle(RandomSampler):
    """A shuffle that is a pure function of ``(seed, epoch)``: no generator state carries over from
    one epoch to the next, so a run resumed at epoch k draws the order the uninterrupted run drew.

    Lightning calls :meth:`set_epoch` before every training epoch. Under DDP it replaces this sampler,
    a ``RandomSampler``, by a ``DistributedSampler`` seeded with ``L.seed_everything``'s seed and set
    to each epoch: each rank draws its shard of a permutation of (seed, epoch) (tests/test_training_ddp.py).
    """

    def __init__(self, dataset: Dataset, seed: int = 0):
        super().__init__(dataset)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        entropy = np.random.SeedSequence([self.seed, self.epoch]).generate_state(2, np.uint32)
        generator = torch.Generator().manual_seed(int(entropy[0]) << 32 | int(entropy[1]))
        return iter(torch.randperm(len(self.data_source), generator=generator).tolist())


def loader(dataset: GraphDataset, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    """Batches of ``dataset``; shuffled per epoch from ``(seed, epoch)`` when ``shuffle``.

    The loader's own generator (worker seeds) is seeded too, so that no loader draws from the
    global torch generator.
    """
    sampler = EpochShuffle(dataset, seed) if shuffle else None
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate, generator=generator)

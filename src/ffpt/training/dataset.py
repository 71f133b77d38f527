"""Frames as precomputed graphs for training."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from ase import Atoms
from lightning.pytorch.callbacks import Callback
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
        generator = epoch_generator(self.seed, self.epoch)
        return iter(torch.randperm(len(self.data_source), generator=generator).tolist())


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """A torch generator that is a pure function of ``(seed, epoch, stream)``."""
    words = [seed, epoch] + ([stream] if stream else [])
    entropy = np.random.SeedSequence(words).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(entropy[0]) << 32 | int(entropy[1]))


def replay_count(n_main: int, fraction: float) -> int:
    """Replay frames to add to ``n_main`` frames so that ``fraction`` of the samples are replay frames."""
    return max(1, int(round(fraction * n_main / (1 - fraction))))


class ReplayMix(Dataset):
    """The fine-tuning graphs (indices ``0..n_main-1``) followed by ``n_draw`` replay graphs drawn for
    each epoch from ``pool`` without replacement (with repeats only once the pool is used up), a pure
    function of ``(seed, epoch)``; :class:`ReplayEpoch` sets the epoch before every training epoch."""

    REPLAY_STREAM = 1  # independent of EpochShuffle's stream of the same (seed, epoch)

    def __init__(self, main: Dataset, pool: Dataset, n_draw: int, seed: int = 0):
        if len(pool) == 0:
            raise ValueError("replay pool is empty")
        self.main, self.pool, self.n_draw, self.seed = main, pool, int(n_draw), seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        generator = epoch_generator(self.seed, epoch, self.REPLAY_STREAM)
        rounds = -(-self.n_draw // len(self.pool))
        drawn = torch.cat([torch.randperm(len(self.pool), generator=generator) for _ in range(rounds)])
        self.epoch, self.drawn = epoch, drawn[: self.n_draw].tolist()

    def __len__(self) -> int:
        return len(self.main) + self.n_draw

    def __getitem__(self, k: int) -> AtomicGraph:
        n = len(self.main)
        return self.main[k] if k < n else self.pool[self.drawn[k - n]]


class ReplayEpoch(Callback):
    """Sets a :class:`ReplayMix`'s epoch at the start of every training epoch (also under DDP, where
    Lightning swaps the loader's sampler but keeps its dataset), before any of its graphs is read."""

    def __init__(self, mix: ReplayMix):
        self.mix = mix

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.mix.set_epoch(trainer.current_epoch)


def loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    """Batches of ``dataset``; shuffled per epoch from ``(seed, epoch)`` when ``shuffle``.

    The loader's own generator (worker seeds) is seeded too, so that no loader draws from the
    global torch generator.
    """
    sampler = EpochShuffle(dataset, seed) if shuffle else None
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate, generator=generator)

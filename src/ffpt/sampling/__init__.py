"""Cheap configurations for pre-training: FF MD at several temperatures, normal-mode sampling and
random displacements and compressed contacts around seed structures, each deterministic for a seed,
labelled by a teacher; optionally crowded clusters of those molecules with their own labels summed."""

from ffpt.sampling.compressed import compressed_frames
from ffpt.sampling.config import CompressedConfig, CrowdedConfig, MDConfig, NormalModeConfig, RandomConfig, SamplingConfig, SeedSpec
from ffpt.sampling.crowded import crowded_frames
from ffpt.sampling.displacements import random_frames
from ffpt.sampling.md import md_frames
from ffpt.sampling.normal_modes import NormalModes, normal_mode_frames, normal_modes
from ffpt.sampling.run import load_seeds, sample
from ffpt.sampling.seeds import Seed, from_combustion, from_file, from_smiles, split_molecules

__all__ = [
    "CompressedConfig",
    "compressed_frames",
    "CrowdedConfig",
    "crowded_frames",
    "MDConfig",
    "NormalModeConfig",
    "NormalModes",
    "RandomConfig",
    "SamplingConfig",
    "Seed",
    "SeedSpec",
    "from_combustion",
    "from_file",
    "from_smiles",
    "load_seeds",
    "md_frames",
    "normal_mode_frames",
    "normal_modes",
    "random_frames",
    "sample",
    "split_molecules",
]

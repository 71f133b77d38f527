"""The committed ethanol PBE/def2-SVP labels (``benchmarks/data/ethanol_pbe_def2svp``) as one file in the
order the experiment's abinitio stage split them, so that ``abinitio.data=FILE`` gives back the same
test, validation and fine-tuning frames without relabelling (2,263 s of PySCF):

    python benchmarks/ethanol_labels.py /tmp/ethanol_labels.extxyz
    ffpt run experiments/ethanol_mace.yaml abinitio.teacher=null abinitio.data=/tmp/ethanol_labels.extxyz --out runs/x

:func:`ffpt.data.splits.split` shuffles the frames with ``abinitio.split_seed`` (0) and cuts test (40),
validation (10) and pool (50) in that order; the inverse permutation puts each committed frame back at
its index.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ffpt.data.io import read_frames, write_frames

DATA = Path(__file__).parent / "data" / "ethanol_pbe_def2svp"


def in_sampled_order(split_seed: int = 0) -> list:
    """Test, validation and pool frames back in the order the split was drawn from."""
    parts = [read_frames(DATA / f"{name}.extxyz") for name in ("test", "valid", "pool")]
    drawn = [frame for part in parts for frame in part]
    order = np.random.default_rng(split_seed).permutation(len(drawn))
    frames = [None] * len(drawn)
    for position, index in enumerate(order):
        frames[index] = drawn[position]
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="extxyz file to write")
    args = parser.parse_args()
    print(write_frames(args.out, in_sampled_order()))


if __name__ == "__main__":
    main()

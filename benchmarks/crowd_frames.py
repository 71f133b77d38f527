"""Crowded force-field frames from a sampled pre-training file, as ``pretraining.crowded`` makes them
(:mod:`ffpt.sampling.crowded`), written after (``--append``) or instead of its frames.

    python benchmarks/crowd_frames.py runs/h2c/ff_sampling/ff.extxyz --frames 1200 --molecules 4 \
        --append --out runs/ff_crowded.extxyz
"""

from __future__ import annotations

import argparse

from ffpt.data import read_frames, write_frames
from ffpt.sampling import crowded_frames
from ffpt.sampling.crowded import crowded_rng


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ff")
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--molecules", type=int, default=4)
    parser.add_argument("--min-distance", type=float, default=2.0)
    parser.add_argument("--shell", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0, help="the sampling config's seed")
    parser.add_argument("--append", action="store_true", help="write the input frames first")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    frames = read_frames(args.ff)
    crowds = crowded_frames(frames, args.frames, args.molecules, crowded_rng(args.seed), args.min_distance,
                            args.shell)
    write_frames(args.out, (frames if args.append else []) + crowds)
    print(f"{args.out}: {len(crowds)} crowded frames" + (f" after {len(frames)} sampled" if args.append else ""))


if __name__ == "__main__":
    main()

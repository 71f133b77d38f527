"""benchmarks/ethanol_labels.py: the committed ethanol labels put back in sampled order split into exactly
the committed test, validation and fine-tuning files (what ``abinitio.data`` then reproduces)."""

import subprocess
import sys
from pathlib import Path

import numpy as np

from ffpt.data.io import read_frames
from ffpt.data.splits import split

ROOT = Path(__file__).resolve().parents[1]


def test_the_split_of_the_rebuilt_file_gives_the_committed_parts(tmp_path):
    out = tmp_path / "labels.extxyz"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ethanol_labels.py"), str(out)], check=True,
                   capture_output=True, timeout=120)
    frames = read_frames(out)
    parts = split(frames, [40, 10, len(frames) - 50], seed=0)
    for name, part in zip(("test", "valid", "pool"), parts):
        committed = read_frames(ROOT / "benchmarks" / "data" / "ethanol_pbe_def2svp" / f"{name}.extxyz")
        assert len(part) == len(committed)
        for a, b in zip(part, committed):
            assert np.array_equal(a.positions, b.positions) and a.info["REF_energy"] == b.info["REF_energy"]
    assert not np.array_equal(frames[0].positions, parts[0][0].positions)  # the file is not the split order

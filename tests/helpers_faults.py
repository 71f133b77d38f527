"""What the fault-injection tests share: ``ffpt`` in a subprocess, small inputs, a tiny experiment,
and file systems that refuse writes (a read-only or a full tmpfs where the platform lets this
process mount one, else the same ``OSError`` injected at the write calls of this process)."""

from __future__ import annotations

import builtins
import errno
import os
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import ase.io
import torch
from ase import Atoms
from ase.build import molecule

from ffpt.models import save_model
from ffpt.models.newtonnet import NewtonNet

TINY_EXPERIMENT = {
    "name": "toy methanol (faults)",
    "seeds": [{"smiles": "CO", "name": "methanol"}],
    "pretraining": {"teacher": "mmff94", "md": {"temperatures": [600.0], "frames": 12, "stride": 5, "equilibration": 10},
                    "normal_modes": None, "random": None},
    "abinitio": {"teacher": "uff", "sampling": {"seed": 1, "md": {"temperatures": [900.0], "frames": 8, "stride": 5,
                                                                   "equilibration": 10}},
                 "workers": 1, "n_test": 2, "n_valid": 1},
    "budgets": [4],
    "model": {"n_features": 8, "n_layers": 1, "n_basis": 4, "cutoff": 4.0},
    "pretrain": {"max_epochs": 1, "batch_size": 4, "progress_bar": False},
    "finetune": {"max_epochs": 1, "batch_size": 2, "progress_bar": False},
    "stability": {"n_runs": 1, "md": {"steps": 10, "temperature_K": 300.0, "ensemble": "langevin", "save_every": 10,
                                     "check_every": 5}},
}
EXPERIMENT_STAGES = ["ff_sampling", "abinitio", "pretrain_s0", "ffpt-ft_n4_s0", "scratch_n4_s0", "evaluate",
                     "stability_ffpt-ft_n4_s0", "stability_scratch_n4_s0"]


def env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}


def ffpt(*args, cwd=None, timeout=300) -> subprocess.CompletedProcess:
    """``ffpt ARGS`` in a fresh process (in ``cwd``)."""
    return subprocess.run([sys.executable, "-m", "ffpt", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env())


def one_error_line(verb: str, err: str) -> str:
    """The one ``ffpt VERB: error:`` line of ``err`` (asserting there is exactly one and no traceback)."""
    assert "Traceback" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith(f"ffpt {verb}: error: ")]
    assert len(lines) == 1, err[-3000:]
    return lines[0]


def tiny_model(path: Path) -> Path:
    torch.manual_seed(0)
    return save_model(NewtonNet(elements=[1, 6, 8], cutoff=4.0, n_features=8, n_layers=1, n_basis=4), path)


def write_inputs(folder: Path) -> dict[str, Path]:
    """A tiny model, water and ethanol structures, labelled frames: the inputs of every verb."""
    from conftest import emt_frames

    from ffpt.data import write_frames

    folder.mkdir(parents=True, exist_ok=True)
    f = {"model": tiny_model(folder / "model.pt")}
    ase.io.write(folder / "water.xyz", molecule("H2O"))
    ase.io.write(folder / "ethanol.xyz", molecule("CH3CH2OH"))
    f["water"], f["ethanol"] = folder / "water.xyz", folder / "ethanol.xyz"
    f["frames"] = write_frames(folder / "frames.extxyz", emt_frames(n=6))
    return f


def verb_argv(verb: str, f: dict, out: Path) -> list[str]:
    """A valid ``ffpt VERB`` command line writing ``out`` (small: seconds of work)."""
    return [str(word) for word in {
        "train": ["train", "--train", f["frames"], "--out", out, "--max-epochs", "1", "model.n_features=8",
                  "model.n_layers=1", "model.n_basis=4", "training.progress_bar=false"],
        "md": ["md", "--calculator", "uff", "--structure", f["ethanol"], "--steps", "5", "--out", out, "--no-progress"],
        "metad": ["metad", "--calculator", "uff", "--structure", f["water"], "--cv", "O1_H1", "--r0", "1.2",
                  "--steps", "5", "--out", out, "--no-progress"],
        "scan": ["scan", "--calculator", "uff", "--pair", "H-H", "--points", "5", "--out", out],
        "export": ["export", f["model"], "--out", out],
        "label": ["label", "--data", f["frames"], "--out", out, "--teacher", "uff", "--no-progress"],
        "sample": ["sample", "--seeds", "O", "--out", out, "--md-frames", "0", "--nm-frames", "0",
                   "--random-frames", "1", "--no-progress"],
        "run": ["run", f["experiment"], "--out", out, "--quiet"],
        "al": ["al", "--labels", f["frames"], "--teacher", "uff", f"explore.structures=[{f['water']}]", "--out", out,
               "--quiet"],
    }[verb]]


OUTPUT_NAMES = {"train": "run", "md": "md", "metad": "metad", "scan": "scan.json", "export": "model.pt2",
                "label": "labels.extxyz", "sample": "sample.extxyz", "run": "experiment", "al": "al"}


def hh_water() -> Atoms:
    """Water whose hydrogens are 0.17 A apart (no force field can type it)."""
    return Atoms("OHH", positions=[[0, 0, 0], [0.96, 0, 0], [1.13, 0, 0]])


# --------------------------------------------------------------------------- refusing file systems


def _mount(folder: Path, options: str) -> bool:
    """Mount a tmpfs with ``options`` on ``folder``; False where this process may not."""
    if os.geteuid() != 0:
        return False
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    return done.returncode == 0


def _unmount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _inject(monkeypatch, folder: Path, code: int) -> None:
    """Every write under ``folder`` by this process fails with ``OSError(code)`` naming the path, as a
    read-only (EROFS) or full (ENOSPC) file system would refuse it."""
    root = str(folder.resolve())

    def under(path) -> bool:
        try:
            return os.path.abspath(os.fspath(path)).startswith(root)
        except TypeError:  # a file descriptor
            return False

    def refuse(path):
        raise OSError(code, os.strerror(code), os.fspath(path))

    real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir

    def fake_open(file, mode="r", *args, **kwargs):
        if under(file) and any(c in mode for c in "wax+"):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def fake_os_open(path, flags, *args, **kwargs):
        if under(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            refuse(path)
        return real_os_open(path, flags, *args, **kwargs)

    def fake_mkdir(path, *args, **kwargs):
        if under(path) and code == errno.EROFS:
            refuse(path)
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)


@contextmanager
def read_only_folder(base: Path, monkeypatch):
    """A folder on a read-only file system: a read-only tmpfs, else injected EROFS. Yields
    ``(folder, how)``."""
    folder = base / f"ro_{uuid.uuid4().hex[:8]}"
    if _mount(folder, "ro,size=64k"):
        try:
            yield folder, "tmpfs"
        finally:
            _unmount(folder)
        return
    folder.mkdir(parents=True)
    _inject(monkeypatch, folder, errno.EROFS)
    yield folder, "injected"


@contextmanager
def full_folder(base: Path, monkeypatch, free: int = 0, prepare=None):
    """A folder on a full file system (``free`` bytes left): a 512 KiB tmpfs filled up, else injected
    ENOSPC; ``prepare(folder)`` writes there first. Yields ``(folder, how)``."""
    folder = base / f"full_{uuid.uuid4().hex[:8]}"
    if _mount(folder, "size=512k"):
        try:
            if prepare is not None:
                prepare(folder)
            fill(folder, free)
            yield folder, "tmpfs"
        finally:
            _unmount(folder)
        return
    folder.mkdir(parents=True)
    if prepare is not None:
        prepare(folder)
    _inject(monkeypatch, folder, errno.ENOSPC)
    yield folder, "injected"


def fill(folder: Path, free: int = 0) -> None:
    """Fill the file system of ``folder`` until at most ``free`` bytes are left."""
    stat = os.statvfs(folder)
    left = stat.f_bavail * stat.f_frsize - free
    with open(folder / ".filler", "wb") as fh:
        try:
            while left > 0:
                chunk = min(left, 1 << 16)
                fh.write(b"\0" * chunk)
                fh.flush()
                left -= chunk
        except OSError:
            pass

"""Importer (and writer) for the hydrogen-combustion benchmark's npz files.

Format (Guan et al., Sci. Data 9, 215, 2022): arrays padded to 6 atoms (Z = 0 marks padding),
R (n, 6, 3) A, Z (n, 6), N (n, 1), E (n, 1) kcal/mol relative to free atoms,
F (n, 6, 3) kcal/mol/A, RXN (n, 1) channel id. Frames come out in eV and eV/A with
``info["channel"]``, ``info["method"]`` (irc/aimd/nm), ``info["source"]`` and, where the channel's
electronic state is known, ``info["spin"]`` (multiplicity).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from ase import Atoms

from ffpt.data.frames import ENERGY_KEY, FORCES_KEY, DataError
from ffpt.units import KCAL_PER_MOL

METHODS = ("irc", "aimd", "nm")
_FILE = re.compile(r"^(?P<channel>\d\d[ab]?)_(?P<method>irc|aimd|nm)(?P<tag>_[a-z_]+)?\.npz$")
# same geometries labelled in two electronic states: keep the lower-energy label of each frame
_STATE_PAIRS = {"irc": [("06a_irc.npz", "06b_irc.npz"), ("12a_irc_d_corr.npz", "12a_irc_q_corr.npz")]}
_STATE_SPIN = {"06a_irc.npz": 1, "06b_irc.npz": 3, "12a_irc_d_corr.npz": 2, "12a_irc_q_corr.npz": 4}


def channel_multiplicities(reactions_json: str | Path) -> dict[str, int]:
    """Channel id -> spin multiplicity from the data set's reactions.json."""
    data = json.loads(Path(reactions_json).read_text())
    return {k: int(v["multiplicity"]) for k, v in data.items() if not k.startswith("_")}


def read_npz(path: str | Path, multiplicities: dict[str, int] | None = None, spin: int | None = None) -> list[Atoms]:
    """Frames of one npz file in eV and eV/A; errors name the file, frame and key."""
    path = Path(path)
    match = _FILE.match(path.name)
    method = match["method"] if match else "unknown"
    try:
        data = np.load(path)
    except Exception as exc:
        raise DataError(f"{path}: cannot read npz ({exc})") from exc
    for key in ("R", "Z", "N", "E", "F"):
        if key not in data.files:
            raise DataError(f"{path}: missing key '{key}' (has {data.files})")
    R, Z, N, E, F = (data[k] for k in ("R", "Z", "N", "E", "F"))
    rxn = data["RXN"].reshape(-1) if "RXN" in data.files else np.full(len(E), match["channel"] if match else "")
    n_frames = len(E)
    for key, arr in (("R", R), ("Z", Z), ("N", N), ("F", F), ("RXN", rxn)):
        if len(arr) != n_frames:
            raise DataError(f"{path}: key '{key}' has {len(arr)} frames, 'E' has {n_frames}")
    _check_arrays(path, R, Z, N.reshape(-1), E.reshape(-1), F)
    frames = []
    for k in range(n_frames):
        n = int(np.ravel(N[k])[0])
        atoms = Atoms(numbers=Z[k, :n], positions=R[k, :n])
        atoms.info[ENERGY_KEY] = float(np.ravel(E[k])[0]) * KCAL_PER_MOL
        atoms.arrays[FORCES_KEY] = F[k, :n] * KCAL_PER_MOL
        channel = str(rxn[k])
        atoms.info.update(channel=channel, method=method, source=path.name, charge=0)
        state_spin = spin if spin is not None else (multiplicities or {}).get(channel)
        if state_spin is not None:
            atoms.info["spin"] = int(state_spin)
        frames.append(atoms)
    return frames


def _check_arrays(path: Path, R, Z, N, E, F, min_distance: float = 0.1) -> None:
    """Vectorised version of :func:`validate_frame` for padded arrays (fast on 10^5 frames)."""
    real = Z > 0
    counts = real.sum(axis=1)
    bad = np.flatnonzero((counts != N) | (N <= 0) | ~np.all(real == (np.arange(Z.shape[1]) < N[:, None]), axis=1))
    if bad.size:
        k = bad[0]
        raise DataError(f"{path}, frame {k}: key 'N' = {N[k]} does not match the non-padding atoms of 'Z'")
    for key, arr in (("R", R), ("F", F)):
        bad = np.argwhere(~np.isfinite(arr).all(axis=-1) & real)
        if bad.size:
            raise DataError(f"{path}, frame {bad[0, 0]}, atom {bad[0, 1]}: key '{key}' is not finite")
    bad = np.flatnonzero(~np.isfinite(E))
    if bad.size:
        raise DataError(f"{path}, frame {bad[0]}: key 'E' is not finite")
    d = np.linalg.norm(R[:, :, None] - R[:, None, :], axis=-1)
    pair = real[:, :, None] & real[:, None, :] & ~np.eye(Z.shape[1], dtype=bool)
    close = np.argwhere(pair & (d < min_distance))
    if close.size:
        k, i, j = close[0]
        raise DataError(f"{path}, frame {k}: atoms {i} and {j} overlap ({d[k, i, j]:.3f} A)")


def _lower_energy_state(root: Path, first: str, second: str) -> list[Atoms]:
    a = read_npz(root / first, spin=_STATE_SPIN[first])
    b = read_npz(root / second, spin=_STATE_SPIN[second])
    if len(a) != len(b):
        raise DataError(f"{root / first} and {second}: different frame counts ({len(a)} vs {len(b)})")
    out = []
    for k, (fa, fb) in enumerate(zip(a, b)):
        if not np.allclose(fa.positions, fb.positions, atol=1e-6):
            raise DataError(f"{root / first} and {second}, frame {k}: geometries differ, not two states of one set")
        out.append(fa if fa.info[ENERGY_KEY] <= fb.info[ENERGY_KEY] else fb)
    return out


def default_files(root: str | Path, methods: Sequence[str] = ("aimd", "irc")) -> list[str]:
    """The files of a duplicate-free set: plain ``NN_method.npz`` files, except channel 12's
    IRC (taken from the corrected doublet/quartet pair) and the 06a/06b pair (lower energy each)."""
    root = Path(root)
    names = []
    for p in sorted(root.glob("*.npz")):
        m = _FILE.match(p.name)
        if m and m["tag"] is None and m["method"] in methods and len(m["channel"]) == 2:
            if not (m["channel"] == "12" and m["method"] == "irc"):
                names.append(p.name)
    return names


def load_h2combustion(
    root: str | Path,
    methods: Sequence[str] = ("aimd", "irc"),
    channels: Iterable[str] | None = None,
    reactions_json: str | Path | None = None,
) -> list[Atoms]:
    """All frames of the chosen methods (and channels), one label per geometry, in eV and eV/A.

    ``root`` is the folder of npz files; spins come from ``reactions_json`` (default: the file
    ``reactions.json`` beside ``root``, if present).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder of hydrogen-combustion npz files")
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise DataError(f"unknown method(s) {sorted(unknown)}; known: {METHODS}")
    reactions_json = Path(reactions_json) if reactions_json else root.parent / "reactions.json"
    mult = channel_multiplicities(reactions_json) if reactions_json.exists() else {}
    frames = []
    for name in default_files(root, methods):
        frames.extend(read_npz(root / name, mult))
    for method in methods:
        for first, second in _STATE_PAIRS.get(method, []):
            if (root / first).exists() and (root / second).exists():
                frames.extend(_lower_energy_state(root, first, second))
    if channels is not None:
        wanted = {str(c) for c in channels}
        frames = [f for f in frames if f.info["channel"] in wanted or f.info["channel"][:2] in wanted]
    return frames


def write_npz(path: str | Path, frames: Sequence[Atoms], pad_to: int = 6) -> Path:
    """Write frames in the data set's own npz format (kcal/mol, padded); inverse of :func:`read_npz`."""
    n = len(frames)
    R, Z = np.zeros((n, pad_to, 3)), np.zeros((n, pad_to), dtype=np.int64)
    F, E = np.zeros((n, pad_to, 3)), np.zeros((n, 1))
    N, RXN = np.zeros((n, 1), dtype=np.int64), np.empty((n, 1), dtype="<U3")
    for k, atoms in enumerate(frames):
        m = len(atoms)
        if m > pad_to:
            raise DataError(f"frame {k}: {m} atoms do not fit the padding of {pad_to}")
        R[k, :m], Z[k, :m], N[k] = atoms.positions, atoms.numbers, m
        F[k, :m] = atoms.arrays[FORCES_KEY] / KCAL_PER_MOL
        E[k] = atoms.info[ENERGY_KEY] / KCAL_PER_MOL
        RXN[k] = atoms.info.get("channel", "")
    path = Path(path)
    np.savez(path, R=R, Z=Z, N=N, E=E, F=F, RXN=RXN)
    return path

"""The hydrogen-combustion benchmark data set (Guan et al., Sci. Data 9, 215, 2022): the one place
in ffpt that knows its files.

A data folder ``ROOT`` holds
- ``ROOT/reactions.json``: per channel id (``"09"``, ``"12a"``) the reaction, its spin multiplicity,
  atom count and two coordination-number CVs (atom-pair labels such as ``"O2_H1"`` and their r0, A);
  parsed once into :class:`Channel` records by :func:`load_channels`;
- ``ROOT/npz/NN_method.npz``: frames, arrays padded to 6 atoms (Z = 0 marks padding), R (n, 6, 3) A,
  Z (n, 6), N (n, 1), E (n, 1) kcal/mol relative to free atoms, F (n, 6, 3) kcal/mol/A, RXN (n, 1)
  channel id; read by :func:`read_npz` / :func:`load_h2combustion` into frames in eV and eV/A with
  ``info["channel"]``, ``info["method"]`` (irc/aimd/nm), ``info["source"]``, ``info["charge"]`` and,
  where the channel's electronic state is known, ``info["spin"]`` (multiplicity);
- ``ROOT/geometries/{reactant,TS,product}_NN.xyz``: stationary points, the comment line holding the
  optimizer's energy in hartree (:func:`stationary_point_path`, :func:`read_stationary_point`,
  :func:`stationary_energy_hartree`).
:data:`COMBUSTION_SPECIES` is the data set's species set (Hill formulas).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from ase import Atoms

from ffpt import keys
from ffpt.data.frames import DataError, validate_frame
from ffpt.data.molecules import hill_formula
from ffpt.units import HARTREE, KCAL_PER_MOL

REACTIONS_FILE = "reactions.json"
GEOMETRIES = "geometries"  # subfolder of ROOT with the stationary points
NPZ = "npz"  # subfolder of ROOT with the frames
KINDS = ("reactant", "TS", "product")  # stationary points of a channel


# The data set's free-atom energies (hartree; its parser's values, the same level): E in the npz files is
# the total energy minus these, times 627.5 kcal/mol per hartree (BENCHMARKS.md 3 reproduces them).
FREE_ATOM_ENERGY_HARTREE = {1: -0.5004966690, 8: -75.0637742413}
DATASET_KCAL_PER_HARTREE = 627.5


def total_energy(atoms: Atoms) -> float:
    """A data set frame's total electronic energy (eV), the zero of a DFT code such as PySCF at the
    same level, from its energy relative to free atoms (``info[REF_energy]``, eV)."""
    relative_hartree = atoms.info[keys.ENERGY] / KCAL_PER_MOL / DATASET_KCAL_PER_HARTREE
    return (relative_hartree + sum(FREE_ATOM_ENERGY_HARTREE[int(z)] for z in atoms.numbers)) * HARTREE


COMBUSTION_SPECIES = frozenset(hill_formula(f, "species") for f in ("H", "O", "OH", "H2", "O2", "H2O", "HO2", "H2O2"))


@dataclass(frozen=True)
class Reaction:
    """Reactant and product species counts (Hill formulas) of a reaction string."""

    reactants: Counter
    products: Counter

    @property
    def allowed(self) -> frozenset[str]:
        return frozenset(self.reactants) | frozenset(self.products)


_TERM = re.compile(r"^(\d+)?\s*([A-Za-z0-9]+)$")


def parse_reaction(text: str) -> Reaction:
    """Parse ``"H2O + O -> 2 OH"``; a trailing note in parentheses, e.g. ``"(singlet)"``, is ignored."""
    core = re.sub(r"\([^)]*\)", "", text).strip()
    sides = core.split("->")
    if len(sides) != 2:
        raise DataError(f"reaction '{text}': expected exactly one '->'")
    counts = []
    for side in sides:
        c: Counter = Counter()
        for term in side.split("+"):
            match = _TERM.match(term.strip())
            if not match:
                raise DataError(f"reaction '{text}': cannot read term '{term.strip()}'")
            c[hill_formula(match.group(2), f"reaction '{text}'")] += int(match.group(1) or 1)
        counts.append(c)
    return Reaction(counts[0], counts[1])


@dataclass(frozen=True)
class Channel:
    """One reaction channel of ``reactions.json``.

    ``cv_labels[k]``: the atom-pair labels (``"O2_H1"`` = 2nd O, 1st H in the channel's atom order)
    summed by coordination CV ``k``; ``r0[k]``: its switching length, A (both empty when the file
    gives no CVs). ``species``: reactant and product counts (Hill formulas) of ``reaction``.
    """

    id: str
    reaction: str
    multiplicity: int
    natoms: int | None
    cv_labels: tuple[tuple[str, ...], ...]
    r0: tuple[float, ...]
    species: Reaction


def load_channels(path: str | Path) -> dict[str, Channel]:
    """Every channel of a ``reactions.json`` (keys starting with ``_`` are notes); errors name the file
    and channel."""
    path = Path(path)
    try:
        table = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read reactions ({exc})") from None
    if not isinstance(table, dict):
        raise DataError(f"{path}: expected an object of channels, got {type(table).__name__}")
    channels = {}
    for cid, entry in table.items():
        if cid.startswith("_"):
            continue
        where = f"{path}, channel {cid}"
        if not isinstance(entry, dict):
            raise DataError(f"{where}: expected an object, got {type(entry).__name__}")
        for key in ("reaction", "multiplicity"):
            if key not in entry:
                raise DataError(f"{where}: missing key '{key}'")
        cv, r0 = entry.get("cv", []), entry.get("r0", [])
        if len(cv) != len(r0):
            raise DataError(f"{where}: {len(cv)} CVs but {len(r0)} r0 values")
        try:
            species = parse_reaction(entry["reaction"])
            multiplicity = int(entry["multiplicity"])
            channels[cid] = Channel(
                id=cid,
                reaction=entry["reaction"],
                multiplicity=multiplicity,
                natoms=None if entry.get("natoms") is None else int(entry["natoms"]),
                cv_labels=tuple(tuple([labels] if isinstance(labels, str) else labels) for labels in cv),
                r0=tuple(float(r) for r in r0),
                species=species,
            )
        except (TypeError, ValueError) as exc:
            raise DataError(f"{where}: {exc}") from None
        if multiplicity < 1:
            raise DataError(f"{where}: key 'multiplicity' must be >= 1, got {multiplicity}")
    return channels


def load_channel(path: str | Path, channel: str) -> Channel:
    """Channel ``channel`` (e.g. ``"09"``) of a ``reactions.json``; the error lists the known ids."""
    channels = load_channels(path)
    if channel not in channels:
        raise DataError(f"{path}: no channel '{channel}'; known: {', '.join(channels)}")
    return channels[channel]


def stationary_point_path(folder: str | Path, kind: str, channel: str) -> Path:
    """``folder/{kind}_{channel}.xyz``, ``kind`` one of :data:`KINDS` (``folder``: the geometries folder)."""
    if kind not in KINDS:
        raise DataError(f"combustion kind '{kind}': expected one of {', '.join(KINDS)}")
    return Path(folder) / f"{kind}_{channel}.xyz"


def stationary_energy_hartree(path: str | Path) -> float | None:
    """Energy (Eh) from an xyz comment line: the optimizer's ``Step 0 E= -150.826492 |G|= ...`` or the IRC
    point's ``E0 =  -76.220436`` / ``E-14 = -76.234952`` (channel 02); None if absent."""
    lines = Path(path).read_text().splitlines()
    match = re.search(r"\bE(?:-?\d+)?\s*=\s*(-?\d+\.\d+)", lines[1]) if len(lines) > 1 else None
    return float(match.group(1)) if match else None


def read_stationary_point(folder: str | Path, kind: str, channel: Channel) -> Atoms:
    """Validated, unlabelled stationary point ``kind`` of ``channel`` with its charge (0), spin
    (the channel's multiplicity) and channel id in ``info``."""
    import ase.io

    path = stationary_point_path(folder, kind, channel.id)
    if not path.exists():
        raise DataError(f"{path}: combustion geometry not found")
    try:
        atoms = ase.io.read(path, format="xyz")  # plain xyz: comment lines are not key=value
    except Exception as exc:  # ase raises many types for malformed files
        raise DataError(f"{path}: cannot read geometry ({exc})") from None
    validate_frame(atoms, source=str(path), require_labels=False)
    if channel.natoms is not None and len(atoms) != channel.natoms:
        raise DataError(f"{path}: {len(atoms)} atoms, channel {channel.id} has {channel.natoms}")
    atoms.info = {keys.CHANNEL: channel.id, keys.CHARGE: 0, keys.SPIN: channel.multiplicity}
    return atoms


METHODS = ("irc", "aimd", "nm")
_FILE = re.compile(r"^(?P<channel>\d\d[ab]?)_(?P<method>irc|aimd|nm)(?P<tag>_[a-z_]+)?\.npz$")
# same geometries labelled in two electronic states: keep the lower-energy label of each frame
_STATE_PAIRS = {"irc": [("06a_irc.npz", "06b_irc.npz"), ("12a_irc_d_corr.npz", "12a_irc_q_corr.npz")]}
_STATE_SPIN = {"06a_irc.npz": 1, "06b_irc.npz": 3, "12a_irc_d_corr.npz": 2, "12a_irc_q_corr.npz": 4}


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
        atoms.info[keys.ENERGY] = float(np.ravel(E[k])[0]) * KCAL_PER_MOL
        atoms.arrays[keys.FORCES] = F[k, :n] * KCAL_PER_MOL
        channel = str(rxn[k])
        atoms.info.update({keys.CHANNEL: channel, "method": method, "source": path.name, keys.CHARGE: 0})
        state_spin = spin if spin is not None else (multiplicities or {}).get(channel)
        if state_spin is not None:
            atoms.info[keys.SPIN] = int(state_spin)
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
        out.append(fa if fa.info[keys.ENERGY] <= fb.info[keys.ENERGY] else fb)
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
    energy_zero: str = "free_atoms",
) -> list[Atoms]:
    """All frames of the chosen methods (and channels), one label per geometry, in eV and eV/A.

    ``root`` is the folder of npz files; spins come from ``reactions_json`` (default: the file
    ``reactions.json`` beside ``root``, if present). ``energy_zero``: ``"free_atoms"`` keeps the data
    set's energies relative to free atoms; ``"total"`` gives total energies (:func:`total_energy`),
    the zero of new labels from a DFT teacher at the same level (PySCF wB97X-V/cc-pVTZ).
    """
    if energy_zero not in ("free_atoms", "total"):
        raise DataError(f"energy_zero '{energy_zero}': expected 'free_atoms' or 'total'")
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder of hydrogen-combustion npz files")
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise DataError(f"unknown method(s) {sorted(unknown)}; known: {METHODS}")
    reactions_json = Path(reactions_json) if reactions_json else root.parent / REACTIONS_FILE
    mult = {c.id: c.multiplicity for c in load_channels(reactions_json).values()} if reactions_json.exists() else {}
    frames = []
    for name in default_files(root, methods):
        frames.extend(read_npz(root / name, mult))
    for method in methods:
        for first, second in _STATE_PAIRS.get(method, []):
            if (root / first).exists() and (root / second).exists():
                frames.extend(_lower_energy_state(root, first, second))
    if channels is not None:
        wanted = {str(c) for c in channels}
        frames = [f for f in frames if f.info[keys.CHANNEL] in wanted or f.info[keys.CHANNEL][:2] in wanted]
    if energy_zero == "total":
        for atoms in frames:
            atoms.info[keys.ENERGY] = total_energy(atoms)
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
        F[k, :m] = atoms.arrays[keys.FORCES] / KCAL_PER_MOL
        E[k] = atoms.info[keys.ENERGY] / KCAL_PER_MOL
        RXN[k] = atoms.info.get(keys.CHANNEL, "")
    path = Path(path)
    np.savez(path, R=R, Z=Z, N=N, E=E, F=F, RXN=RXN)
    return path

"""Partial radial distribution functions g_AB(r) of periodic frames (plots: :mod:`ffpt.analysis.rdf`).

For a pair of elements (A, B) and a frame of volume V (A^3) with N_A, N_B atoms,

    g_AB(r_k) = V / (N_A N_B) * n_AB(k) / (4/3 pi (r_{k+1}^3 - r_k^3)),

where n_AB(k) counts ordered pairs (i in A, j in B, i != j or a periodic image) with distance in
bin k. All periodic images within ``rmax`` are counted (``rmax`` may exceed half the box), so
``rho_B * int g_AB 4 pi r^2 dr`` is the mean number of B atoms around an A atom. Frames are
averaged with equal weight. Pairs are named heavier element first, e.g. ``"O-H"``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from itertools import combinations_with_replacement
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols


def pair_name(a: str, b: str) -> str:
    """Canonical name of an element pair: heavier element first (``"O-H"``, ``"O-O"``)."""
    for symbol in (a, b):
        if symbol not in atomic_numbers:
            raise ValueError(f"unknown element '{symbol}' in RDF pair '{a}-{b}'")
    first, second = sorted((a, b), key=lambda s: -atomic_numbers[s])
    return f"{first}-{second}"


def parse_pair(name: str) -> tuple[str, str]:
    """``"O-H"`` -> ``("O", "H")`` in canonical order."""
    parts = name.split("-")
    if len(parts) != 2:
        raise ValueError(f"RDF pair '{name}' must look like 'O-H'")
    return tuple(pair_name(*parts).split("-"))  # type: ignore[return-value]


def all_pairs(atoms: Atoms) -> list[str]:
    """Every element pair present in ``atoms``."""
    elements = sorted({chemical_symbols[z] for z in atoms.numbers}, key=lambda s: -atomic_numbers[s])
    return [pair_name(a, b) for a, b in combinations_with_replacement(elements, 2)]


@dataclass(frozen=True)
class RDF:
    """Partial RDFs on common bins. ``edges``: bin edges (A); ``g``: pair name -> g(r) per bin."""

    edges: np.ndarray
    g: dict[str, np.ndarray]
    n_frames: int

    @property
    def r(self) -> np.ndarray:
        """Bin centres (A)."""
        return 0.5 * (self.edges[1:] + self.edges[:-1])

    def error(self, other: "RDF", pairs: Sequence[str] | None = None) -> float:
        """Sum over pairs of int |g - g_other| dr (A), on identical bins."""
        if not np.allclose(self.edges, other.edges):
            raise ValueError("RDFs have different bins; recompute with the same rmax and bins")
        widths = np.diff(self.edges)
        total = 0.0
        for name in pairs if pairs is not None else sorted(self.g):
            if name not in self.g or name not in other.g:
                raise ValueError(f"RDF pair '{name}' missing (have {sorted(self.g)} and {sorted(other.g)})")
            total += float(np.sum(np.abs(self.g[name] - other.g[name]) * widths))
        return total

    def coordination(self, pair: str, r_cut: float, density: float) -> float:
        """Mean number of second-element atoms within ``r_cut`` (A) of a first-element atom.

        ``density``: number density of the second element (1/A^3); bins are counted whole up to
        the last edge not beyond ``r_cut``.
        """
        shells = 4.0 / 3.0 * np.pi * np.diff(self.edges**3)
        keep = self.edges[1:] <= r_cut + 1e-12
        return float(density * np.sum(self.g[pair][keep] * shells[keep]))

    def to_dict(self) -> dict:
        g = {k: v.tolist() for k, v in self.g.items()}
        return {"edges": self.edges.tolist(), "n_frames": self.n_frames, "g": g}

    def save(self, path: str | os.PathLike) -> Path:
        """Write as JSON (atomically)."""
        from ffpt.fileio import atomic_write_text

        return atomic_write_text(path, json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "RDF":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            return cls(
                edges=np.asarray(data["edges"], dtype=float),
                g={k: np.asarray(v, dtype=float) for k, v in data["g"].items()},
                n_frames=int(data["n_frames"]),
            )
        except FileNotFoundError:
            raise ValueError(f"{path}: no such RDF file") from None
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not an ffpt RDF json ({exc!r})") from None


class RDFAccumulator:
    """Histograms frames one at a time; :meth:`frame_g` gives one frame's g(r)."""

    def __init__(self, rmax: float, bins: int, pairs: Sequence[str] | None = None):
        if rmax <= 0 or bins < 2:
            raise ValueError(f"RDF needs rmax > 0 and bins >= 2 (got rmax={rmax}, bins={bins})")
        from vesin import NeighborList

        self.edges = np.linspace(0.0, rmax, bins + 1)
        self.pairs = [pair_name(*p.split("-")) for p in pairs] if pairs is not None else None
        self._nl = NeighborList(cutoff=rmax, full_list=True)
        self._shells = 4.0 / 3.0 * np.pi * np.diff(self.edges**3)
        self._sum: dict[str, np.ndarray] = {}
        self.n_frames = 0

    def frame_g(self, atoms: Atoms, where: str = "frame") -> dict[str, np.ndarray]:
        """g(r) of one periodic frame for each pair."""
        if not atoms.pbc.all():
            raise ValueError(f"{where}: RDF needs a frame periodic in all directions (pbc={atoms.pbc.tolist()})")
        volume = atoms.get_volume()
        i, j, d = self._nl.compute(atoms.positions, atoms.cell.array, True, "ijd")
        symbols = np.array(atoms.get_chemical_symbols())
        pairs = self.pairs if self.pairs is not None else all_pairs(atoms)
        out = {}
        for name in pairs:
            a, b = name.split("-")
            n_a, n_b = int(np.sum(symbols == a)), int(np.sum(symbols == b))
            if n_a == 0 or n_b == 0:
                raise ValueError(f"{where}: RDF pair '{name}' but the frame has {n_a} {a} and {n_b} {b} atoms")
            mask = (symbols[i] == a) & (symbols[j] == b)
            counts, _ = np.histogram(d[mask], bins=self.edges)
            out[name] = counts * volume / (n_a * n_b * self._shells)
        return out

    def add(self, atoms: Atoms, where: str = "frame") -> None:
        for name, g in self.frame_g(atoms, where).items():
            self._sum[name] = self._sum.get(name, 0.0) + g
        self.n_frames += 1

    def result(self) -> RDF:
        if self.n_frames == 0:
            raise ValueError("no frames were added to the RDF")
        return RDF(self.edges.copy(), {k: v / self.n_frames for k, v in self._sum.items()}, self.n_frames)


def compute_rdf(
    frames: Iterable[Atoms], rmax: float = 6.0, bins: int = 120, pairs: Sequence[str] | None = None
) -> RDF:
    """Frame-averaged partial RDFs of periodic frames."""
    acc = RDFAccumulator(rmax, bins, pairs)
    for k, atoms in enumerate(frames):
        acc.add(atoms, where=f"frame {k}")
    return acc.result()

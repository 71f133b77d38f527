"""Collective variables (CVs) with analytic gradients, PLUMED conventions.

A CV maps an :class:`ase.Atoms` to a number ``s`` and its gradient ``ds/dr`` (shape (n_atoms, 3),
per A). Distances are in A, coordination numbers are dimensionless. Periodic cells use the
minimum image. The coordination number is PLUMED's ``COORDINATION`` with the rational switching
function, so ``r0``, ``d0``, ``n`` (NN) and ``m`` (MM) mean what they mean there.

Atom-pair labels follow the hydrogen-combustion data set: ``"O2_H1"`` is the 2nd oxygen and the
1st hydrogen in the structure's atom order (1-based count within each element).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from ase import Atoms
from ase.geometry import find_mic

from ffpt.errors import UserError
from ffpt.systems.h2combustion import Channel
from ffpt.units import NM_PER_A  # PLUMED lengths are in nm: an ffpt length (A) times this

_SINGULAR_TOL = 1e-6  # |x - 1| below which the switching function uses its series at x = 1


class CVError(UserError):
    """A collective variable that cannot be built; the message names the label or key at fault."""


class CollectiveVariable(Protocol):
    """What metadynamics needs from a CV."""

    name: str
    plumed_scale: float  # PLUMED unit per ffpt unit (0.1 for A -> nm, 1 for dimensionless)

    def compute(self, atoms: Atoms) -> tuple[float, np.ndarray]:
        """Value and gradient d(value)/d(positions), shape (n_atoms, 3)."""
        ...


def rational_switch(r, r0: float, d0: float = 0.0, n: int = 6, m: int = 0):
    """PLUMED's rational switching function and its derivative in ``r``.

    s(r) = (1 - x^n) / (1 - x^m), x = (r - d0) / r0, with m = 2n when ``m == 0``;
    s = 1 for r <= d0. At x = 1 (a removable singularity) s = n/m and
    ds/dx = n (n - m) / (2 m). Returns (s, ds/dr) with ds/dr in 1/A.
    """
    if r0 <= 0:
        raise CVError(f"switching function: r0 must be positive, got {r0}")
    if n <= 0 or m < 0:
        raise CVError(f"switching function: need n > 0 and m >= 0, got n={n}, m={m}")
    m = 2 * n if m == 0 else m
    if m == n:
        raise CVError(f"switching function: n and m must differ, got n=m={n}")
    r = np.asarray(r, dtype=float)
    x = (r - d0) / r0
    s = np.ones_like(x)
    dsdx = np.zeros_like(x)
    near = np.abs(x - 1.0) < _SINGULAR_TOL
    eps = x - 1.0
    s[near] = n / m * (1.0 + 0.5 * (n - m) * eps[near])
    dsdx[near] = 0.5 * n * (n - m) / m
    reg = (x > 0.0) & ~near
    xr = x[reg]
    xn, xm = xr**n, xr**m
    num, den = 1.0 - xn, 1.0 - xm
    s[reg] = num / den
    dsdx[reg] = (-n * xn * den + m * xm * num) / (xr * den * den)
    return s, dsdx / r0


def _pair_vectors(atoms: Atoms, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectors r_j - r_i (minimum image if periodic) and their lengths, A."""
    vec = atoms.positions[pairs[:, 1]] - atoms.positions[pairs[:, 0]]
    if atoms.pbc.any():
        vec, dist = find_mic(vec, atoms.cell, atoms.pbc)
    else:
        dist = np.linalg.norm(vec, axis=1)
    return vec, dist


def _check_indices(name: str, atoms: Atoms, indices) -> None:
    for i in np.ravel(indices):
        if not 0 <= int(i) < len(atoms):
            raise CVError(f"CV '{name}': atom index {int(i)} out of range for {len(atoms)} atoms")


@dataclass(frozen=True)
class Position:
    """Cartesian coordinate ``axis`` (0, 1, 2) of atom ``index``, A."""

    index: int
    axis: int = 0
    name: str = "x"
    plumed_scale: float = NM_PER_A

    def compute(self, atoms: Atoms) -> tuple[float, np.ndarray]:
        _check_indices(self.name, atoms, [self.index])
        grad = np.zeros((len(atoms), 3))
        grad[self.index, self.axis] = 1.0
        return float(atoms.positions[self.index, self.axis]), grad


@dataclass(frozen=True)
class Distance:
    """Distance between atoms ``i`` and ``j`` (minimum image), A."""

    i: int
    j: int
    name: str = "d"
    plumed_scale: float = NM_PER_A

    def compute(self, atoms: Atoms) -> tuple[float, np.ndarray]:
        _check_indices(self.name, atoms, [self.i, self.j])
        vec, dist = _pair_vectors(atoms, np.array([[self.i, self.j]]))
        unit = vec[0] / dist[0]
        grad = np.zeros((len(atoms), 3))
        grad[self.j] += unit
        grad[self.i] -= unit
        return float(dist[0]), grad


@dataclass(frozen=True)
class Coordination:
    """Sum of the rational switching function over atom pairs (PLUMED ``COORDINATION``).

    ``pairs``: (n_pairs, 2) atom indices; ``r0``, ``d0`` in A; ``n``, ``m`` exponents (m = 0 -> 2n).
    """

    pairs: tuple[tuple[int, int], ...]
    r0: float
    d0: float = 0.0
    n: int = 6
    m: int = 0
    name: str = "cn"
    plumed_scale: float = 1.0
    _pairs: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        pairs = np.asarray(self.pairs, dtype=int).reshape(-1, 2)
        if len(pairs) == 0:
            raise CVError(f"CV '{self.name}': no atom pairs")
        same = np.flatnonzero(pairs[:, 0] == pairs[:, 1])
        if same.size:
            raise CVError(f"CV '{self.name}': pair {same[0]} pairs atom {pairs[same[0], 0]} with itself")
        rational_switch(1.0, self.r0, self.d0, self.n, self.m)  # validates the parameters
        object.__setattr__(self, "_pairs", pairs)

    def compute(self, atoms: Atoms) -> tuple[float, np.ndarray]:
        _check_indices(self.name, atoms, self._pairs)
        vec, dist = _pair_vectors(atoms, self._pairs)
        s, dsdr = rational_switch(dist, self.r0, self.d0, self.n, self.m)
        g = (dsdr / dist)[:, None] * vec  # d s / d r_j for each pair
        grad = np.zeros((len(atoms), 3))
        np.add.at(grad, self._pairs[:, 1], g)
        np.add.at(grad, self._pairs[:, 0], -g)
        return float(s.sum()), grad


_ATOM_LABEL = re.compile(r"^([A-Z][a-z]?)(\d+)$")


def atom_from_label(label: str, atoms: Atoms) -> int:
    """0-based index of ``"O2"`` (2nd oxygen, 1-based within its element) in ``atoms``."""
    match = _ATOM_LABEL.match(label.strip())
    if not match:
        raise CVError(f"atom label '{label}': expected element symbol + 1-based count, e.g. 'O2'")
    symbol, count = match.group(1), int(match.group(2))
    of_element = [k for k, sym in enumerate(atoms.get_chemical_symbols()) if sym == symbol]
    if not 1 <= count <= len(of_element):
        raise CVError(
            f"atom label '{label}': structure {atoms.get_chemical_formula()} has "
            f"{len(of_element)} {symbol} atom(s)"
        )
    return of_element[count - 1]


def pair_from_label(label: str, atoms: Atoms) -> tuple[int, int]:
    """0-based atom indices of a pair label such as ``"O2_H1"``."""
    parts = label.strip().split("_")
    if len(parts) != 2:
        raise CVError(f"pair label '{label}': expected two atom labels joined by '_', e.g. 'O2_H1'")
    return atom_from_label(parts[0], atoms), atom_from_label(parts[1], atoms)


def coordination_from_labels(
    labels, atoms: Atoms, r0: float, *, n: int = 6, m: int = 0, d0: float = 0.0, name: str | None = None
) -> Coordination:
    """Coordination CV summed over the pairs named by ``labels`` (e.g. ``["O1_H2", "O1_H1"]``)."""
    labels = [labels] if isinstance(labels, str) else list(labels)
    pairs = tuple(pair_from_label(lab, atoms) for lab in labels)
    return Coordination(pairs=pairs, r0=r0, d0=d0, n=n, m=m, name=name or "cn_" + "+".join(labels))


def channel_cvs(channel: Channel, atoms: Atoms, *, n: int = 6, m: int = 0) -> list[Coordination]:
    """The coordination CVs (``cn1``, ``cn2``, ...) of a hydrogen-combustion channel for ``atoms``
    (atom order of the channel's files)."""
    if not channel.cv_labels:
        raise CVError(f"channel {channel.id}: reactions file gives no CVs ('cv', 'r0')")
    if channel.natoms is not None and len(atoms) != channel.natoms:
        raise CVError(f"channel {channel.id}: structure has {len(atoms)} atoms, channel has {channel.natoms}")
    return [
        coordination_from_labels(labels, atoms, r0, n=n, m=m, name=f"cn{k + 1}")
        for k, (labels, r0) in enumerate(zip(channel.cv_labels, channel.r0))
    ]

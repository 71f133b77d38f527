"""Pair-energy scans: energy and force of two atoms along their distance, for any ASE calculator.

Two settings: an isolated pair (:func:`isolated_pair`), or two atoms ``i``, ``j`` of a given geometry
pulled together or apart along their axis with every other atom fixed (:func:`at_distance`: both
move by half the change, so their midpoint stays put). At each distance r (A) the scan records the
energy E (eV) and the radial force

    f(r) = (F_j - F_i) . u / 2,   u = (r_j - r_i) / |r_j - r_i|,

(eV/A), which is -dE/dr for a pure pair potential: positive pushes the atoms apart (repulsion),
negative pulls them together.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.data import atomic_numbers
from pydantic import Field, model_validator

from ffpt import keys
from ffpt.config import Strict
from ffpt.errors import UserError


class PairError(UserError):
    """A pair of atoms that cannot be scanned (unknown element, atom index out of range, same atom)."""


@dataclass(frozen=True)
class PairScan:
    """One calculator's scan: ``distances`` (A), ``energies`` (eV), ``radial_forces`` (eV/A, > 0 repels)."""

    name: str
    distances: np.ndarray
    energies: np.ndarray
    radial_forces: np.ndarray

    def nearest(self, distance: float) -> int:
        """Index of the scanned distance closest to ``distance`` (A)."""
        return int(np.argmin(np.abs(self.distances - distance)))

    def above_well(self, distance: float, well: tuple[float, float] = (0.5, 2.0)) -> float:
        """Energy (eV) at the scanned point nearest ``distance`` above the curve's well: its lowest
        energy between ``well`` (A). Negative: a hole below the bonded minimum."""
        lo, hi = well
        inside = (self.distances >= lo - 1e-9) & (self.distances <= hi + 1e-9)
        return float(self.energies[self.nearest(distance)] - self.energies[inside].min())

    def as_dict(self) -> dict:
        return {
            "distance_A": self.distances.tolist(),
            "energy_eV": self.energies.tolist(),
            "radial_force_eV_per_A": self.radial_forces.tolist(),
        }

    @classmethod
    def from_dict(cls, name: str, values: dict) -> PairScan:
        """The scan :meth:`as_dict` wrote (a scan JSON file's ``scans[name]``)."""
        return cls(name, *(np.asarray(values[key], dtype=float)
                           for key in ("distance_A", "energy_eV", "radial_force_eV_per_A")))


def parse_pair(text: str) -> tuple[str, str]:
    """``"H-H"`` -> ``("H", "H")``; raises :class:`PairError` naming the pair otherwise."""
    parts = [p.strip() for p in text.split("-")]
    if len(parts) != 2 or not all(parts):
        raise PairError(f"pair '{text}': write two element symbols joined by '-', e.g. H-H or O-H")
    for symbol in parts:
        if symbol not in atomic_numbers or symbol == "X":
            raise PairError(f"pair '{text}': '{symbol}' is not an element symbol")
    return parts[0], parts[1]


def default_spin(symbols: tuple[str, str], charge: int = 0) -> int:
    """Lowest multiplicity 2S+1 allowed by the electron count: 1 if even, 2 if odd."""
    electrons = atomic_numbers[symbols[0]] + atomic_numbers[symbols[1]] - charge
    return 1 + electrons % 2


def isolated_pair(symbols: tuple[str, str], distance: float = 1.0, spin: int | None = None, charge: int = 0) -> Atoms:
    """Two atoms on the z axis ``distance`` (A) apart, no cell; ``spin`` (2S+1) and ``charge`` in ``info``."""
    atoms = Atoms(symbols=list(symbols), positions=[[0.0, 0.0, 0.0], [0.0, 0.0, distance]])
    atoms.info[keys.CHARGE] = int(charge)
    atoms.info[keys.SPIN] = int(default_spin(symbols, charge) if spin is None else spin)
    return atoms


def check_pair(atoms: Atoms, i: int, j: int, where: str = "structure") -> None:
    """Raise :class:`PairError` unless ``i`` and ``j`` are two different atoms of ``atoms``."""
    for k in (i, j):
        if not -len(atoms) <= k < len(atoms):
            raise PairError(f"{where}: atom {k} does not exist (the structure has {len(atoms)} atoms)")
    if i % len(atoms) == j % len(atoms):
        raise PairError(f"{where}: atoms {i} and {j} are the same atom; give two different atoms")


def at_distance(atoms: Atoms, i: int, j: int, distance: float) -> Atoms:
    """Copy of ``atoms`` with atoms ``i`` and ``j`` moved along their axis to ``distance`` (A) apart,
    their midpoint and every other atom unchanged (the minimum-image vector in a periodic cell)."""
    out = atoms.copy()
    out.calc = None
    vector = atoms.get_distance(i, j, mic=True, vector=True)
    length = float(np.linalg.norm(vector))
    if length == 0.0:
        raise PairError(f"atoms {i} and {j} sit on top of each other; they have no axis to scan along")
    shift = 0.5 * (distance - length) * vector / length
    out.positions[i] -= shift
    out.positions[j] += shift
    return out


def scan_pair(
    calculator: Calculator, atoms: Atoms, i: int, j: int, distances, name: str = "calculator"
) -> PairScan:
    """Energy (eV) and radial force (eV/A) of ``atoms`` with atoms ``i``, ``j`` at each of ``distances`` (A)."""
    check_pair(atoms, i, j)
    distances = np.asarray(distances, dtype=float)
    energies, radial = [], []
    for r in distances:
        probe = at_distance(atoms, i, j, r)
        probe.calc = calculator
        energy = float(probe.get_potential_energy())
        forces = probe.get_forces()
        axis = probe.get_distance(i, j, mic=True, vector=True) / r
        energies.append(energy)
        radial.append(float(0.5 * (forces[j] - forces[i]) @ axis))
    return PairScan(name, distances, np.asarray(energies), np.asarray(radial))


class PairScanConfig(Strict):
    """What ``ffpt scan`` needs: calculators, the pair (isolated) or a structure and two of its atoms,
    the distances (A) and the output JSON (the PNG is written beside it)."""

    calculators: list[str] = Field(min_length=1)  # model files or teacher names
    teacher_options: dict = {}  # for every teacher among the calculators
    pair: str | None = None  # isolated pair, e.g. "H-H"
    spin: int | None = Field(None, ge=1)  # multiplicity 2S+1 (isolated pair default: 1 or 2 by electron
    # count; a structure keeps its own info["spin"] unless this is given)
    charge: int = 0  # isolated pair
    structure: Path | None = None  # or a geometry in which two atoms are scanned
    structure_index: int = 0
    atoms: tuple[int, int] | None = None  # the two atoms of ``structure`` (0-based)
    r_min: float = Field(0.2, gt=0)  # A
    r_max: float = Field(2.0, gt=0)  # A
    points: int = Field(37, ge=2)
    units: Literal["eV", "kcal/mol"] = "eV"  # of the plot (the JSON holds eV)
    out: Path = Path("pair_scan.json")

    @model_validator(mode="after")
    def _one_system(self):
        if (self.pair is None) == (self.structure is None):
            raise ValueError("give exactly one of pair (an isolated pair, e.g. H-H) or structure with atoms")
        if self.structure is not None and self.atoms is None:
            raise ValueError("structure needs atoms: the two atoms to scan, e.g. atoms=[0,3]")
        if self.structure is None and self.atoms is not None:
            raise ValueError("atoms applies to a structure; an isolated pair is given by pair")
        if self.r_min >= self.r_max:
            raise ValueError(f"r_min ({self.r_min}) must be below r_max ({self.r_max})")
        return self

    @property
    def distances(self) -> np.ndarray:
        return np.linspace(self.r_min, self.r_max, self.points)


def scan_system(config: PairScanConfig, structure: Atoms | None = None) -> tuple[Atoms, int, int]:
    """The geometry and the two atoms a config scans (``structure``: the config's, already read)."""
    if config.pair is not None:
        return isolated_pair(parse_pair(config.pair), spin=config.spin, charge=config.charge), 0, 1
    if structure is None:
        raise ValueError("a structure scan needs the structure read from the config's file")
    i, j = config.atoms
    check_pair(structure, i, j, where=f"{config.structure} frame {config.structure_index}")
    if config.spin is not None:
        structure = structure.copy()
        structure.info[keys.SPIN] = int(config.spin)
    return structure, i, j

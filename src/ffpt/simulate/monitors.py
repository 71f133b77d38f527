"""Stability monitors: each ``check(atoms, time_fs)`` returns ``None`` or the reason the run failed.

The MD engine runs them through :class:`ffpt.dynamics.engine.MonitorObserver` (every ``check_every``
steps); a monitor that keeps history across checks saves it with ``state_dict`` for resume.

Criteria follow Fu et al., "Forces are not enough" (2023): non-finite energy/forces, atoms closer
than a minimum distance, bonds of the start frame deviating more than 0.5 A from their length in
the relaxed structure (or the start frame), a windowed RDF drifting
from a reference, and (reactive systems) molecules outside an allowed set of species.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar, Sequence

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.geometry import find_mic

from ffpt.data.molecules import species_formulas
from ffpt.dynamics.engine import nonfinite_coordinates
from ffpt.models.graph import NeighborListBuilder
from ffpt.observables.species import hill_formula
from ffpt.observables.rdf import RDF, RDFAccumulator, compute_rdf, pair_name, parse_pair
from ffpt.simulate.config import MonitorConfig


class Monitor(ABC):
    """A stability criterion checked every few MD steps."""

    name: ClassVar[str]

    @abstractmethod
    def check(self, atoms: Atoms, time_fs: float) -> str | None:
        """``None`` if ``atoms`` is acceptable, else a one-line reason."""

    def state_dict(self) -> dict:
        """JSON-serialisable state needed to resume (default: none)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` output."""


class FiniteMonitor(Monitor):
    """Fails on non-finite positions, momenta, energy or forces."""

    name = "finite"

    def check(self, atoms: Atoms, time_fs: float) -> str | None:
        coordinates = nonfinite_coordinates(atoms)
        if coordinates is not None:
            return coordinates
        energy = atoms.get_potential_energy()
        if not np.isfinite(energy):
            return f"non-finite potential energy ({energy})"
        forces = atoms.get_forces(apply_constraint=False)
        if np.isfinite(forces).all():
            return None
        bad = np.argwhere(~np.isfinite(forces))
        if len(bad):
            return f"non-finite force on atom {bad[0, 0]}"
        return None


class ClosePairs:
    """Pairs of atoms (periodic images included) closer than ``cutoff`` (A), as ASE's
    ``neighbor_list("ijd", atoms, cutoff)`` lists them (both orders, here sorted by ``i`` then ``j``;
    distances computed as ASE does, the strict ``d < cutoff``): every pair of a small molecule at once,
    else vesin's cell list, where ASE's pure-Python search takes about a millisecond. Periodic
    distances may differ from ASE's in the last bit (ASE measures from wrapped positions)."""

    ALL_PAIRS_UP_TO = 64  # atoms of a non-periodic system whose pairs are all measured
    SEARCH_MARGIN = 1e-6  # A: vesin searches a little wider; the cutoff itself is applied here

    def __init__(self, cutoff: float):
        self.cutoff = float(cutoff)
        self._search = NeighborListBuilder(self.cutoff + self.SEARCH_MARGIN)
        self._all_pairs: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _pairs(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        if n not in self._all_pairs:
            i, j = np.nonzero(~np.eye(n, dtype=bool))
            self._all_pairs[n] = (i, j)
        return self._all_pairs[n]

    def __call__(self, atoms: Atoms) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(i, j, d): atom indices and distances (A) of the close pairs."""
        positions = atoms.positions
        if not atoms.pbc.any() and len(atoms) <= self.ALL_PAIRS_UP_TO:
            i, j = self._pairs(len(atoms))
            vectors = positions[j] - positions[i]
        else:
            cell = atoms.cell.array
            (i, j), shifts = self._search(positions, cell, atoms.pbc)
            vectors = positions[j] - positions[i] + shifts.dot(cell)
        d = np.sqrt(np.sum(vectors * vectors, axis=1))
        keep = np.flatnonzero(d < self.cutoff)
        keep = keep[np.lexsort((j[keep], i[keep]))]
        return i[keep], j[keep], d[keep]


class MinDistanceMonitor(Monitor):
    """Fails when two atoms (or periodic images) are closer than ``min_distance`` (A)."""

    name = "min_distance"

    def __init__(self, min_distance: float = 0.5):
        if min_distance <= 0:
            raise ValueError(f"min_distance must be > 0 A, got {min_distance}")
        self.min_distance = float(min_distance)
        self._pairs = ClosePairs(self.min_distance)

    def check(self, atoms: Atoms, time_fs: float) -> str | None:
        i, j, d = self._pairs(atoms)
        if len(d) == 0:
            return None
        k = int(np.argmin(d))
        a, b = sorted((int(i[k]), int(j[k])))
        return f"atoms {a} and {b} at {d[k]:.3f} A < min distance {self.min_distance} A"


class PairDistanceMonitor(Monitor):
    """Fails when two atoms of a named element pair come closer than that pair's limit (A),
    e.g. ``{"O-O": 2.2}`` for liquid water, where oxygens never approach closer than about 2.4 A."""

    name = "min_pair_distance"

    def __init__(self, limits: dict[str, float]):
        if not limits:
            raise ValueError("min_pair_distance needs at least one pair, e.g. {'O-O': 2.2}")
        self.limits = {}
        for pair, limit in limits.items():
            if limit <= 0:
                raise ValueError(f"min_pair_distance['{pair}'] must be > 0 A, got {limit}")
            self.limits[pair_name(*parse_pair(pair))] = float(limit)
        self._pairs = ClosePairs(max(self.limits.values()))

    def check(self, atoms: Atoms, time_fs: float) -> str | None:
        i, j, d = self._pairs(atoms)
        symbols = atoms.get_chemical_symbols()
        for a, b, r in sorted(zip(i, j, d), key=lambda t: t[2]):
            pair = pair_name(symbols[a], symbols[b])
            if pair in self.limits and r < self.limits[pair]:
                return f"atoms {a} and {b} ({pair}) at {r:.3f} A < {self.limits[pair]} A"
        return None


@dataclass(frozen=True)
class RelaxedReference:
    """Bond references from ``start`` relaxed with ``calculator`` (ASE BFGS, at most ``steps`` steps,
    converged when every force is below ``fmax`` eV/A). Deterministic: the same start, calculator
    and settings give the same minimum on the same machine."""

    calculator: Calculator
    fmax: float = 0.05
    steps: int = 300

    def __call__(self, start: Atoms) -> tuple[Atoms | None, str]:
        """The relaxed copy of ``start`` and a note; ``None`` and the reason if it did not converge."""
        from ase.optimize import BFGS

        relaxed = start.copy()
        relaxed.calc = self.calculator
        try:
            converged = BFGS(relaxed, logfile=None).run(fmax=self.fmax, steps=self.steps)
            forces = relaxed.get_forces()
        except Exception as exc:  # any calculator error: an unusable minimum, not a crash of the run
            return None, f"relaxation failed ({type(exc).__name__}: {exc})"
        fmax = float(np.sqrt((forces**2).sum(axis=1)).max()) if len(forces) else 0.0
        if not converged or not np.all(np.isfinite(relaxed.positions)):
            return None, f"relaxation did not converge in {self.steps} steps (max force {fmax:.3g} eV/A > {self.fmax})"
        return relaxed, f"relaxed with the run's calculator (max force {fmax:.3g} eV/A)"


class BondMonitor(Monitor):
    """Fails when a bond of the start frame deviates more than ``max_deviation`` (A) from its
    reference length (minimum-image lengths for periodic cells).

    Which pairs are bonds always comes from ``start`` (or ``pairs``). The reference lengths come
    from ``start`` itself, or, given ``relax`` (e.g. a :class:`RelaxedReference`), from the relaxed
    structure: a hot MD snapshot as the start would otherwise put a C-C reference at 1.44 A. The
    relaxation runs at the first check and its lengths are kept in :meth:`state_dict`, so a resumed
    run uses the very same references. If it does not converge, or breaks a start bond (the pair is no
    bond of the relaxed structure), the start frame's lengths are used and :attr:`note` says why.
    """

    name = "bond"

    def __init__(self, start: Atoms, max_deviation: float = 0.5, pairs: np.ndarray | None = None,
                 relax: Callable[[Atoms], tuple[Atoms | None, str]] | None = None):
        from ffpt.data import bonds

        if max_deviation <= 0:
            raise ValueError(f"max_bond_deviation must be > 0 A, got {max_deviation}")
        self.max_deviation = float(max_deviation)
        self.pairs = bonds(start) if pairs is None else np.asarray(pairs, dtype=int).reshape(-1, 2)
        self.symbols = start.get_chemical_symbols()
        self._start = start.copy()
        self._relax = relax
        self.reference_lengths: np.ndarray | None = None
        self.note = "start frame"
        if relax is None:
            self.reference_lengths = self._lengths(start)

    def _lengths(self, atoms: Atoms) -> np.ndarray:
        if len(self.pairs) == 0:
            return np.zeros(0)
        vectors = atoms.positions[self.pairs[:, 1]] - atoms.positions[self.pairs[:, 0]]
        _, lengths = find_mic(vectors, atoms.cell, atoms.pbc)
        return lengths

    def _index(self, i: int, j: int) -> int:
        return int(np.flatnonzero((self.pairs[:, 0] == i) & (self.pairs[:, 1] == j))[0])

    def reference(self) -> np.ndarray:
        """Reference bond lengths (A), relaxing the start frame the first time if asked to."""
        if self.reference_lengths is None:
            start = self._lengths(self._start)
            relaxed, note = self._relax(self._start)
            self.reference_lengths, self.note = start, f"start frame: {note}"
            if relaxed is not None:
                from ffpt.data import bonds

                kept = {tuple(p) for p in bonds(relaxed).tolist()}
                broken = [(int(i), int(j)) for i, j in self.pairs if (i, j) not in kept]
                if broken:
                    i, j = broken[0]
                    self.note = (f"start frame: the relaxed structure broke bond {i}-{j}"
                                 f" ({self._lengths(relaxed)[self._index(i, j)]:.3f} A)")
                else:
                    self.reference_lengths, self.note = self._lengths(relaxed), note
            if self.note.startswith("start frame"):
                warnings.warn(f"bond monitor references from the {self.note}", stacklevel=2)
        return self.reference_lengths

    def check(self, atoms: Atoms, time_fs: float) -> str | None:
        if len(self.pairs) == 0:
            return None
        reference = self.reference()
        lengths = self._lengths(atoms)
        deviation = np.abs(lengths - reference)
        k = int(np.argmax(deviation))
        if deviation[k] <= self.max_deviation:
            return None
        i, j = (int(x) for x in self.pairs[k])
        return (
            f"bond {i}-{j} ({self.symbols[i]}-{self.symbols[j]}) length {lengths[k]:.3f}"
            f" A is {deviation[k]:.3f} A from its reference {reference[k]:.3f} A"
            f" (> {self.max_deviation} A)"
        )

    def state_dict(self) -> dict:
        if self._relax is None or self.reference_lengths is None:
            return {}
        return {"reference_lengths": self.reference_lengths.tolist(), "reference": self.note}

    def load_state_dict(self, state: dict) -> None:
        if self._relax is not None and "reference_lengths" in state:
            self.reference_lengths = np.asarray(state["reference_lengths"], dtype=float)
            self.note = state["reference"]


class SpeciesMonitor(Monitor):
    """Fails when molecules whose Hill formula (e.g. ``"H3O"``) is not in ``allowed`` have been
    present at every check for at least ``patience_fs`` (fs). A patience of a few tens of fs lets
    transition-state complexes (e.g. H2O4 while H hops between two O2 units) pass."""

    name = "species"

    def __init__(self, allowed: Sequence[str], patience_fs: float = 0.0):
        if not allowed:
            raise ValueError("allowed_species must name at least one species")
        if patience_fs < 0:
            raise ValueError(f"species patience must be >= 0 fs, got {patience_fs}")
        self.allowed = {hill_formula(formula) for formula in allowed}
        self.patience_fs = float(patience_fs)
        self._since: float | None = None  # start of the current run of checks with foreign species

    def check(self, atoms: Atoms, time_fs: float) -> str | None:
        foreign = [(formula, idx) for formula, idx in species_formulas(atoms) if formula not in self.allowed]
        if not foreign:
            self._since = None
            return None
        if self._since is None:
            self._since = time_fs
        if time_fs - self._since < self.patience_fs:
            return None
        formula, idx = foreign[0]
        return (
            f"species {formula} (atoms {idx.tolist()}) not in allowed set {sorted(self.allowed)}"
            f" (foreign species since {self._since:g} fs)"
        )

    def state_dict(self) -> dict:
        return {"since": self._since}

    def load_state_dict(self, state: dict) -> None:
        self._since = state.get("since")


class RDFMonitor(Monitor):
    """Fails when the RDF averaged over the last ``window`` checked frames differs from ``reference``:

        error = sum over pairs of int_0^rmax |g_window(r) - g_ref(r)| dr   (A)  >  threshold.

    Nothing is judged before the window is full.
    """

    name = "rdf"

    def __init__(self, reference: RDF, threshold: float = 1.5, window: int = 20, pairs: Sequence[str] | None = None):
        if threshold <= 0 or window < 1:
            raise ValueError(f"RDF monitor needs threshold > 0 and window >= 1 (got {threshold}, {window})")
        self.reference = reference
        self.threshold = float(threshold)
        self.pairs = [pair_name(*parse_pair(p)) for p in pairs] if pairs is not None else sorted(reference.g)
        missing = [p for p in self.pairs if p not in reference.g]
        if missing:
            raise ValueError(f"reference RDF has no pair {', '.join(missing)} (has {', '.join(sorted(reference.g))})")
        edges = reference.edges
        if not np.allclose(np.diff(edges), edges[1] - edges[0]) or edges[0] != 0.0:
            raise ValueError("reference RDF must have uniform bins starting at 0")
        self._acc = RDFAccumulator(float(edges[-1]), len(edges) - 1, self.pairs)
        self._window: deque[dict[str, np.ndarray]] = deque(maxlen=window)
        self.last_error: float | None = None

    def check(self, atoms: Atoms, time_fs: float) -> str | None:
        self._window.append(self._acc.frame_g(atoms, where=f"t = {time_fs:g} fs"))
        if len(self._window) < self._window.maxlen:
            return None
        mean = {name: np.mean([g[name] for g in self._window], axis=0) for name in self.pairs}
        current = RDF(self.reference.edges, mean, len(self._window))
        self.last_error = current.error(self.reference, self.pairs)
        if self.last_error > self.threshold:
            return (
                f"RDF error {self.last_error:.3f} A over the last {len(self._window)} checks exceeds "
                f"{self.threshold} A (pairs {', '.join(self.pairs)})"
            )
        return None

    def state_dict(self) -> dict:
        return {"window": [{k: v.tolist() for k, v in g.items()} for g in self._window]}

    def load_state_dict(self, state: dict) -> None:
        self._window.clear()
        for g in state.get("window", []):
            self._window.append({k: np.asarray(v, dtype=float) for k, v in g.items()})


def load_reference_rdf(path: str | Path, rmax: float, bins: int, pairs: Sequence[str] | None = None) -> RDF:
    """A reference RDF from an RDF json file, or computed from a reference trajectory."""
    import ase.io

    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such reference RDF or trajectory")
    if path.suffix == ".json":
        return RDF.load(path)
    try:
        frames = ase.io.read(path, index=":")
    except Exception as exc:  # ase raises many types for unreadable files
        raise ValueError(f"{path}: cannot read reference trajectory ({exc})") from None
    return compute_rdf(frames, rmax=rmax, bins=bins, pairs=pairs)


def build_monitors(config: MonitorConfig, start: Atoms, calculator: Calculator | None = None) -> list[Monitor]:
    """Monitors of a :class:`MonitorConfig` (bond topology from ``start``); the finite check comes first.
    Bond references relaxed (``bond_reference: relaxed``) need the run's ``calculator``."""
    monitors: list[Monitor] = [FiniteMonitor()]
    if config.min_distance is not None:
        monitors.append(MinDistanceMonitor(config.min_distance))
    if config.min_pair_distance is not None:
        monitors.append(PairDistanceMonitor(config.min_pair_distance))
    if config.max_bond_deviation is not None:
        relax = None
        if config.bond_reference == "relaxed":
            if calculator is None:
                raise ValueError("bond_reference 'relaxed' needs the run's calculator")
            relax = RelaxedReference(calculator, config.relax_fmax, config.relax_steps)
        monitors.append(BondMonitor(start, config.max_bond_deviation, relax=relax))
    if config.allowed_species is not None:
        monitors.append(SpeciesMonitor(config.allowed_species, config.species_patience_fs))
    if config.reference_rdf is not None:
        reference = load_reference_rdf(config.reference_rdf, config.rdf_rmax, config.rdf_bins, config.rdf_pairs)
        monitors.append(RDFMonitor(reference, config.rdf_threshold, config.rdf_window, config.rdf_pairs))
    return monitors

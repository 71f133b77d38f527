"""Energies and forces of many systems at once: what batched MD replicas (:mod:`ffpt.dynamics.batched`) call.

:class:`ModelBatch` evaluates an ffpt model (:class:`~ffpt.models.potential.InteratomicPotential`, eager,
or with ``torch.compile`` when its calculator was made so) on one disjoint-graph batch of all systems,
as training batches frames: systems of different structures and sizes share the call, and a system's
energy and forces do not depend on which others share it (its graph is disconnected from theirs).
:class:`PackageBatch` does the same with an exported ``.pt2`` package (``ffpt export``, format 2).
:class:`OneByOne` serves any other ASE calculator (teachers, committees, MACE's own calculator, format 1
packages) one system after another, so every calculator runs under the same batched engine.
:func:`batch_evaluator` picks between them.

Units: eV, A. Each system is an ASE ``Atoms`` whose positions the engine moves; what does not change
along a run (species, cell, spin) is turned into tensors once per system.
"""

from __future__ import annotations

import warnings
import weakref
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from ffpt.data.frames import spin_of
from ffpt.models.calculator import MLIPCalculator, check_structure
from ffpt.models.exported import ExportedCalculator
from ffpt.models.graph import AtomicGraph, NeighborListBuilder, species_index
from ffpt.models.potential import InteratomicPotential, check_spin


DENSE_MAX_ATOMS = 64  # molecules up to this size get their neighbour lists from batched distance matrices
CPU_MAX_EDGES = 2048  # neighbour pairs per model call on a CPU (see ModelBatch)
MAX_FIXED_SETS = 64  # sets of systems whose fixed batch tensors are kept (a batch's calls and its leavers)


class SystemEvaluationError(Exception):
    """Evaluation of one system of a batch failed; ``index`` is its position in the call."""

    def __init__(self, index: int, error: Exception):
        super().__init__(f"system {index}: {type(error).__name__}: {error}")
        self.index, self.error = index, error


@dataclass
class _Static:
    """The tensors of a system that do not change along a run."""

    species: torch.Tensor
    cell: torch.Tensor  # (1, 3, 3)
    cell_np: np.ndarray
    pbc: np.ndarray
    spin: int


@dataclass
class _Fixed:
    """The tensors of a batch of systems that do not change along a run (see :meth:`ModelBatch._fixed`)."""

    statics: list[_Static]
    species: torch.Tensor
    batch: torch.Tensor
    n_atoms: torch.Tensor
    cell: torch.Tensor
    spin: torch.Tensor


class ModelBatch:
    """One forward pass of ``model`` over a disjoint-graph batch of systems (on ``model``'s device)."""

    def __init__(self, model: InteratomicPotential, source: str = "in memory", max_edges: int | None = None):
        """``max_edges``: at most this many neighbour pairs per model call (consecutive systems; a larger
        system alone); default ``CPU_MAX_EDGES`` on a CPU, where a batch whose edge tensors outgrow the
        caches costs more per atom (BENCHMARKS.md, "Batched replicas"), and no limit on a GPU."""
        parameter = next(model.parameters())
        self._setup(model, source, parameter.device, parameter.dtype, max_edges)

    def _setup(self, model, source: str, device: torch.device, dtype: torch.dtype, max_edges: int | None) -> None:
        """``model``: anything with ``elements``, ``cutoff``, ``max_spin`` and ``architecture``."""
        self.model = model
        self.source = source
        self.device, self.dtype = device, dtype
        self.max_edges = max_edges if max_edges is not None else (
            CPU_MAX_EDGES if self.device.type == "cpu" else None)
        self.neighbors = NeighborListBuilder(model.cutoff)
        self._static: dict[int, tuple[weakref.ref, _Static]] = {}
        self._fixed_by_ids: dict[tuple[int, ...], _Fixed] = {}

    def _describe(self, atoms: Atoms) -> _Static:
        """The static tensors of ``atoms`` (made once per ``Atoms`` object while it lives)."""
        key = id(atoms)
        entry = self._static.get(key)
        if entry is None or entry[0]() is not atoms:  # a new object (ids of dead ones are reused)
            check_structure(self.model, atoms, self.source)
            check_spin(atoms, self.model.max_spin, self.model.architecture)
            cell = np.asarray(atoms.cell.array, dtype=float)
            static = _Static(
                species=torch.from_numpy(species_index(atoms.numbers, self.model.elements)),
                cell=torch.tensor(cell, dtype=self.dtype).unsqueeze(0), cell_np=cell,
                pbc=np.asarray(atoms.pbc, dtype=bool).copy(), spin=int(spin_of(atoms, default=0)))
            self._static = {k: v for k, v in self._static.items() if v[0]() is not None}
            entry = self._static[key] = (weakref.ref(atoms), static)
        return entry[1]

    def _pairs(self, systems: Sequence[Atoms], statics: Sequence[_Static]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each system's (edge_index (2, E), shifts (E, 3)): small molecules (no periodic direction, at
        most ``DENSE_MAX_ATOMS`` atoms) of one size together from their distance matrices, edges in
        (i, j) order; the others from vesin one by one."""
        out: list = [None] * len(systems)
        groups: dict[int, list[int]] = {}
        for k, (atoms, static) in enumerate(zip(systems, statics)):
            if not static.pbc.any() and len(atoms) <= DENSE_MAX_ATOMS:
                groups.setdefault(len(atoms), []).append(k)
                continue
            try:
                out[k] = self.neighbors(atoms.positions, static.cell_np, static.pbc)
            except Exception as exc:  # e.g. vesin refusing a system that exploded
                raise SystemEvaluationError(k, exc) from None
        cutoff2 = self.neighbors.cutoff**2
        for n, members in groups.items():
            positions = np.stack([systems[k].positions for k in members])  # (G, n, 3)
            d2 = ((positions[:, :, None, :] - positions[:, None, :, :]) ** 2).sum(-1)
            within = d2 < cutoff2
            within[:, np.arange(n), np.arange(n)] = False
            g, i, j = np.nonzero(within)
            counts = np.bincount(g, minlength=len(members))
            for k, pairs in zip(members, np.split(np.stack([i, j]), np.cumsum(counts)[:-1], axis=1)):
                out[k] = (pairs, np.zeros((pairs.shape[1], 3), dtype=np.int64))
        return out

    def graph(self, systems: Sequence[Atoms], pairs: Sequence[tuple[np.ndarray, np.ndarray]] | None = None
              ) -> AtomicGraph:
        """The batched graph of ``systems`` at their current positions (edges of each within the cutoff;
        ``pairs``: their neighbour lists, if known)."""
        statics = [self._describe(atoms) for atoms in systems]
        pairs = self._pairs(systems, statics) if pairs is None else pairs
        edges, shifts, offset = [], [], 0
        for atoms, (pair, shift) in zip(systems, pairs):
            edges.append(pair + offset)
            shifts.append(shift)
            offset += len(atoms)
        fixed = self._fixed(statics)
        graph = AtomicGraph(
            positions=torch.from_numpy(np.concatenate([a.positions for a in systems])).to(self.dtype),
            edge_index=torch.from_numpy(np.concatenate(edges, axis=1)),
            shifts=torch.from_numpy(np.concatenate(shifts)),
            species=fixed.species, batch=fixed.batch, cell=fixed.cell, n_atoms=fixed.n_atoms, spin=fixed.spin,
        )
        return graph.to(self.device)

    def _fixed(self, statics: Sequence[_Static]) -> _Fixed:
        """The batch's tensors that stay while the same systems run together (made once per set of
        systems: MD steps the same batch over and over)."""
        key = tuple(map(id, statics))  # an entry holds its statics, so their ids are not reused meanwhile
        fixed = self._fixed_by_ids.get(key)
        if fixed is None:
            n_atoms = torch.tensor([len(s.species) for s in statics], dtype=torch.long)
            fixed = _Fixed(
                statics=list(statics), species=torch.cat([s.species for s in statics]),
                batch=torch.repeat_interleave(torch.arange(len(statics)), n_atoms), n_atoms=n_atoms,
                cell=torch.cat([s.cell for s in statics]),
                spin=torch.tensor([s.spin for s in statics], dtype=torch.long))
            if len(self._fixed_by_ids) >= MAX_FIXED_SETS:
                self._fixed_by_ids.clear()
            self._fixed_by_ids[key] = fixed
        return fixed

    def evaluate(self, systems: Sequence[Atoms]) -> list[dict]:
        """ASE-style results (``energy``, ``free_energy`` eV; ``forces`` (n, 3) eV/A) of each system,
        in one model call per ``max_edges`` neighbour pairs."""
        statics = [self._describe(atoms) for atoms in systems]
        pairs = self._pairs(systems, statics)
        out, start, edges = [], 0, 0
        for k, (pair, _) in enumerate(pairs):
            if k > start and self.max_edges is not None and edges + pair.shape[1] > self.max_edges:
                out += self._call(systems[start:k], pairs[start:k])
                start, edges = k, 0
            edges += pair.shape[1]
        if start < len(systems):
            out += self._call(systems[start:], pairs[start:])
        return out

    def predict(self, graph: AtomicGraph) -> tuple[torch.Tensor, torch.Tensor]:
        """Energies (G,) eV and forces (N, 3) eV/A of the batched ``graph``."""
        prediction = self.model(graph, forces=True)
        return prediction.energy, prediction.forces

    def _call(self, systems: Sequence[Atoms], pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[dict]:
        """One model call on ``systems`` with their neighbour lists ``pairs``."""
        energies, forces = self.predict(self.graph(systems, pairs))
        energies = energies.detach().cpu().double().numpy()
        forces = forces.detach().cpu().double().numpy()
        bounds = np.cumsum([0] + [len(a) for a in systems])
        return [{"energy": float(e), "free_energy": float(e), "forces": forces[a:b]}
                for e, a, b in zip(energies, bounds[:-1], bounds[1:])]


class PackageBatch(ModelBatch):
    """One call of an exported package (``ffpt export``, format 2) over a disjoint-graph batch of systems."""

    def __init__(self, calculator: ExportedCalculator, max_edges: int | None = None):
        self._setup(calculator, calculator.source, calculator.device, calculator.dtype, max_edges)

    def predict(self, graph: AtomicGraph) -> tuple[torch.Tensor, torch.Tensor]:
        energies, forces, _ = self.model.run(graph)
        return energies, forces


class OneByOne:
    """Any ASE calculator, one system after another (its own results, e.g. a committee's spread, kept)."""

    def __init__(self, calculator: Calculator):
        self.calculator = calculator

    def evaluate(self, systems: Sequence[Atoms]) -> list[dict]:
        out = []
        for k, atoms in enumerate(systems):
            try:
                self.calculator.calculate(atoms, ["energy", "forces"], all_changes)
            except Exception as exc:
                raise SystemEvaluationError(k, exc) from None
            out.append({name: (np.array(value) if isinstance(value, np.ndarray) else value)
                        for name, value in self.calculator.results.items()})
        return out


def batch_evaluator(calculator: Calculator) -> ModelBatch | OneByOne:
    """One model call per batch for an ffpt model file's calculator or a (format 2, one-model) exported
    package; one call per system otherwise (with a warning: batching then saves only the engine's share
    of a step)."""
    if isinstance(calculator, MLIPCalculator):
        return ModelBatch(calculator.model, calculator.source)
    if isinstance(calculator, ExportedCalculator) and calculator.batched and not calculator.committee:
        return PackageBatch(calculator)
    name = getattr(calculator, "source", None) or type(calculator).__name__
    warnings.warn(f"{name}: batched replicas call this calculator once per replica and step (one model call "
                  "for the whole batch needs a single ffpt model file, .pt, or its ffpt export package)",
                  stacklevel=2)
    return OneByOne(calculator)


def evaluate_each(evaluator: ModelBatch | OneByOne, systems: Sequence[Atoms]) -> list[dict | Exception]:
    """Results of each system, or the exception its evaluation raised: when the batch call fails, each
    system is evaluated alone, so one that fails does not take the others down with it."""
    try:
        return list(evaluator.evaluate(systems))
    except Exception:  # noqa: BLE001 - which system failed is found below
        pass
    out: list[dict | Exception] = []
    for atoms in systems:
        try:
            out.append(evaluator.evaluate([atoms])[0])
        except SystemEvaluationError as exc:
            out.append(exc.error)
        except Exception as exc:  # noqa: BLE001 - any calculator error ends that system's run
            out.append(exc)
    return out

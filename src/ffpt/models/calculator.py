"""The ASE calculator of an ffpt model: energy (eV), forces (eV/A), stress (eV/A^3, periodic cells).

Per MD step the calculator does only what changed: a frame equal to the last one (ASE asks for the
forces again at the same positions) is recognised by exact comparison before ASE's tolerance checks,
the frame checks (elements, cell, spin) and the graph's fixed tensors (species, cell, spin) are kept
while atomic numbers, cell, periodicity, spin and charge stay the same, and only positions and the
neighbour list are rebuilt. Results are those of :func:`ffpt.models.graph.graph_from_atoms` frame by frame.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.data import chemical_symbols
from ase.stress import full_3x3_to_voigt_6_stress

from ffpt.data.frames import DataError, check_cell, spin_of
from ffpt import keys
from ffpt.models.graph import AtomicGraph, NeighborListBuilder, species_index
from ffpt.models.model_file import load_model
from ffpt.models.potential import InteratomicPotential, check_spin


class UnknownElementError(DataError, KeyError):
    """A structure with an element the model was not trained on (also a ``KeyError``, as the graph's)."""

    __str__ = BaseException.__str__  # no quotes around the message, unlike KeyError's


def check_structure(model, atoms, source: str, where: str | None = None) -> None:
    """A :class:`DataError` for a structure ``model`` (anything with ``elements``; read from the file
    ``source``) cannot evaluate:
    an element it was not trained on (naming the atom index, element and model file) or a periodic
    cell of zero volume. ``where`` (e.g. "water.xyz frame 3") prefixes the message."""
    prefix = f"{where}, " if where else ""
    known = np.isin(atoms.numbers, model.elements)
    if not known.all():
        i = int(np.flatnonzero(~known)[0])
        missing = sorted({chemical_symbols[z] for z in atoms.numbers[~known]})
        names = ", ".join(chemical_symbols[z] for z in model.elements)
        raise UnknownElementError(f"{prefix}atom {i} ({chemical_symbols[atoms.numbers[i]]}): element(s) "
                                  f"{missing} not known to model {source} (elements: {names})")
    check_cell(atoms, where or "frame")


FRAME_INFO = (keys.SPIN, keys.CHARGE)  # info keys that are model inputs


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """The same array bit for bit (a byte comparison: several times faster than ``(a == b).all()`` on a
    molecule's arrays; a NaN equals the same NaN, so a repeated frame is answered from the cache)."""
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def same_frame(atoms, other, positions: bool = True) -> bool:
    """Whether ``atoms`` and ``other`` hold bit for bit the same model inputs: positions (unless
    ``positions`` is false), numbers, cell, periodicity, initial charges and magnetic moments (ASE's
    ``all_changes``) and info spin and charge."""
    arrays, others = atoms.arrays, other.arrays
    if positions and not _same(arrays["positions"], others["positions"]):
        return False
    if not _same(arrays["numbers"], others["numbers"]):
        return False
    if not _same(atoms.cell.array, other.cell.array) or not _same(atoms.pbc, other.pbc):
        return False
    for name in ("initial_charges", "initial_magmoms"):
        if (name in arrays) != (name in others) or (name in arrays and not _same(arrays[name], others[name])):
            return False
    return all(atoms.info.get(key) == other.info.get(key) for key in FRAME_INFO)


def _close(a, b, tol: float) -> bool:
    """ASE's ``equal(a, b, atol=tol)``: ``numpy.allclose(a, b, rtol=0, atol=tol)`` (equal infinities
    close, NaN never), exact equality checked first."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if _same(a, b):
        return True
    equal = a == b
    if a.dtype.kind != "f" or b.dtype.kind != "f":
        return bool(np.allclose(a, b, rtol=0, atol=tol))
    return bool(((np.abs(a - b) <= tol) | equal).all())


def changed_inputs(old, new, tol: float = 1e-15, ignored: set = frozenset()) -> list[str]:
    """What ASE's ``compare_atoms(old, new, tol)`` reports changed (cell, pbc, the arrays of
    ``all_changes``), then ``spin`` and ``charge`` if ``info`` differs in them."""
    changes = [name for name in ("cell", "pbc") if name not in ignored
               and not _close(getattr(old, name), getattr(new, name), tol)]
    checked = set(all_changes) - {"cell", "pbc"} - set(ignored)
    names, others = set(old.arrays) & checked, set(new.arrays) & checked
    changes += sorted(names ^ others)
    changes += [name for name in sorted(names & others) if not _close(old.arrays[name], new.arrays[name], tol)]
    return changes + [key for key in FRAME_INFO if old.info.get(key) != new.info.get(key)]


INPUT_ARRAYS = ("numbers", "positions", "initial_charges", "initial_magmoms")  # ASE's all_changes arrays


def input_copy(atoms) -> Atoms:
    """What the calculator keeps of the frame it evaluated (``self.atoms``): ASE's ``Atoms.copy`` without
    constraints and without arrays the model does not read (momenta, labels); cell, pbc and ``info``
    as ASE copies them. A copy per step, so the constraint's deep copy is worth leaving out."""
    copy = Atoms(cell=atoms.cell, pbc=atoms.pbc, info=atoms.info)
    copy.arrays = {name: atoms.arrays[name].copy() for name in INPUT_ARRAYS if name in atoms.arrays}
    return copy


class _FixedInputs:
    """The tensors of a frame's graph that do not change while numbers, cell, pbc and spin stay the
    same (species index, batch, cell, atom count, spin), and the key they were made for."""

    def __init__(self, atoms, elements, dtype: torch.dtype, device: torch.device):
        self.cell = np.asarray(atoms.cell.array, dtype=float)
        self.pbc = atoms.pbc.copy()
        self.key = self.key_of(atoms)
        self.tensors = dict(
            species=torch.from_numpy(species_index(atoms.numbers, elements)),
            batch=torch.zeros(len(atoms), dtype=torch.long),
            cell=torch.tensor(self.cell, dtype=dtype).unsqueeze(0),
            n_atoms=torch.tensor([len(atoms)], dtype=torch.long),
            spin=torch.tensor([spin_of(atoms, default=0)], dtype=torch.long),
        )
        if device.type != "cpu":
            self.tensors = {name: t.to(device) for name, t in self.tensors.items()}

    @staticmethod
    def key_of(atoms) -> tuple:
        return (atoms.numbers.tobytes(), atoms.cell.array.tobytes(), atoms.pbc.tobytes(),
                *(atoms.info.get(key) for key in FRAME_INFO))


class GraphCalculator(Calculator):
    """What the eager and the exported calculator share: the frame checks (elements, cell, spin), the
    neighbour list (vesin) and ASE's results. Subclasses set ``elements``, ``cutoff`` (A), ``max_spin``,
    ``architecture``, ``dtype``, ``device``, ``source`` and implement :meth:`evaluate`."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]
    elements: list[int]
    cutoff: float  # A
    max_spin: int
    architecture: str
    dtype: torch.dtype
    device: torch.device
    source: str
    _fixed: _FixedInputs | None = None  # of the last frame that passed the checks
    _record: Atoms | None = None  # the last input_copy, reused while only positions change

    def evaluate(self, graph, stress: bool) -> tuple[float, np.ndarray, np.ndarray | None]:  # pragma: no cover
        """Energy (eV), forces (N, 3) eV/A and, if ``stress``, the stress (3, 3) eV/A^3 of a one-frame graph."""
        raise NotImplementedError

    def check_atoms(self, atoms, where: str | None = None) -> None:
        """See :func:`check_structure`."""
        check_structure(self, atoms, self.source, where)

    def check_state(self, atoms, tol=1e-15):
        """ASE's checks (:func:`ase.calculators.calculator.compare_atoms`: cell, pbc and the arrays of
        ``all_changes`` differing by more than ``tol``) plus the frame's spin multiplicity and charge
        (inputs of the model). Properties exactly equal are passed without ASE's ``allclose``."""
        if self.atoms is None:
            return list(all_changes)
        if same_frame(atoms, self.atoms, positions=False) and "positions" not in self.ignored_changes:
            moved = not _close(self.atoms.arrays["positions"], atoms.arrays["positions"], tol)
            return ["positions"] if moved else []  # an MD step: only positions can have changed
        return changed_inputs(self.atoms, atoms, tol, set(self.ignored_changes))

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        if atoms is not None and (self.atoms is None or not same_frame(atoms, self.atoms)):
            self.atoms = self.record(atoms)
        want_stress = "stress" in properties and bool(self.atoms.pbc.all())
        if "stress" in properties and not want_stress:
            raise NotImplementedError("stress needs a cell periodic in all three directions")
        self.results = self.graph_results(self.graph(self.atoms), want_stress)

    def record(self, atoms) -> Atoms:
        """The calculator's record of the frame it evaluates (``self.atoms``): :func:`input_copy` of
        ``atoms``, or, when only positions and ``info`` changed since the last, the last record with
        the new positions copied into it (MD: a step costs no new ``Atoms``). A record held from an
        earlier step therefore shows the latest positions."""
        record = self._record
        if record is not None and same_frame(atoms, record, positions=False):
            record.arrays["positions"][:] = atoms.arrays["positions"]
            record.info = dict(atoms.info)
        else:
            record = self._record = input_copy(atoms)
        return record

    def fixed_inputs(self, atoms) -> _FixedInputs:
        """The checked fixed tensors of ``atoms`` (the frame checks run when numbers, cell, pbc, spin or
        charge differ from the last frame's)."""
        fixed = self._fixed
        if fixed is None or fixed.key != _FixedInputs.key_of(atoms):
            check_spin(atoms, self.max_spin, self.architecture)  # a spin the model would ignore: user error
            self.check_atoms(atoms)
            fixed = self._fixed = _FixedInputs(atoms, self.elements, self.dtype, self.device)
        return fixed

    def graph(self, atoms) -> AtomicGraph:
        """The one-frame graph of ``atoms`` (equal to :func:`~ffpt.models.graph.graph_from_atoms`, on
        ``device``); only positions and the neighbour list are made anew for a frame like the last."""
        fixed = self.fixed_inputs(atoms)
        edge_index, shifts = self.neighbors(atoms.positions, fixed.cell, fixed.pbc)
        positions, edge_index, shifts = (torch.from_numpy(atoms.positions).to(self.dtype, copy=True),
                                         torch.from_numpy(edge_index), torch.from_numpy(shifts))
        if self.device.type != "cpu":
            positions, edge_index, shifts = positions.to(self.device), edge_index.to(self.device), shifts.to(self.device)
        return AtomicGraph(positions=positions, edge_index=edge_index, shifts=shifts, **fixed.tensors)

    def graph_results(self, graph, stress: bool) -> dict:
        """ASE's results (energy eV, forces eV/A, stress as Voigt 6-vector eV/A^3) of a one-frame graph."""
        energy, forces, stress_3x3 = self.evaluate(graph, stress)
        results = {"energy": energy, "free_energy": energy, "forces": forces}
        if stress:
            results["stress"] = full_3x3_to_voigt_6_stress(stress_3x3)
        return results


class MLIPCalculator(GraphCalculator):
    """Serves any :class:`InteratomicPotential` to ASE. ``source``: the model file, named in errors."""

    def __init__(
        self,
        model: InteratomicPotential,
        device: str = "cpu",
        dtype: torch.dtype | None = None,
        compile: bool = False,
        source: str | os.PathLike | None = None,
        **kwargs,
    ):
        """``compile``: run the network through ``torch.compile`` (dynamic shapes). The first call then
        takes minutes (code generation); later calls are faster (about 3x for NewtonNet on CPU)."""
        super().__init__(**kwargs)
        self.source = str(source) if source is not None else "in memory"
        self.device = torch.device(device)
        self.model = model.to(device=self.device, dtype=dtype) if dtype else model.to(self.device)
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        if compile:
            self.model.atomic_energies = torch.compile(self.model.atomic_energies, dynamic=True)
        self.dtype = next(self.model.parameters()).dtype
        self.elements, self.max_spin, self.architecture = model.elements, model.max_spin, model.architecture
        self.cutoff = float(self.model.cutoff)
        self.neighbors = NeighborListBuilder(self.model.cutoff)

    @classmethod
    def from_file(
        cls, path: str | os.PathLike, device: str = "cpu", dtype: torch.dtype | None = None, compile: bool = False,
        **kwargs,
    ):
        return cls(load_model(path, device=device), device=device, dtype=dtype, compile=compile, source=path,
                   **kwargs)

    def evaluate(self, graph, stress: bool):
        pred = self.model(graph, forces=True, stress=stress)
        forces = pred.forces.detach().cpu().numpy().astype(float)
        return float(pred.energy.detach().cpu().sum()), forces, (
            pred.stress[0].detach().cpu().numpy().astype(float) if stress else None)

"""Classical force-field teachers from RDKit: MMFF94(s) for organics, UFF for everything else.

Each molecule of a frame is typed from its elements and bonds (bond orders and radicals from
RDKit's xyz2mol implementation, ``rdDetermineBonds.DetermineBondOrders``, with the frame's
charge) and evaluated alone; the frame's label is the sum (no intermolecular term). The RDKit
force field of a molecular graph is built once and cached; each frame only passes coordinates.
A molecule of the lowest spin consistent with its electron count is typed (triplet O2 is O=O).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms

from ffpt.data.frames import describe_frame
from ffpt.teachers.base import Label, TeacherInfo
from ffpt.teachers.topology import Molecule, MoleculeTeacher, TypingError
from ffpt.units import KCAL_PER_MOL

# include every intramolecular non-bonded pair, independent of the first geometry seen
_ALL_PAIRS = 1.0e6

# method -> RDKit's spelling (RDKit treats any unknown MMFF variant name as MMFF94)
_NAMES = {"uff": "UFF", "mmff94": "MMFF94", "mmff94s": "MMFF94s"}


def rdkit_molecule(numbers, bonds, positions: np.ndarray, charge: int = 0):
    """Sanitized RDKit molecule with bond orders from elements, bonds and total ``charge``.

    Radicals are preferred over formal charges for neutral molecules (OH, HO2); charged
    fragments are tried first for ions. Raises ``ValueError`` with RDKit's reason on failure.
    """
    from rdkit import Chem, rdBase
    from rdkit.Chem import rdDetermineBonds
    from rdkit.Geometry import Point3D

    quiet = rdBase.BlockLogs()  # failures are reported in the exception, not on stderr  # noqa: F841
    editable = Chem.RWMol()
    for z in numbers:
        atom = Chem.Atom(int(z))
        atom.SetNoImplicit(True)
        editable.AddAtom(atom)
    for i, j in bonds:
        editable.AddBond(int(i), int(j), Chem.BondType.SINGLE)
    conformer = Chem.Conformer(len(numbers))
    for k, p in enumerate(np.asarray(positions, dtype=float)):
        conformer.SetAtomPosition(k, Point3D(*p))
    editable.AddConformer(conformer, assignId=True)
    reasons = []
    for charged in ((True, False) if charge else (False, True)):
        mol = Chem.Mol(editable)
        try:
            rdDetermineBonds.DetermineBondOrders(
                mol, charge=int(charge), allowChargedFragments=charged, embedChiral=False
            )
            Chem.SanitizeMol(mol)
            return mol
        except Exception as exc:  # RDKit raises ValueError and its own valence exceptions
            reasons.append(str(exc).strip())
    raise ValueError("no valid bond orders: " + "; ".join(dict.fromkeys(reasons)))


@dataclass
class _Entry:
    """A cached RDKit molecule and its force field (kept together: the field refers to it)."""

    mol: object
    field: object


class RDKitForceFieldTeacher(MoleculeTeacher):
    """UFF or MMFF94(s) per isolated molecule.

    ``method``: "uff", "mmff94" or "mmff94s"; ``topology``/``bond_scale``: see
    :class:`~ffpt.teachers.topology.MoleculeTeacher`.
    """

    caches = ("_cache",)

    def __init__(self, method: str = "uff", **kwargs):
        method = method.lower()
        if method not in _NAMES:
            raise ValueError(f"unknown RDKit force field '{method}'; known: {', '.join(_NAMES)}")
        self.method = method
        self._cache: dict[tuple, _Entry] = {}
        super().__init__(**kwargs)

    @property
    def info(self) -> TeacherInfo:
        import rdkit

        name = "uff" if self.method == "uff" else "mmff94"
        options = {"bond_scale": self.bond_scale, "topology": self._topology_option(), **self._cell_option()}
        if name == "mmff94":
            options["variant"] = _NAMES[self.method]
        level = f"{_NAMES[self.method]} (RDKit), intramolecular, per isolated molecule"
        return TeacherInfo(name=name, level=level, version=rdkit.__version__, options=options)

    def _build(self, molecule: Molecule, positions: np.ndarray, charge: int, atoms: Atoms) -> _Entry:
        from rdkit import Chem, rdBase
        from rdkit.Chem import rdForceFieldHelpers as helpers

        quiet = rdBase.BlockLogs()  # the refusal below gives the reason  # noqa: F841

        def refuse(reason: str):
            raise TypingError(
                f"{self.info.name}: {describe_frame(atoms)}: molecule {molecule.formula} "
                f"(atoms {list(molecule.indices)}, bonds {[list(b) for b in molecule.bonds]}) "
                f"cannot be typed: {reason}"
            )

        try:
            mol = rdkit_molecule(molecule.numbers, molecule.bonds, positions, charge)
        except ValueError as exc:
            refuse(str(exc))
        smiles = Chem.MolToSmiles(mol)
        if self.method == "uff":
            if not helpers.UFFHasAllMoleculeParams(mol):
                refuse(f"UFF has no parameters for {smiles}")
            field = helpers.UFFGetMoleculeForceField(mol, vdwThresh=_ALL_PAIRS, ignoreInterfragInteractions=False)
        else:
            properties = helpers.MMFFGetMoleculeProperties(mol, mmffVariant=_NAMES[self.method])
            if properties is None:
                refuse(f"{_NAMES[self.method]} has no atom types for {smiles} (radical, lone atom or unsupported element)")
            field = helpers.MMFFGetMoleculeForceField(
                mol, properties, nonBondedThresh=_ALL_PAIRS, ignoreInterfragInteractions=False
            )
        if field is None:
            refuse(f"RDKit could not set up {_NAMES[self.method]} for {smiles}")
        return _Entry(mol, field)

    def molecule_label(self, molecule: Molecule, positions: np.ndarray, charge: int, atoms: Atoms) -> Label:
        key = (molecule.key, charge)
        entry = self._cache.get(key)
        if entry is None:
            entry = self._cache[key] = self._build(molecule, positions, charge, atoms)
        coords = positions.ravel().tolist()
        energy = entry.field.CalcEnergy(coords) * KCAL_PER_MOL
        gradient = np.asarray(entry.field.CalcGrad(coords)).reshape(-1, 3)
        return Label(energy=float(energy), forces=-gradient * KCAL_PER_MOL)


def uff(**options) -> RDKitForceFieldTeacher:
    """UFF teacher (types all hydrogen-combustion species, radicals included)."""
    return RDKitForceFieldTeacher("uff", **options)


def mmff94(variant: str = "MMFF94", **options) -> RDKitForceFieldTeacher:
    """MMFF94 teacher for organics (``variant``: "MMFF94" or "MMFF94s")."""
    if variant.lower() not in ("mmff94", "mmff94s"):
        raise ValueError(f"unknown MMFF variant '{variant}'; known: MMFF94, MMFF94s")
    return RDKitForceFieldTeacher(variant.lower(), **options)

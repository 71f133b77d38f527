"""Seed structures for sampling: structure files, SMILES, combustion geometries, molecules of a box.

A :class:`Seed` is a starting geometry plus the reference frame whose bonding the teacher keeps
while sampling around it (the seed itself, or e.g. a combustion channel's reactant).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ase import Atoms

from ffpt import keys
from ffpt.data.frames import DataError, validate_frame
from ffpt.data.molecules import isolate_molecules
from ffpt.systems.h2combustion import GEOMETRIES, REACTIONS_FILE, load_channels, read_stationary_point
from ffpt.systems.h2combustion import KINDS as COMBUSTION_KINDS
from ffpt.teachers.topology import Topology


@dataclass
class Seed:
    """A named starting geometry; ``topology`` is the frame whose bonds are kept (default: ``atoms``)."""

    name: str
    atoms: Atoms
    topology: Atoms | None = None

    @property
    def reference(self) -> Atoms:
        return self.atoms if self.topology is None else self.topology


def _clean(atoms: Atoms, name: str, charge: int = 0, spin: int | None = None) -> Atoms:
    """Unlabelled copy of ``atoms`` with only ffpt's identity keys in ``info``."""
    out = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    out.info[keys.SEED_NAME] = name
    out.info["charge"] = int(atoms.info.get("charge", charge))
    if spin is not None or "spin" in atoms.info:
        out.info["spin"] = int(atoms.info.get("spin", spin))
    return out


def from_smiles(smiles: str, seed: int = 0, name: str | None = None) -> Seed:
    """3-D structure of ``smiles`` with hydrogens, embedded by RDKit ETKDG with ``seed``.

    Charge is the SMILES formal charge; spin multiplicity is (radical electrons + 1).
    """
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise DataError(f"SMILES '{smiles}': RDKit cannot parse it")
    mol = Chem.AddHs(mol)
    params = AllChem.ETKDGv3()
    params.randomSeed = int(seed)
    if AllChem.EmbedMolecule(mol, params) != 0:
        raise DataError(f"SMILES '{smiles}': RDKit ETKDG could not embed a 3-D structure (seed {seed})")
    atoms = Atoms(
        numbers=[a.GetAtomicNum() for a in mol.GetAtoms()],
        positions=mol.GetConformer().GetPositions(),
    )
    radicals = sum(a.GetNumRadicalElectrons() for a in mol.GetAtoms())
    return Seed(name or smiles, _clean(atoms, name or smiles, Chem.GetFormalCharge(mol), spin=radicals + 1))


def from_file(
    path: str | os.PathLike,
    index: str = ":",
    isolate: bool | None = None,
    max_molecules: int | None = None,
    name: str | None = None,
) -> list[Seed]:
    """Seeds from an xyz/extxyz file; ``isolate`` (default: when periodic) cuts molecules out."""
    import ase.io

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: seed file not found")
    try:
        frames = ase.io.read(path, index=index)
    except Exception as exc:  # ase raises many types for malformed files
        raise DataError(f"{path}: cannot read seed structures ({exc})") from exc
    frames = [frames] if isinstance(frames, Atoms) else list(frames)
    if not frames:
        raise DataError(f"{path}: no frames selected by index '{index}'")
    stem = name or path.stem
    seeds = []
    for k, atoms in enumerate(frames):
        validate_frame(atoms, source=str(path), index=k, require_labels=False)
        base = stem if len(frames) == 1 else f"{stem}[{k}]"
        if isolate if isolate is not None else bool(atoms.pbc.any()):
            molecules = isolate_molecules(atoms)[:max_molecules]
            for m, mol in enumerate(molecules):
                seeds.append(Seed(f"{base}/mol{m}", _clean(mol, f"{base}/mol{m}")))
        else:
            seeds.append(Seed(base, _clean(atoms, base)))
    return seeds


def from_combustion(
    data_dir: str | os.PathLike,
    channels: list[str] | None = None,
    kinds: tuple[str, ...] = COMBUSTION_KINDS,
    topology: str = "self",
) -> list[Seed]:
    """Stationary points of hydrogen-combustion channels, with the channel's spin multiplicity.

    ``topology``: "self" keeps each geometry's own bonding; "reactant"/"product" gives every
    geometry of a channel the bonding of that channel's reactant/product file.
    """
    data_dir = Path(data_dir)
    if not (data_dir / REACTIONS_FILE).exists():
        raise DataError(f"{data_dir / REACTIONS_FILE}: not found (expected the hydrogen-combustion data directory)")
    table = load_channels(data_dir / REACTIONS_FILE)
    if topology not in ("self", "reactant", "product"):
        raise DataError(f"combustion topology '{topology}': expected self, reactant or product")
    seeds = []
    for cid in list(table) if channels is None else channels:
        if cid not in table:
            raise DataError(f"{data_dir / REACTIONS_FILE}: no channel '{cid}'; known: {', '.join(table)}")
        channel = table[cid]

        def read(kind: str) -> Atoms:
            atoms = read_stationary_point(data_dir / GEOMETRIES, kind, channel)
            return _clean(atoms, f"{kind}_{cid}", 0, channel.multiplicity)

        reference = None if topology == "self" else read(topology)
        for kind in kinds:
            atoms = read(kind)
            seeds.append(Seed(atoms.info[keys.SEED_NAME], atoms, reference))
    return seeds


def split_molecules(seed: Seed) -> list[Seed]:
    """One seed per molecule (>= 2 atoms) of ``seed``'s reference bonding; lone atoms are dropped
    (:func:`ffpt.sampling.run.sampled_seeds` reports them).

    A single-molecule seed is returned unchanged. Parts are named ``<name>/mol<k>``, made whole
    across periodic boundaries and non-periodic; their spin is not known and is left out.
    """
    topology = Topology.perceive(seed.reference)
    if len(topology.molecules) == 1:
        return [seed]
    charge = int(seed.atoms.info.get("charge", 0))
    if charge:
        raise DataError(f"seed {seed.name}: charge {charge} cannot be split over its {len(topology.molecules)} molecules")
    parts = []
    for molecule in topology.molecules:
        if len(molecule.indices) < 2:
            continue
        name = f"{seed.name}/mol{len(parts)}"
        atoms = Atoms(numbers=molecule.numbers, positions=molecule.positions(seed.atoms))
        reference = Atoms(numbers=molecule.numbers, positions=molecule.positions(seed.reference))
        parts.append(Seed(name, _clean(atoms, name), None if seed.topology is None else reference))
    return parts

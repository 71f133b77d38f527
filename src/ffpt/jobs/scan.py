"""The pair-scan job: a :class:`~ffpt.observables.pair_scan.PairScanConfig` in, a JSON and a PNG out.

Every calculator (model file or teacher name, :func:`ffpt.simulate.calculators.resolve`) scans the
same geometry. A per-molecule classical teacher keeps one bonding for the whole scan: the isolated
pair is bonded (the force field's bond term, e.g. UFF's harmonic bond, at every distance); in a
structure, the bonding of the structure as given (so two non-bonded atoms feel only the
force field's non-bonded terms, and nothing at all if they belong to different molecules).
"""

from __future__ import annotations

from pathlib import Path

from ase import Atoms

from ffpt.analysis.pair_scan import plot_pair_scans
from ffpt.data.io import read_structure
from ffpt.fileio import atomic_write_json
from ffpt.observables.pair_scan import PairScan, PairScanConfig, scan_pair, scan_system
from ffpt.simulate.calculators import resolve
from ffpt.teachers.topology import MoleculeTeacher, Topology


def plot_path(config: PairScanConfig) -> Path:
    """Where the PNG of ``config.out`` goes: beside it, same stem."""
    return Path(config.out).with_suffix(".png")


def _calculator(spec: str, config: PairScanConfig, atoms: Atoms, i: int, j: int, device: str):
    from ffpt import teachers

    options = config.teacher_options if spec.lower() in teachers.REGISTRY else {}
    calculator = resolve(spec, device, options)
    check = getattr(calculator, "check_atoms", None)
    if check is not None:  # a model that does not know an element: a located user error
        check(atoms, where=f"pair {config.pair}" if config.pair else f"{config.structure} frame {config.structure_index}")
    if isinstance(calculator, MoleculeTeacher):
        bonding = Topology.from_bonds(atoms.numbers, [(i, j)]) if config.pair is not None else atoms
        calculator = calculator.with_topology(bonding)
    return calculator


def title(config: PairScanConfig, atoms: Atoms, i: int, j: int) -> str:
    """One line naming what was scanned."""
    symbols = atoms.get_chemical_symbols()
    if config.pair is not None:
        return f"isolated {config.pair} pair, spin multiplicity {atoms.info.get('spin')}"
    return f"{Path(config.structure).name}: {symbols[i]}{i}-{symbols[j]}{j} pulled along their axis"


def run_scan(config: PairScanConfig, device: str = "cpu") -> list[PairScan]:
    """Scan with every calculator of ``config``; write ``config.out`` (JSON, eV and A) and the PNG."""
    structure = read_structure(config.structure, config.structure_index) if config.structure is not None else None
    atoms, i, j = scan_system(config, structure)
    calculators = [_calculator(spec, config, atoms, i, j, device) for spec in config.calculators]  # errors first
    scans = [scan_pair(calc, atoms, i, j, config.distances, name=spec)
             for spec, calc in zip(config.calculators, calculators)]
    heading = title(config, atoms, i, j)
    atomic_write_json(config.out, {
        "title": heading,
        "config": config.model_dump(mode="json"),
        "symbols": atoms.get_chemical_symbols(),
        "atoms": [i, j],
        "scans": {scan.name: scan.as_dict() for scan in scans},
    })
    plot_pair_scans(scans, plot_path(config), heading, config.units)
    return scans

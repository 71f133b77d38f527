"""NVE energy conservation and monitor quietness for gas-phase molecules with real teachers.

Ethanol and aspirin, teachers ``mmff94`` (RDKit) and ``gfn2`` (tblite GFN2-xTB); velocity Verlet at
dt = 0.5 fs for 1 ps from 300 K Maxwell-Boltzmann velocities, with the bond (0.5 A), minimum
distance (0.5 A) and species monitors on. Reports the total-energy drift (linear fit, meV/atom/ps),
its RMS (meV/atom) and the cost per step.

Usage: OMP_NUM_THREADS=1 python benchmarks/md_molecules_nve.py [OUT_DIR]   (a few minutes on 2 cores)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import molecule
from ase.io import read

from ffpt.simulate.calculators import resolve
from ffpt.simulate.config import MDConfig, MonitorConfig
from ffpt.simulate.md import run_md

ASPIRIN = "CC(=O)OC1=CC=CC=C1C(=O)O"


def from_smiles(smiles: str, seed: int = 0) -> Atoms:
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=seed)
    AllChem.MMFFOptimizeMolecule(mol)
    return Atoms([a.GetSymbol() for a in mol.GetAtoms()], positions=mol.GetConformer().GetPositions())


def main(out: Path) -> None:
    systems = {"ethanol": molecule("CH3CH2OH"), "aspirin": from_smiles(ASPIRIN)}
    rows = []
    for name, atoms in systems.items():
        formula = atoms.get_chemical_formula(mode="hill")
        for teacher in ("mmff94", "gfn2"):
            config = MDConfig(steps=2000, timestep_fs=0.5, temperature_K=300, ensemble="nve", seed=0,
                              save_every=10, check_every=10,
                              monitors=MonitorConfig(min_distance=0.5, max_bond_deviation=0.5,
                                                     allowed_species=[formula]))
            result = run_md(atoms, resolve(teacher), config, out / f"{name}_{teacher}")
            frames = read(out / f"{name}_{teacher}" / result.trajectory, index=":")
            t_ps = np.array([f.info["time_fs"] for f in frames]) / 1000
            e = np.array([f.info["etot"] for f in frames]) / len(atoms) * 1000  # meV/atom
            rows.append({
                "system": name, "teacher": teacher, "atoms": len(atoms), "stable": result.stable,
                "reason": result.reason, "simulated_fs": result.simulated_fs,
                "drift_meV_per_atom_per_ps": float(np.polyfit(t_ps, e, 1)[0]),
                "rms_meV_per_atom": float(e.std()),
                "mean_T_K": float(np.mean([f.info["temperature_K"] for f in frames])),
                "ms_per_step": 1000 * result.wall_s / max(result.steps, 1),
            })
            print(json.dumps(rows[-1]))
    (out / "summary.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/runs/md_molecules_nve"))

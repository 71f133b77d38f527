"""Write experiments/structures/water_<n>.extxyz and water_<n>_tip3p_300K.extxyz.

The first: n rigid water molecules at 0.997 g/cm^3, inserted at random positions and orientations
(seeded) keeping every O-O distance (minimum image) above 2.6 A. The second: that box after 5 ps
of Langevin MD at 300 K with flexible TIP3P (the ``tip3p`` teacher), an equilibrated liquid to
start stability MD from (the random box has H...H contacts near 1 A).
    python experiments/make_water_box.py 32
"""

import sys
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import molecule
from ase.units import _amu

from ffpt.data.io import write_frames


def water_box(n: int, density_g_cm3: float = 0.997, seed: int = 0) -> Atoms:
    rng = np.random.default_rng(seed)
    mass_g = n * molecule("H2O").get_masses().sum() * _amu * 1e3
    side = (mass_g / density_g_cm3) ** (1 / 3) * 1e8  # A
    sites = []
    while len(sites) < n:
        trial = rng.uniform(0, side, 3)
        if all(np.linalg.norm((trial - s + side / 2) % side - side / 2) > 2.6 for s in sites):
            sites.append(trial)
    box = Atoms(cell=[side] * 3, pbc=True)
    for site in sites:
        w = molecule("H2O")
        w.rotate(rng.uniform(0, 360), rng.normal(size=3), center=w.positions[0])
        w.translate(site - w.positions[0])  # oxygen on the site
        box += w
    box.wrap()
    oxygens = box[box.numbers == 8]
    d = oxygens.get_all_distances(mic=True)[np.triu_indices(n, 1)]
    assert d.min() > 2.6, d.min()
    return box


def equilibrate(box: Atoms, temperature_K: float = 300.0, steps: int = 10000, seed: int = 0) -> Atoms:
    """Langevin MD (0.5 fs, friction 0.01/fs) with flexible TIP3P; returns the last frame, wrapped."""
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    from ffpt import teachers

    atoms = box.copy()
    atoms.calc = teachers.get("tip3p")
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=np.random.default_rng(seed))
    Langevin(atoms, 0.5 * units.fs, temperature_K=temperature_K, friction=0.01 / units.fs,
             rng=np.random.default_rng(seed + 1)).run(steps)
    out = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
    out.wrap()
    return out


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 32
    folder = Path(__file__).parent / "structures"
    box = water_box(n)
    write_frames(folder / f"water_{n}.extxyz", [box])
    write_frames(folder / f"water_{n}_tip3p_300K.extxyz", [equilibrate(box)])
    print(folder / f"water_{n}.extxyz", folder / f"water_{n}_tip3p_300K.extxyz")

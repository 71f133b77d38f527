"""Write experiments/structures/water_<n>.extxyz: n rigid water molecules at 0.997 g/cm^3.

Molecules are inserted at random positions and orientations (seeded) keeping every O-O
distance (minimum image) above 2.6 A; the box is a starting point that MD equilibrates.
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


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 32
    path = Path(__file__).parent / "structures" / f"water_{n}.extxyz"
    write_frames(path, [water_box(n)])
    print(path)

"""Where the combustion runs' foreign species come from (issue 16): failure frames and data coverage.

For a run folder of ``ffpt run experiments/h2combustion.yaml``: collects the last frame of every
stability run that failed on a foreign species (``--species``, e.g. H3O) into one extxyz, each with
its run, model and the pair to scan (the species' central atom and its farthest bonded neighbour:
for H3O the O and its longest O-H bond) in ``info``; and counts the frames of the data set's npz
files whose connectivity holds that species, so one sees whether any label was ever near it.
Scan a pair of a written frame against the reference with ``ffpt scan``:

    python benchmarks/foreign_species_h2combustion.py runs/h2c16/fitprior2 --species H3O \
        --data ../shared/data/h2combustion/npz --budget 1000 --out runs/h2c16/h3o/failures.extxyz
    ffpt scan --structure runs/h2c16/h3o/failures.extxyz --structure-index 0 --atoms 3 0 \
        --r-min 0.8 --r-max 3.2 --points 13 --calculator pyscf --calculator MODEL ... --out scan.json
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import ase.io
from ase import Atoms

from ffpt.data.molecules import bonds, hill_formula, species_formulas
from ffpt.systems.h2combustion import read_npz


def failure_frames(run: Path, species: str, budget: int | None) -> list[Atoms]:
    """Last frame of each stability run of ``run`` that failed on ``species``, with its source in info."""
    frames = []
    for result in sorted(run.glob("stability/*/*/seed_*/stability.json")):
        model = result.parts[-4]
        if budget is not None and f"_n{budget}_" not in model:
            continue
        outcome = json.loads(result.read_text())
        if outcome["stable"] or not outcome["reason"].startswith(f"species {species} "):
            continue
        frame = ase.io.read(result.parent / outcome["trajectory"], index=-1)
        centre, partner = scan_pair(frame, species)
        frame.calc = None
        frame.info.update(model=model, start=result.parts[-3], run=result.parts[-2],
                          failed_at_fs=outcome["failed_at_fs"], scan_atoms=f"{centre} {partner}")
        frames.append(frame)
    return frames


def scan_pair(frame: Atoms, species: str) -> tuple[int, int]:
    """The species' most connected atom and its farthest bonded neighbour (0-based)."""
    molecule = next(idx for formula, idx in species_formulas(frame) if formula == hill_formula(species))
    pairs = [(int(i), int(j)) for i, j in bonds(frame) if i in molecule and j in molecule]
    degree = Counter(k for pair in pairs for k in pair)
    centre = max(molecule, key=lambda k: degree[int(k)])
    neighbours = [j if i == centre else i for i, j in pairs if centre in (i, j)]
    partner = max(neighbours, key=lambda k: frame.get_distance(centre, k))
    return int(centre), int(partner)


def data_coverage(root: Path, species: str) -> dict[str, int]:
    """Frames per npz file (aimd and irc) that hold ``species``, and the total frames read."""
    wanted = hill_formula(species)
    counts = {"frames": 0, "with_species": 0}
    for path in sorted(root.glob("*.npz")):
        if "_nm" in path.name:
            continue
        frames = read_npz(path, spin=1)
        hits = sum(any(formula == wanted for formula, _ in species_formulas(a)) for a in frames)
        counts["frames"] += len(frames)
        counts["with_species"] += hits
        if hits:
            counts[path.name] = hits
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="an ffpt run folder with a stability stage")
    parser.add_argument("--species", default="H3O")
    parser.add_argument("--budget", type=int, help="only models of this label budget")
    parser.add_argument("--data", type=Path, help="the data set's npz folder: count frames holding the species")
    parser.add_argument("--out", type=Path, default=Path("foreign_species.extxyz"))
    args = parser.parse_args()
    frames = failure_frames(args.run, args.species, args.budget)
    if frames:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        ase.io.write(args.out, frames)
    for k, frame in enumerate(frames):
        info = frame.info
        print(f"{k}: {info['model']} {info['start']} {info['run']} failed at {info['failed_at_fs']} fs, "
              f"scan atoms {info['scan_atoms']}")
    print(f"{len(frames)} frames -> {args.out}")
    if args.data is not None:
        print(json.dumps(data_coverage(args.data, args.species)))


if __name__ == "__main__":
    main()

"""Species along trajectories: molecules by connectivity, Hill formulas, reactions, outcomes, plots."""

from collections import Counter

import numpy as np
import pytest
from ase import Atoms

from ffpt.analysis.species import plot_species
from ffpt.data.molecules import species_formulas
from ffpt.observables.species import (
    hill_formula,
    identify_outcome,
    species_of,
    species_timeline,
)
from ffpt.systems.h2combustion import COMBUSTION_SPECIES, parse_reaction


def ho2_dissociation(n=6):
    """HO2 whose H leaves O1 along a straight line: bonded in the first frames, H + O2 at the end."""
    frames = []
    for k, d in enumerate(np.linspace(0.97, 3.5, n)):
        atoms = Atoms("OOH", positions=[[0, 0, 0], [-1.3, 0.1, 0], [d * 0.5, d * 0.866, 0]])
        atoms.info["time"] = 10.0 * k
        frames.append(atoms)
    return frames


def test_species_of_a_frame_by_connectivity():
    atoms = Atoms("OHHOHH", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0],
                                       [5, 0, 0], [5.97, 0, 0], [9, 9, 9]])
    assert species_of(atoms) == Counter({"H2O": 1, "HO": 1, "H": 1})
    formulas = species_formulas(atoms)  # one function behind the monitors and the timelines
    assert [(f, idx.tolist()) for f, idx in formulas] == [("H2O", [0, 1, 2]), ("HO", [3, 4]), ("H", [5])]


def test_molecules_across_periodic_boundaries_count_once():
    atoms = Atoms("OH", positions=[[0.2, 3, 3], [5.6, 3, 3]], cell=[6, 6, 6], pbc=True)  # 0.6 A via the wall
    assert species_of(atoms) == Counter({"HO": 1})
    atoms.pbc = False
    assert species_of(atoms) == Counter({"O": 1, "H": 1})


def test_parse_reaction_in_hill_formulas():
    r = parse_reaction("H2O + O -> 2 OH")
    assert r.reactants == Counter({"H2O": 1, "O": 1}) and r.products == Counter({"HO": 2})
    singlet = parse_reaction("O2 -> 2 O (singlet)")
    assert singlet.products == Counter({"O": 2}) and singlet.allowed == {"O2", "O"}
    assert hill_formula("HO2") == hill_formula("O2H") == "HO2"
    assert {"HO", "HO2", "H2O2"} <= COMBUSTION_SPECIES
    with pytest.raises(ValueError, match="exactly one '->'"):
        parse_reaction("H2 + O2")
    with pytest.raises(ValueError, match="cannot read term"):
        parse_reaction("H2 + -> 2 H")


def test_timeline_fractions_and_reaction_outcome(tmp_path):
    frames = ho2_dissociation()
    timeline = species_timeline(frames)
    assert timeline.time.tolist() == [0, 10, 20, 30, 40, 50]
    first, last = timeline.frame_species(0), timeline.frame_species(5)
    assert first == Counter({"HO2": 1}) and last == Counter({"H": 1, "O2": 1})
    np.testing.assert_allclose(timeline.fractions.sum(axis=1), 1.0)
    reaction = parse_reaction("HO2 -> H + O2")
    outcome = identify_outcome(timeline, reaction, last=2)
    assert outcome.label == "products" and outcome.unphysical_frames == 0
    assert identify_outcome(species_timeline(frames[:1]), reaction).label == "reactants"
    # a frame where H sits on O2 and O1 left: HO + O is outside this channel's chemistry
    odd = Atoms("OOH", positions=[[3.0, 0, 0], [-1.3, 0.1, 0], [-1.3, 1.07, 0]])
    odd.info["time"] = 60.0
    timeline = species_timeline(frames + [odd])
    outcome = identify_outcome(timeline, reaction)
    assert outcome.label == "other" and outcome.final_species == Counter({"O": 1, "HO": 1})
    assert timeline.unphysical(reaction.allowed).tolist() == [False] * 6 + [True]
    assert identify_outcome(timeline, reaction, extra_allowed=["OH", "O"]).unphysical_frames == 0
    png = plot_species(timeline, tmp_path / "species.png", unphysical=timeline.unphysical(reaction.allowed))
    assert png.read_bytes()[:4] == b"\x89PNG"

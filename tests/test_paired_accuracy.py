"""Paired comparison of two models on the same test frames: each frame's errors, the mean difference's
bootstrap interval and Wilcoxon test (ffpt.analysis.paired), FFPT-FT against scratch per budget."""

import numpy as np
import pytest
from ase import Atoms

from ffpt.analysis.paired import paired_difference
from ffpt.data.frames import energy_of, forces_of, set_labels
from ffpt.observables.errors import error_table, frame_errors
from ffpt.workflows.accuracy_report import accuracy_comparisons, accuracy_markdown
from ffpt.workflows.config import Arm


def test_a_real_difference_is_found_and_its_interval_covers_it():
    rng = np.random.default_rng(0)
    scratch = rng.gamma(4.0, 15.0, size=40)  # per-frame force MAE, meV/A
    ffpt_ft = scratch - 5.0 + rng.normal(0.0, 3.0, size=40)
    d = paired_difference(ffpt_ft, scratch)
    assert d.n == 40 and d.mean == pytest.approx(np.mean(ffpt_ft - scratch))
    lo, hi = d.ci95
    assert lo < -5.0 < hi < 0.0 and d.wilcoxon_p < 1e-6
    flipped = paired_difference(scratch, ffpt_ft)  # the order of the arms only flips the sign
    assert flipped.mean == pytest.approx(-d.mean) and flipped.wilcoxon_p == pytest.approx(d.wilcoxon_p)
    assert flipped.ci95[0] == pytest.approx(-hi, abs=0.3) and flipped.ci95[1] == pytest.approx(-lo, abs=0.3)


def test_no_difference_is_not_reported_as_one():
    x = np.linspace(10.0, 90.0, 40)
    noise = np.tile([-2.0, 2.0], 20)  # symmetric around zero
    d = paired_difference(x + noise, x)
    assert d.mean == pytest.approx(0.0, abs=1e-12) and d.ci95[0] < 0.0 < d.ci95[1] and d.wilcoxon_p > 0.5
    same = paired_difference(x, x)
    assert same.mean == 0.0 and same.ci95 == (0.0, 0.0) and same.wilcoxon_p == 1.0
    assert paired_difference([1.0, 2.0], [2.0, 2.0]).ci95 is None  # too few frames for an interval


@pytest.mark.parametrize("a, b", [([1.0, 2.0], [1.0]), ([[1.0]], [[1.0]]), ([1.0, np.nan, 2.0], [1.0, 1.0, 1.0])])
def test_unpaired_or_non_finite_values_are_refused(a, b):
    with pytest.raises(ValueError):
        paired_difference(a, b)


def frames_and_predictions(n: int, rng):
    frames, energies, forces = [], [], []
    for k in range(n):
        atoms = set_labels(Atoms("CH4", positions=rng.normal(size=(5, 3))), float(rng.normal()),
                           rng.normal(size=(5, 3)))
        frames.append(atoms)
        energies.append(energy_of(atoms) + rng.normal(0.0, 0.01))
        forces.append(forces_of(atoms) + rng.normal(0.0, 0.05, size=(5, 3)))
    return frames, np.array(energies), forces


def test_frame_errors_average_to_the_error_table():
    frames, energies, forces = frames_and_predictions(12, np.random.default_rng(1))
    per_frame, table = frame_errors(frames, energies, forces), error_table(frames, energies, forces)
    assert len(per_frame["forces_mae_mev_per_a"]) == 12
    assert np.mean(per_frame["forces_mae_mev_per_a"]) == pytest.approx(table.forces_mae_mev_per_a)
    assert np.mean(per_frame["energy_abs_error_mev_per_atom"]) == pytest.approx(table.energy_mae_mev_per_atom)


def row(arm: str, seed: int, forces: np.ndarray, energies: np.ndarray) -> dict:
    return {"arm": arm, "budget": 10, "seed": seed, "forces_mae_mev_per_a": float(forces.mean()),
            "per_frame": {"forces_mae_mev_per_a": list(forces), "energy_abs_error_mev_per_atom": list(energies)}}


def test_each_ffpt_ft_arm_meets_its_own_scratch_arm_and_the_most_accurate_one():
    rng = np.random.default_rng(2)
    base = rng.gamma(4.0, 20.0, size=30)
    arms = [Arm("ffpt-ft", "newtonnet", "ffpt-ft"), Arm("scratch", "newtonnet", "scratch"),
            Arm("mace-ffpt-ft", "mace", "ffpt-ft"), Arm("mace-scratch", "mace", "scratch"),
            Arm("mace-cli", "mace", "scratch", "mace-cli")]
    offsets = {"ffpt-ft": 20.0, "scratch": 150.0, "mace-ffpt-ft": -10.0, "mace-scratch": 5.0, "mace-cli": 0.0}
    rows = [row(arm, seed, base + offset + rng.normal(0.0, 2.0, 30), np.full(30, 1.0 + seed))
            for arm, offset in offsets.items() for seed in (0, 1)]
    rows.append({"arm": "old", "budget": 10, "seed": 0})  # a row evaluated before per-frame errors: left out
    comparisons = accuracy_comparisons(rows, arms)[10]
    by_pair = {tuple(c["arms"]): c for c in comparisons}
    assert set(by_pair) == {("ffpt-ft", "scratch"), ("ffpt-ft", "mace-cli"), ("mace-ffpt-ft", "mace-scratch"),
                            ("mace-ffpt-ft", "mace-cli")}
    assert by_pair[("mace-ffpt-ft", "mace-cli")]["against"] == ["the most accurate scratch arm"]
    assert by_pair[("ffpt-ft", "scratch")]["forces_mae_mev_per_a"]["mean"] == pytest.approx(-130.0, abs=2.0)
    assert by_pair[("ffpt-ft", "mace-cli")]["forces_mae_mev_per_a"]["ci95"][0] > 0.0  # FFPT-FT less accurate here
    assert by_pair[("mace-ffpt-ft", "mace-cli")]["forces_mae_mev_per_a"]["ci95"][1] < 0.0
    assert by_pair[("ffpt-ft", "scratch")]["energy_abs_error_mev_per_atom"]["mean"] == 0.0  # seeds averaged alike
    text = "\n".join(accuracy_markdown({10: comparisons}))
    assert "over the 30 test frames" in text and "| 10 | mace-ffpt-ft | mace-cli (the most accurate scratch arm) |" in text
    assert accuracy_markdown({}) == [] and accuracy_comparisons([{"arm": "old", "budget": 10, "seed": 0}], arms) == {}

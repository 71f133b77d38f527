"""Sampling a periodic box over a range of mass densities: rigid rescaling and the MD sampler's tasks."""

from __future__ import annotations

import numpy as np
import pytest
from ase.io import write

from ffpt.config import ConfigError
from ffpt.data import read_frames
from ffpt.data.molecules import molecules
from ffpt.observables.density import mass_density
from ffpt.sampling import SamplingConfig, sample
from ffpt.sampling.density_range import frames_per_density, nearest_density, rescale_to_density

from test_teachers_forcefield import water_box


def intramolecular_distances(atoms, reference) -> list[np.ndarray]:
    """Minimum-image distances within each molecule (bonding of ``reference``), A."""
    return [atoms.get_distances(i, list(m.indices), mic=True) for m in molecules(reference) for i in m.indices]


@pytest.mark.parametrize("density", [0.85, 0.997, 1.1])
def test_a_rescaled_box_has_the_density_and_every_molecule_unchanged(density):
    box = water_box(n_side=2, spacing=3.1, seed=3)  # molecules straddle the boundary
    scaled = rescale_to_density(box, density)
    assert mass_density(scaled) == pytest.approx(density, abs=1e-6)
    factor = (mass_density(box) / density) ** (1 / 3)
    np.testing.assert_allclose(scaled.cell.array, box.cell.array * factor, rtol=1e-12)  # isotropic
    for before, after in zip(intramolecular_distances(box, box), intramolecular_distances(scaled, box)):
        np.testing.assert_allclose(after, before, rtol=0, atol=1e-10)
    masses = box.get_masses()
    for m in molecules(box):
        index = list(m.indices)
        # each molecule is written whole: its plain distances are its minimum-image distances
        plain = np.linalg.norm(scaled.positions[index][:, None] - scaled.positions[index][None], axis=-1)
        np.testing.assert_allclose(plain, scaled.get_all_distances(mic=True)[np.ix_(index, index)], atol=1e-10)
        # its centre of mass keeps its fractional coordinates (modulo the cell)
        before = np.linalg.solve(box.cell.array.T, masses[index] @ m.positions(box) / masses[index].sum())
        after = np.linalg.solve(scaled.cell.array.T, masses[index] @ scaled.positions[index] / masses[index].sum())
        np.testing.assert_allclose((after - before + 0.5) % 1.0 - 0.5, 0.0, atol=1e-10)
        assert np.all((after >= 0) & (after < 1))  # wrapped into the cell
    assert len(molecules(scaled)) == len(molecules(box))  # no molecule split or merged
    assert scaled.info["density_g_cm3"] == density


def test_intermolecular_distances_scale_with_the_cell():
    box = water_box(n_side=2, spacing=3.1, seed=5)
    scaled = rescale_to_density(box, 0.9)
    factor = (mass_density(box) / 0.9) ** (1 / 3)
    oxygens = [a.index for a in box if a.symbol == "O"]  # centres of mass sit about 0.07 A from O
    d0 = box.get_all_distances(mic=True)[np.ix_(oxygens, oxygens)]
    d1 = scaled.get_all_distances(mic=True)[np.ix_(oxygens, oxygens)]
    off = ~np.eye(len(oxygens), dtype=bool)
    ratio = d1[off] / d0[off]
    assert np.all(np.abs(ratio - factor) < 0.2 / d0[off])  # within the O-offset from the centre of mass
    assert np.median(ratio) == pytest.approx(factor, abs=0.01)


def test_rescaling_refuses_an_open_frame():
    box = water_box()
    box.pbc = False
    with pytest.raises(ValueError, match="periodic"):
        rescale_to_density(box, 1.0)


def test_frames_are_split_evenly_over_densities():
    assert frames_per_density(10, 4) == [3, 3, 2, 2]
    assert frames_per_density(2, 3) == [1, 1, 0]
    assert sum(frames_per_density(70, 4)) == 70


def config(tmp_path, **md) -> SamplingConfig:
    box = tmp_path / "box.extxyz"
    write(box, water_box(n_side=2, spacing=3.1, seed=3))
    return SamplingConfig.model_validate({
        "teacher": "tip3p", "seeds": [{"file": str(box), "isolate": False}], "split": False,
        "out": str(tmp_path / "out.extxyz"), "normal_modes": None, "random": None,
        "md": {"temperatures": [300.0, 450.0], "frames": 3, "stride": 2, "equilibration": 4, **md},
    })


def test_md_samples_the_box_at_each_density_and_temperature(tmp_path):
    densities = [0.9, 1.05]
    frames = read_frames(sample(config(tmp_path, densities=densities), progress=False))
    assert len(frames) == 2 * 3  # 3 frames per temperature, split 2 + 1 over the densities
    seen = {}
    for frame in frames:
        rho = frame.info["density_g_cm3"]
        assert mass_density(frame) == pytest.approx(rho, abs=1e-6)
        assert frame.info["config_type"].endswith(f"_rho{rho:g}") and frame.info["config_type"].startswith("md_T")
        assert len(molecules(frame)) == 8 and np.isfinite(frame.info["REF_energy"])
        seen.setdefault(frame.info["config_type"], []).append(frame)
    assert {k: len(v) for k, v in seen.items()} == {"md_T300_rho0.9": 2, "md_T300_rho1.05": 1,
                                                    "md_T450_rho0.9": 2, "md_T450_rho1.05": 1}


def test_a_density_range_needs_periodic_seeds(tmp_path):
    values = config(tmp_path, densities=[1.0]).model_dump()
    values["seeds"] = [{"file": values["seeds"][0]["file"], "isolate": True}]
    with pytest.raises(ConfigError, match=r"^md\.densities: seed box/mol0 is not a periodic box") as error:
        sample(SamplingConfig.model_validate(values), progress=False)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="md.densities"):
        config(tmp_path, densities=[])


def test_nearest_density_picks_the_frames_of_one_sampled_density():
    box = water_box(n_side=2, spacing=3.1, seed=3)
    frames = [rescale_to_density(box, rho) for rho in (0.8, 0.9, 0.9, 1.0)]
    assert [f.info["density_g_cm3"] for f in nearest_density(frames, 0.88)] == [0.9, 0.9]
    assert nearest_density(frames, 2.0)[0].info["density_g_cm3"] == 1.0
    assert nearest_density([box], 0.5) == [box]  # untagged: a sample at one density, kept whole

"""The report's NPT density table: each arm's density, drift and whether it has plateaued."""

import numpy as np

from ffpt.observables.density import RunDensity, summarize_density
from ffpt.workflows.report import _density_table


def test_the_density_table_says_which_arm_has_plateaued():
    rng = np.random.default_rng(0)
    time = np.arange(0.0, 10001.0, 20.0)

    def run(drift_per_ps: float) -> RunDensity:
        return RunDensity(time.tolist(), (0.9 + drift_per_ps * time / 1000 + rng.normal(0, 0.01, len(time))).tolist())

    arms = {"ffpt-ft": summarize_density([run(0.0) for _ in range(4)], from_fs=5000),
            "scratch": summarize_density([run(-0.05) for _ in range(4)], from_fs=5000),
            "short": summarize_density([RunDensity([0.0, 10.0], [0.9, 0.9])], from_fs=0)}
    lines = _density_table({"arms": {arm: s.as_dict() for arm, s in arms.items()}, "reference": None, "welch": None})
    header = next(line for line in lines if line.startswith("| arm"))
    assert header.rstrip(" |").endswith("plateau")
    rows = {line.split(" | ")[0].lstrip("| "): line for line in lines if line.startswith("| ") and "---" not in line}
    assert rows["ffpt-ft"].endswith("| yes |") and rows["scratch"].endswith("| no |")
    assert rows["short"].endswith("| — |")  # too few frames to test
    assert any("within ±0.01 g/cm³/ps" in line for line in lines)


def test_the_rdf_reference_is_the_sampled_density_nearest_the_md_box(tmp_path):
    """Configurations sampled over a density range: the arms' RDFs are compared with those at the
    density of the MD's start box, not with a mixture of densities."""
    from ffpt.data.frames import set_labels
    from ffpt.data.io import write_frames
    from ffpt.observables.rdf import compute_rdf
    from ffpt.sampling.density_range import rescale_to_density
    from ffpt.workflows.report import rdf_comparison

    from test_teachers_forcefield import water_box

    boxes = [water_box(n_side=2, spacing=3.1, seed=s) for s in range(4)]
    configs = [set_labels(rescale_to_density(b, rho), 0.0, np.zeros((len(b), 3))) for b in boxes for rho in (0.6, 1.0)]
    write_frames(tmp_path / "configs.extxyz", configs)
    dense = [c for c in configs if c.info["density_g_cm3"] == 1.0]
    compute_rdf(dense, rmax=3.0, bins=30, pairs=["O-O", "O-H"]).save(tmp_path / "rdf.json")
    stability = {"arm": {"rdf": str(tmp_path / "rdf.json")}}
    matched = rdf_comparison(stability, str(tmp_path / "configs.extxyz"), tmp_path / "a.png", "t", density=0.997)
    mixed = rdf_comparison(stability, str(tmp_path / "configs.extxyz"), tmp_path / "b.png", "t")
    assert matched["arm"] < 1e-12 < mixed["arm"]


def test_configurations_over_a_density_range_give_no_single_reference_density():
    rng = np.random.default_rng(1)
    time = np.arange(0.0, 2001.0, 20.0)
    arms = {"ffpt-ft": summarize_density([RunDensity(time.tolist(), (0.9 + rng.normal(0, 0.01, len(time))).tolist())],
                                         from_fs=1000)}
    density = {"arms": {arm: s.as_dict() for arm, s in arms.items()}, "welch": None,
               "reference": {"mean": 0.78, "n_frames": 144, "sampled_densities": [0.5, 0.65, 1.0]}}
    text = "\n".join(_density_table(density))
    assert "144 fixed cells sampled at 0.5, 0.65, 1 g/cm³ (no reference density)" in text and "0.78" not in text
    density["reference"] = {"mean": 0.997, "n_frames": 30}
    assert "(fixed cells, 30 frames): 0.9970 g/cm³" in "\n".join(_density_table(density))

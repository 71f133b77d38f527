"""The liquid-water experiment at toy scale: classical box sampling, periodic labels, RDFs of each arm's MD."""

import json
import math

import numpy as np
import pytest
import yaml
from ase.io import read, write

from ffpt.observables.density import mass_density

from test_teachers_forcefield import water_box
from test_workflow import ffpt


def test_water_experiment_reports_rdfs_and_npt_density_against_the_reference(tmp_path):
    """Stability MD at constant pressure (MTK): the report gives each arm's RDF error and its density
    from the NPT runs, next to the density of the reference configurations."""
    box = tmp_path / "box.extxyz"
    write(box, water_box(n_side=2, spacing=3.1, seed=3))
    sampling = {"md": {"temperatures": [300.0], "frames": 12, "stride": 5, "equilibration": 20},
                "normal_modes": None, "random": None}
    toy = {
        "name": "toy water",
        "seeds": [{"file": str(box), "isolate": True}],
        "pretraining": {"teacher": "spcfw", **sampling},
        "abinitio": {  # tip3p stands in for the expensive periodic teacher (GFN2-xTB in experiments/water.yaml)
            "teacher": "tip3p",
            "sampling": {"teacher": "tip3p", "seeds": [{"file": str(box), "isolate": False}], "split": False,
                         "seed": 1, **sampling},
            "workers": 1, "n_test": 4, "n_valid": 2,
        },
        "budgets": [4],
        "model": {"n_features": 8, "n_layers": 1, "n_basis": 4, "cutoff": 3.0},
        "pretrain": {"max_epochs": 1, "batch_size": 8, "progress_bar": False},
        "finetune": {"max_epochs": 1, "batch_size": 4, "progress_bar": False},
        "stability": {"structure": str(box), "n_runs": 1,
                      "md": {"steps": 20, "temperature_K": 300.0, "ensemble": "npt", "taut_fs": 20.0,
                             "taup_fs": 50.0, "save_every": 5,
                             "check_every": 5, "monitors": {"reference_rdf": "abinitio", "rdf_window": 2,
                                                            "rdf_rmax": 3.0, "rdf_bins": 30,
                                                            "rdf_threshold": 100.0}}},
    }
    config = tmp_path / "water.yaml"
    config.write_text(yaml.safe_dump(toy))
    out = tmp_path / "run"
    run = ffpt("run", str(config), "--out", str(out), "--quiet")
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    for arm in ("ffpt-ft", "scratch"):
        error = results["arms"][arm]["rdf_error_A"]
        assert math.isfinite(error) and error > 0
        rdf = json.loads((out / f"stability_{arm}_n4_s0" / "rdf.json").read_text())
        assert set(rdf["g"]) == {"O-O", "O-H", "H-H"} and rdf["n_frames"] == 5  # frames 0, 5, ..., 20
        density = json.loads((out / f"stability_{arm}_n4_s0" / "density.json").read_text())["runs"]
        assert len(density) == 1 and density[0]["time_fs"] == [0.0, 2.5, 5.0, 7.5, 10.0]
        assert len(set(density[0]["density"])) > 1  # the box breathes
        summary = results["stability"]["4"]["density_g_cm3"]["arms"][arm]
        assert summary["from_fs"] == 5.0 and summary["mean"] == pytest.approx(np.mean(density[0]["density"][2:]))
        assert results["arms"][arm]["density_g_cm3"]["mean"] == summary["mean"]
    reference = mass_density(read(box))  # the sampled configurations share the box's cell
    assert results["stability"]["4"]["density_g_cm3"]["reference"]["mean"] == pytest.approx(reference)
    assert (out / "rdf.png").stat().st_size > 1000 and (out / "density_n4.png").stat().st_size > 1000
    report = (out / "report.md").read_text()
    assert "RDF error vs reference" in report and "NPT density" in report and "NPT (MTK" in report

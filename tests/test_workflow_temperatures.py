"""``stability.extra_temperatures``: MD stability of the same models at more temperatures in one run
folder, in stages of their own beside the main temperature's, whose names and keys stay as before."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase import Atoms
from ase.io import read

from ffpt.config import ConfigError, parse_config
from ffpt.workflows import experiment
from ffpt.workflows.config import ExperimentConfig
from ffpt.workflows.stages import digest
from test_workflow import TOY, ffpt
from test_workflow_keys import DATA, GOLDEN

MODEL = "/nonexistent/ffpt-ft_n4_s0/model.pt"
START = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]], info={"channel": "01"})


class RecordingRun:
    """Stands in for a run directory: records each stage's name and inputs, runs nothing."""

    def __init__(self):
        self.stages = []

    root = Path("/nonexistent")

    def stage(self, name, inputs, work, earlier=None):
        self.stages.append((name, inputs))
        return {"runs": [], "seeds": [], "time_to_failure_fs": [], "fraction_stable_at_end": None}


def toy(**stability) -> ExperimentConfig:
    return parse_config(ExperimentConfig, {**TOY, "stability": {**TOY["stability"], **stability}}, source="toy.yaml")


def stages(config: ExperimentConfig, starts: dict | None = None) -> list[tuple[str, dict]]:
    run = RecordingRun()
    experiment.model_stability(config, run, "ffpt-ft", 4, 0, MODEL, DATA, starts or {}, False, lambda: None)
    return run.stages


def test_without_extra_temperatures_the_stage_names_and_keys_are_as_before():
    """Names and keys computed the way ffpt computed them before extra temperatures (and the golden
    digest of the toy's stability stage): run folders made before stay cached; adding an extra
    temperature leaves the main temperature's stages as they are."""
    md = TOY["stability"]["md"]  # the MD options as written: the key of a per-start stage
    for config in (toy(), toy(extra_temperatures=[900.0])):
        (name, inputs), *_ = stages(config)
        assert name == "stability_ffpt-ft_n4_s0"
        assert digest(inputs) == GOLDEN["stability_ffpt-ft_n4_s0"]
        (name, inputs), *_ = stages(config, {"TS_01": START})
        assert name == "stability/ffpt-ft_n4_s0/TS_01"
        assert inputs == {"model": MODEL, "md": md, "n_runs": 2, "md_seeds": [0, 1],
                          "start": experiment.start_key("TS_01", START)}
    names = [name for name, _ in stages(toy(exported=True, export_dtype="float32"))]
    assert names == ["stability_ffpt-ft_n4_s0_float32"]  # the package is made only when a stage runs


def test_each_extra_temperature_gets_stages_of_its_own_keyed_with_it_and_the_export_is_shared():
    config = toy(exported=True, export_dtype="float32", extra_temperatures=[1000.0, 312.5])
    recorded = stages(config)
    assert [name for name, _ in recorded] == ["stability_ffpt-ft_n4_s0_float32",
                                              "stability_ffpt-ft_n4_s0_float32_1000K",
                                              "stability_ffpt-ft_n4_s0_float32_312.5K"]
    temperatures = [inputs["stability"]["md"]["temperature_K"] for _, inputs in recorded]
    assert temperatures == [500.0, 1000.0, 312.5]
    package = {"exported": {"model": MODEL, "dtype": "float32"}}
    assert all(inputs["model"] == package for _, inputs in recorded)  # one package, every temperature
    assert len({digest(inputs) for _, inputs in recorded}) == 3
    per_start = stages(toy(extra_temperatures=[1000.0]), {"TS_01": START})
    assert [name for name, _ in per_start] == ["stability/ffpt-ft_n4_s0/TS_01", "stability/ffpt-ft_n4_s0_1000K/TS_01"]
    assert per_start[1][1]["md"]["temperature_K"] == 1000.0
    float32 = stages(toy(exported=True, export_dtype="float32", extra_temperatures=[1000.0]), {"TS_01": START})
    assert [name for name, _ in float32] == ["stability/ffpt-ft_n4_s0_float32/TS_01",  # beside the model's own
                                             "stability/ffpt-ft_n4_s0_float32_1000K/TS_01"]
    assert float32[0][1]["model"] == {"exported": {"model": MODEL, "dtype": "float32"}}


@pytest.mark.parametrize("temperatures, why", [([-10.0], "> 0"), ([900.0, 900.0], "once"),
                                               ([500.0], "stability.md.temperature_K")])
def test_a_bad_extra_temperature_is_a_config_error_naming_the_key(temperatures, why):
    with pytest.raises(ConfigError, match="stability.extra_temperatures") as error:
        toy(extra_temperatures=temperatures)
    assert why in str(error.value)


def test_the_cli_refuses_a_bad_extra_temperature_in_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**TOY, "stability": {**TOY["stability"], "extra_temperatures": [500]}}))
    result = ffpt("run", str(path), "--out", str(tmp_path / "run"), "--quiet")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "stability.extra_temperatures" in result.stderr
    assert not (tmp_path / "run" / "ff_sampling").exists()


def _kinetic_temperature(folder) -> float:
    """Mean kinetic temperature (K) of the first frame of every seed's trajectory (the initial velocities)."""
    frames = [read(path, index=0) for path in sorted(folder.glob("seed_*/trajectory.*"))]
    assert frames
    return float(np.mean([atoms.get_temperature() for atoms in frames]))


def test_an_experiment_runs_its_models_at_the_extra_temperature_too(tmp_path):
    """The toy experiment at one budget with an extra temperature: its stages run at it (MD config and
    initial velocities), results.json and report.md hold both temperatures, a rerun skips everything."""
    config = {**TOY, "budgets": [4], "stability": {**TOY["stability"], "extra_temperatures": [2000]}}
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    first = ffpt("run", str(path), "--out", str(out), "--quiet")
    assert first.returncode == 0, first.stderr[-3000:]
    lines = first.stdout.splitlines()
    for arm in ("ffpt-ft", "scratch"):  # the main temperature first, then the extra one
        assert lines.index(f"[stability_{arm}_n4_s0] running") < lines.index(f"[stability_{arm}_n4_s0_2000K] running")
        for name, temperature in ((f"stability_{arm}_n4_s0", 500.0), (f"stability_{arm}_n4_s0_2000K", 2000.0)):
            for seed in (0, 1):
                md = yaml.safe_load((out / name / f"seed_{seed}" / "md_config.yaml").read_text())
                assert md["temperature_K"] == temperature
    # the same MD seeds draw the same velocities scaled by sqrt(T): four times the kinetic temperature
    hot = np.mean([_kinetic_temperature(out / f"stability_{arm}_n4_s0_2000K") for arm in ("ffpt-ft", "scratch")])
    cold = np.mean([_kinetic_temperature(out / f"stability_{arm}_n4_s0") for arm in ("ffpt-ft", "scratch")])
    assert hot / cold == pytest.approx(4.0, rel=0.01), (hot, cold)
    results = json.loads((out / "results.json").read_text())
    assert set(results["stability"]) == {"4"} and set(results["stability_extra"]) == {"2000K"}
    for entry in (results["stability"]["4"], results["stability_extra"]["2000K"]["4"]):
        for arm in ("ffpt-ft", "scratch"):
            a = entry["arms"][arm]
            assert a["n_runs"] == 2 and set(a) == set(results["stability"]["4"]["arms"][arm])
            lo, hi = a["stable_fraction_ci95"]
            assert 0 <= lo <= a["stable_fraction"] <= hi <= 1
        assert [c["arms"] for c in entry["comparisons"]] == [["ffpt-ft", "scratch"]]
    assert (out / "survival_n4_2000K.png").stat().st_size > 1000 and (out / "survival_n4.png").exists()
    report = (out / "report.md").read_text()
    assert "## MD stability at 4 labels\n" in report and "## MD stability at 4 labels, 2000 K" in report
    assert "2000 K Langevin" in report and "survival_n4_2000K.png" in report
    second = ffpt("run", str(path), "--out", str(out), "--quiet")
    assert second.returncode == 0 and "running" not in second.stdout, second.stdout


def test_a_chain_on_workers_runs_each_model_at_the_main_temperature_then_the_extra_ones(tmp_path, monkeypatch):
    """:func:`experiment.run_chain` (``--workers``): every budget's model at 500 K, then at its extra
    temperatures, in the stages the serial pass finds cached."""
    ran = []
    monkeypatch.setattr(experiment, "pretrained_model", lambda *a: "/x/pretrain_s0/model.pt")
    monkeypatch.setattr(experiment, "arm_model", lambda config, run, arch, kind, budget, *a: f"/x/{kind}_n{budget}")
    monkeypatch.setattr(experiment, "stability_stage", lambda config, d, arm, path, *a, **k: ran.append(
        (d.name, path, config.stability.md.temperature_K)) or {"runs": []})
    config = toy(extra_temperatures=[1000.0, 700.0])
    experiment.run_chain(config, tmp_path, (0, "scratch", 0), {}, DATA)
    assert ran == [(f"stability_scratch_n{b}_s0{suffix}", f"/x/scratch_n{b}", t) for b in (4, 8)
                   for suffix, t in (("", 500.0), ("_1000K", 1000.0), ("_700K", 700.0))]

"""One configuration system: every shipped experiment validates, every section is typed and checked
at load, every verb resolves flags > overrides > file > defaults, one teacher-option syntax."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import yaml
from conftest import emt_frames
from test_cli_errors import tiny_model

from ffpt.cli import build_parser, main
from ffpt.cli import label as label_verb
from ffpt.cli import sample as sample_verb
from ffpt.cli._structures import normalise_calculator
from ffpt.config import ConfigError, load_config
from ffpt.data import write_frames
from ffpt.simulate.config import MDConfig
from ffpt.workflows.config import ExperimentConfig
from ffpt.workflows.demo import DEMO, demo_config

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted((ROOT / "experiments").glob("*.yaml"))


def parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_every_shipped_experiment_validates(path):
    config = load_config(ExperimentConfig, path)
    assert config.seeds and config.budgets
    if config.stability is not None:
        assert isinstance(config.stability.md, MDConfig)


def test_experiments_folder_and_demo_are_there():
    assert {p.name for p in EXPERIMENTS} >= {"ethanol.yaml", "aspirin.yaml", "water.yaml", "h2combustion.yaml"}
    demo = demo_config()
    assert demo.abinitio.sampling.md.temperatures == [1000.0]
    assert demo.stability.md.monitors.max_bond_deviation == 0.5


@pytest.mark.parametrize("key, where", [
    ("stability.md.monitors.min_distanse=0.4", "stability.md.monitors.min_distanse"),
    ("stability.md.stepz=10", "stability.md.stepz"),
    ("pretraining.md.temprature=[300]", "pretraining.md.temprature"),
    ("abinitio.sampling.randm=null", "abinitio.sampling.randm"),
    ("metad.options.hieght=2", "metad.options.hieght"),
    ("seeds=[{smile: CCO}]", "seeds.0.smile"),
])
def test_a_typo_in_any_section_is_refused_at_load(key, where):
    path = ROOT / "experiments" / ("h2combustion.yaml" if key.startswith("metad") else "water.yaml")
    with pytest.raises(ConfigError) as err:
        load_config(ExperimentConfig, path, [key])
    assert f"{path}: key '{where}'" in str(err.value)


def test_typed_values_are_checked_too():
    with pytest.raises(ConfigError, match="key 'stability.md.timestep_fs'"):
        load_config(ExperimentConfig, ROOT / "experiments" / "water.yaml", ["stability.md.timestep_fs=-1"])
    with pytest.raises(ConfigError, match="set by the stage"):
        load_config(ExperimentConfig, ROOT / "experiments" / "h2combustion.yaml", ["metad.options.calculator=x.pt"])


def test_metad_stage_builds_the_job_config():
    config = load_config(ExperimentConfig, ROOT / "experiments" / "h2combustion.yaml")
    job = config.metad.job_config("model.pt")
    assert job.calculator == "model.pt" and job.channel == "09" and job.steps == config.metad.options.steps
    assert job.structure.name == "TS_09.xyz" and len(job.upper_walls) == 3


def test_sample_precedence_flags_over_overrides_over_file(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"seeds": [{"smiles": "O"}], "out": "a.extxyz", "seed": 1,
                                    "md": {"frames": 5, "stride": 3}, "teacher_options": {"a": 1, "b": 2}}))
    args = parse(["sample", str(path), "seed=2", "md.frames=7", "--seed", "3", "--teacher-option", "b=x"])
    config = sample_verb.build_config(args)
    assert config.seed == 3 and config.md.frames == 7 and config.md.stride == 3
    assert config.teacher_options == {"a": 1, "b": "x"}  # merged key by key
    assert config.seeds[0].smiles == "O" and config.out == Path.cwd() / "a.extxyz"  # relative paths made absolute


def test_label_takes_the_same_forms_and_warns_on_old_ones(tmp_path, capsys):
    path = tmp_path / "l.yaml"
    path.write_text(yaml.safe_dump({"data": "in.extxyz", "out": "out.extxyz", "teacher": "uff",
                                    "teacher_options": {"bond_scale": 1.2}}))
    new = label_verb.build_config(parse(["label", str(path), "workers=2", "--teacher-option", "topology=self"]))
    assert new.workers == 2 and new.teacher_options == {"bond_scale": 1.2, "topology": "self"}
    assert capsys.readouterr().err == ""
    old = label_verb.build_config(parse(["label", "--config", str(path), "--option", "topology=self"]))
    assert old.teacher_options == new.teacher_options
    err = capsys.readouterr().err
    assert "--config FILE is deprecated" in err and "--option KEY=VALUE is deprecated" in err
    with pytest.warns(FutureWarning, match="'options' is deprecated"):
        legacy = load_config(type(old), flags={"data": "a", "out": "b", "teacher": "uff", "options": {"x": 1}})
    assert legacy.teacher_options == {"x": 1}


def test_md_calculator_options_one_syntax_and_the_old_spec_warns(capsys):
    args = parse(["md", "--calculator", "gfn2:accuracy=0.5,charge=0", "--out", "o"])
    config = normalise_calculator(args, MDConfig(calculator="gfn2:accuracy=0.5,charge=0",
                                                 teacher_options={"charge": 1}))
    assert config.calculator == "gfn2" and config.teacher_options == {"accuracy": 0.5, "charge": 1}
    assert "deprecated; use --calculator gfn2 --teacher-option accuracy=0.5" in capsys.readouterr().err
    plain = MDConfig(calculator="gfn2", teacher_options={"accuracy": 0.5})
    assert normalise_calculator(args, plain) == plain and capsys.readouterr().err == ""


def test_eval_positional_flag_and_yaml_forms_agree(tmp_path, capsys):
    model = tiny_model(tmp_path / "m.pt")
    data = write_frames(tmp_path / "d.extxyz", emt_frames(n=3))
    results = []
    (tmp_path / "e.yaml").write_text(yaml.safe_dump({"model": str(model), "data": str(data)}))
    for k, argv in enumerate([
        ["eval", str(model), str(data)],
        ["eval", "--model", str(model), "--data", str(data)],
        ["eval", str(tmp_path / "e.yaml"), "batch_size=2"],
    ]):
        assert main([*argv, "--json", str(tmp_path / f"{k}.json")]) == 0
        results.append(json.loads((tmp_path / f"{k}.json").read_text()))
        assert (tmp_path / f"{k}.png").exists()
    capsys.readouterr()
    assert results[0]["forces_mae_mev_per_a"] == pytest.approx(results[1]["forces_mae_mev_per_a"])
    assert results[0]["forces_mae_mev_per_a"] == pytest.approx(results[2]["forces_mae_mev_per_a"], rel=1e-5)


def test_demo_overrides_lie_over_the_embedded_config(tmp_path):
    from ffpt.cli._config import resolve_config

    path = tmp_path / "d.yaml"
    path.write_text(yaml.safe_dump({"budgets": [5], "stability": {"n_runs": 1}}))
    config = resolve_config(ExperimentConfig, parse(["demo", str(path), "arm_seeds=2"]), {}, defaults=DEMO)
    assert config.budgets == [5] and config.arm_seeds == 2 and config.stability.n_runs == 1
    assert config.stability.md.steps == DEMO["stability"]["md"]["steps"]  # sections merge key by key
    assert config.name == DEMO["name"]

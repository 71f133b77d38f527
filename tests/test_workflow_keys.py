"""Stage keys of experiments: an unchanged single-architecture config keeps the keys its run folders
were made with (so nothing finished reruns), and a second architecture adds stages without touching
the first one's."""

import json
import shutil

import pytest

from ffpt.config import parse_config
from ffpt.training.config import TrainingConfig
from ffpt.workflows import experiment
from ffpt.workflows.config import ExperimentConfig
from ffpt.workflows.stages import digest
from test_workflow import TOY

# Digests of the toy experiment's stage inputs as ffpt computed them before architectures were added
# (commit 6ca2f42), with the upstream outputs below.
GOLDEN = {
    "ff_sampling": "ba3bd28c29880ca45cc2f2bde54bf7f57b63ab10ac5369a38abdb7e53a8d6ea8",
    "abinitio": "11d80ba9a4e99431cb1d21fa29e7aecc208aa3fe3e5c97c1590d4cdb9abd0ca5",
    "pretrain_s0": "ef2b5449a4c50ed888513ee8d1b37c28ae806ecc00384b2bfac04099382f9834",
    "ffpt-ft_n4_s0": "fcf7ca2688debcfda43bbe127b99eeaa5117c1829904e8e028debd9690318fec",
    "scratch_n4_s0": "f1675725a32cb70e230643323ea50b4eae3d28ff152c4c7fdbd768d322f100a5",
    "ffpt-ft_n8_s0": "176597bce86846291a4e2e3aedef11f7fe109ae1a3a4bc9db85df6c61d5a54cb",
    "scratch_n8_s0": "1e4dd03495097cf9f85470f9a965983b4233fa0ee3dea310c9e768eb452a43be",
    "stability_ffpt-ft_n4_s0": "601d565621480364ebb7ea53e92e2cf82be49e39bf06157805eb7377513bf4a2",
    "stability_scratch_n4_s0": "3a55df423b11c10883fad211bc9153c25133ccc0dd65505b90d7e06f0c2a2a03",
}
FF = {"frames": "/nonexistent/ff/ff.extxyz", "n_frames": 36}
DATA = {"pool": "/nonexistent/abinitio/pool.extxyz", "valid": "/nonexistent/abinitio/valid.extxyz",
        "test": "/nonexistent/abinitio/test.extxyz", "configs": "/nonexistent/abinitio/configs.extxyz",
        "n_pool": 10, "n_valid": 2, "n_test": 4, "failures": []}
PRETRAINED = "/nonexistent/pretrain_s0/model.pt"


def stage_keys(config: ExperimentConfig) -> dict[str, str]:
    """Every training and MD stage key of seed 0, by stage name, as the run computes them."""
    keys = {"ff_sampling": digest(experiment.ff_sampling_inputs(config)),
            "abinitio": digest(experiment.abinitio_inputs(config))}
    for arch in config.architecture_runs:
        keys[arch.pretrain_stage(0)] = digest(experiment.pretrain_inputs(arch, FF))
        for budget in config.budgets:
            for kind in experiment.ARM_KINDS:
                init = PRETRAINED if kind == "ffpt-ft" else None
                keys[f"{arch.arm(kind)}_n{budget}_s0"] = digest(
                    experiment.arm_inputs(arch, kind, budget, 0, DATA, init))
    for kind in experiment.ARM_KINDS:
        model = f"/nonexistent/{kind}_n4_s0/model.pt"
        keys[f"stability_{kind}_n4_s0"] = digest({"model": model, "stability": experiment.stability_settings(config),
                                                  "md_seeds": [0, 1]})
    return keys


def test_an_unchanged_single_architecture_config_keeps_its_stage_keys():
    keys = stage_keys(parse_config(ExperimentConfig, TOY, source="toy.yaml"))
    assert {name: keys[name] for name in GOLDEN} == GOLDEN
    listed = parse_config(ExperimentConfig, {**TOY, "architectures": ["newtonnet"]}, source="toy.yaml")
    assert stage_keys(listed) == keys  # naming the one architecture changes nothing


def test_a_second_architecture_adds_stages_and_leaves_the_first_ones_keys():
    both = parse_config(ExperimentConfig, {**TOY, "architectures": ["newtonnet", "mace"],
                                           "per_architecture": {"mace": {"model": {"n_features": 4}}}},
                        source="toy.yaml")
    keys = stage_keys(both)
    assert {name: keys[name] for name in GOLDEN} == GOLDEN
    added = sorted(set(keys) - set(GOLDEN) - {"ffpt-ft_n8_s0", "scratch_n8_s0"})
    assert added == ["mace-ffpt-ft_n4_s0", "mace-ffpt-ft_n8_s0", "mace-scratch_n4_s0", "mace-scratch_n8_s0",
                     "pretrain_mace_s0"]
    assert len(set(keys.values())) == len(keys)  # every stage its own key
    mace = both.architecture_runs[1]
    assert experiment.arm_inputs(mace, "ffpt-ft", 4, 0, DATA, PRETRAINED)["model"]["architecture"] == "mace"


def test_a_later_training_option_enters_the_key_only_when_used(monkeypatch):
    """A field not among the keyed ones (here huber_delta, as if added later) is left out at its default."""
    fields = tuple(f for f in experiment.KEYED_FIELDS["TrainingConfig"] if f != "huber_delta")
    monkeypatch.setitem(experiment.KEYED_FIELDS, "TrainingConfig", fields)
    assert "huber_delta" not in experiment.keyed(TrainingConfig())
    assert experiment.keyed(TrainingConfig(huber_delta=0.1))["huber_delta"] == pytest.approx(0.1)
    assert experiment.keyed(TrainingConfig())["lr"] == pytest.approx(1e-3)  # keyed fields stay at defaults too


@pytest.mark.parametrize("molecule", ["ethanol", "aspirin"])
def test_the_four_arm_experiments_share_the_labels_of_the_shipped_ones(molecule):
    """experiments/<molecule>_mace.yaml keys its force-field frames and ab initio labels exactly as the
    shipped experiment run with 50 labels at most and 40 test frames, so one folder's labels serve both."""
    from pathlib import Path

    from ffpt.config import load_config

    root = Path(__file__).parents[1] / "experiments"
    four = load_config(ExperimentConfig, root / f"{molecule}_mace.yaml")
    shipped = load_config(ExperimentConfig, root / f"{molecule}.yaml",
                          ["abinitio.sampling.md.frames=50", "budgets=[10,30,50]", "arm_seeds=2", "abinitio.n_test=40"])
    for inputs in (experiment.ff_sampling_inputs, experiment.abinitio_inputs):
        assert digest(inputs(four)) == digest(inputs(shipped))
    assert [a.name for a in four.arms] == ["ffpt-ft", "scratch", "mace-ffpt-ft", "mace-scratch", "mace-cli"]
    assert four.budgets == [10, 30, 50] and four.arm_seeds == 2 and four.stability.n_runs == 4
    md = four.stability.md
    assert md.steps * md.timestep_fs == 10000 and md.temperature_K == 500
    for arch in four.architecture_runs:  # epochs with early stopping; the time cap only a guard
        assert arch.finetune.early_stopping_patience < arch.finetune.max_epochs
        assert arch.pretrain.max_time_minutes >= 45 and arch.finetune.max_time_minutes >= 45
    newtonnet, mace = four.architecture_runs
    assert newtonnet.model == shipped.model  # the shared sections are NewtonNet's, as shipped
    # MACE pre-trains one epoch (its cost: the config's comment); fine-tunes as long as mace_run_train
    # trains the reference arm, with stage two from the same epoch
    assert mace.pretrain.max_epochs == 1 and mace.pretrain.swa_start is None
    assert mace.finetune.max_epochs == four.mace_reference.max_num_epochs
    assert mace.finetune.swa_start == four.mace_reference.start_swa and mace.finetune.amsgrad


def test_packages_in_another_float_type_get_stages_of_their_own():
    """``stability.export_dtype``: the exports and MD of float32 packages sit beside the model's own
    (other folder names); the MD settings key is unchanged; it needs ``exported: true``."""
    from ffpt.config import ConfigError

    stability = {**TOY["stability"], "exported": True}
    own = parse_config(ExperimentConfig, {**TOY, "stability": stability}, source="toy.yaml")
    f32 = parse_config(ExperimentConfig, {**TOY, "stability": {**stability, "export_dtype": "float32"}},
                       source="toy.yaml")
    assert experiment.exported_stage_names(own, "ffpt-ft", 4, 0) == ("export_ffpt-ft_n4_s0", "stability_ffpt-ft_n4_s0")
    assert experiment.exported_stage_names(f32, "ffpt-ft", 4, 0) == ("export_ffpt-ft_n4_s0_float32",
                                                                     "stability_ffpt-ft_n4_s0_float32")
    assert experiment.stability_settings(own) == experiment.stability_settings(f32)
    with pytest.raises(ConfigError, match="export_dtype"):
        parse_config(ExperimentConfig, {**TOY, "stability": {**TOY["stability"], "export_dtype": "float32"}},
                     source="toy.yaml")


def test_with_exported_md_every_arm_runs_its_package_mace_run_train_included(tmp_path, monkeypatch):
    """``stability.exported``: each model, the ``mace_run_train`` arm's ``.model`` too, is exported (one
    stage) and its MD runs the package, in the ``export_dtype``-named folders."""
    from ffpt.workflows.config import REFERENCE_ARM
    from ffpt.workflows.stages import RunDirectory

    exported, ran = [], []
    monkeypatch.setattr(experiment, "export_stage",
                        lambda d, path, dtype: exported.append((path, dtype)) or {"package": str(d / "model.pt2")})
    monkeypatch.setattr(experiment, "stability_stage",
                        lambda config, d, arm, path, *a, **k: ran.append((arm, path)) or {"runs": []})
    config = parse_config(ExperimentConfig, {**TOY, "stability": {**TOY["stability"], "exported": True,
                                                                  "export_dtype": "float32"}}, source="toy.yaml")
    run = RunDirectory(tmp_path, echo=lambda line: None)
    for arm, model in ((REFERENCE_ARM, "/x/mace-cli_n4_s0/mace/mace.model"), ("ffpt-ft", "/x/ffpt-ft_n4_s0/model.pt")):
        experiment.model_stability(config, run, arm, 4, 0, model, DATA, {}, False, lambda: None)
    assert exported == [("/x/mace-cli_n4_s0/mace/mace.model", "float32"), ("/x/ffpt-ft_n4_s0/model.pt", "float32")]
    assert ran == [(REFERENCE_ARM, str(tmp_path / "export_mace-cli_n4_s0_float32" / "model.pt2")),
                   ("ffpt-ft", str(tmp_path / "export_ffpt-ft_n4_s0_float32" / "model.pt2"))]
    assert (tmp_path / "stability_mace-cli_n4_s0_float32" / "stage.json").exists()


def test_exported_md_is_keyed_by_the_model_and_float_type_not_the_package_bytes(tmp_path, monkeypatch):
    """An exported model's MD stage is keyed by its model file and the package's float type: a stage
    recorded by an earlier ffpt under the package's bytes stays cached (and is recorded again under the
    new key), a run folder carried without its packages exports and runs nothing, and a changed model
    file exports and runs again."""
    from ffpt.workflows.stages import RunDirectory

    exported, ran = [], []

    def export(folder, path, dtype):
        exported.append(path)
        (folder / "model.pt2").write_text("compiled again")
        return {"package": str(folder / "model.pt2")}

    monkeypatch.setattr(experiment, "export_stage", export)
    monkeypatch.setattr(experiment, "stability_stage",
                        lambda config, d, arm, path, *a, **k: ran.append(path) or {"runs": ["md"]})
    config = parse_config(ExperimentConfig, {**TOY, "stability": {**TOY["stability"], "exported": True,
                                                                  "export_dtype": "float32"}}, source="toy.yaml")
    model = tmp_path / "ffpt-ft_n4_s0" / "model.pt"
    model.parent.mkdir()
    model.write_text("weights")
    package = tmp_path / "export_ffpt-ft_n4_s0_float32" / "model.pt2"
    package.parent.mkdir()
    package.write_text("compiled")
    run = RunDirectory(tmp_path, echo=lambda line: None)
    earlier = {"model": str(package), "stability": experiment.stability_settings(config), "md_seeds": [0, 1]}
    run.stage("stability_ffpt-ft_n4_s0_float32", earlier, lambda d: {"runs": ["earlier md"]})  # an earlier ffpt
    stage = tmp_path / "stability_ffpt-ft_n4_s0_float32" / "stage.json"
    assert json.loads(stage.read_text())["key"] == digest(earlier)

    def stability():
        return experiment.model_stability(config, RunDirectory(tmp_path, echo=lambda line: None), "ffpt-ft", 4, 0,
                                          str(model), DATA, {}, False, lambda: None)

    assert stability() == {None: {"runs": ["earlier md"]}} and exported == ran == []
    assert json.loads(stage.read_text())["key"] != digest(earlier)  # recorded again under the new key
    shutil.rmtree(package.parent)  # carried to another machine without its package
    assert stability() == {None: {"runs": ["earlier md"]}} and exported == ran == []
    model.write_text("other weights")
    assert stability() == {None: {"runs": ["md"]}}
    assert exported == [str(model)] and ran == [str(package)]

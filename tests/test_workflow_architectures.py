"""An experiment of two architectures plus MACE trained by mace_run_train itself: every arm on the same
frames, every arm in results.json and the report, MACE fine-tuning starting from its pre-trained weights."""

import json

import pytest
import torch

from ffpt.config import parse_config
from ffpt.models.model_file import read_model_file
from ffpt.workflows.config import ExperimentConfig
from test_workflow import TOY

pytest.importorskip("mace")

TINY_MACE = {
    "model": {"n_features": 4, "n_layers": 1, "n_basis": 4,
              "options": {"max_ell": 1, "correlation": 2, "radial_mlp": [8], "mlp_irreps": 4}},
    "pretrain": {"max_epochs": 2, "batch_size": 8},
    "finetune": {"max_epochs": 2, "batch_size": 4},
}
# a tiny run of mace_run_train (about 15 s here): 3 epochs, the last in stage two
TINY_RECIPE = {"hidden_irreps": "4x0e + 4x1o", "max_num_epochs": 3, "start_swa": 2, "batch_size": 4,
               "correlation": 2, "max_ell": 1, "num_interactions": 1, "num_radial_basis": 4, "r_max": 4.0}
FOUR_ARMS = {**TOY, "budgets": [4], "architectures": ["newtonnet", "mace"], "per_architecture": {"mace": TINY_MACE},
             "mace_reference": TINY_RECIPE}
ARMS = ["ffpt-ft", "scratch", "mace-ffpt-ft", "mace-scratch", "mace-cli"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The experiment, run in this process, with the state each fine-tuning run starts from recorded."""
    from ffpt.execution import InlineExecutor
    from ffpt.training import stages
    from ffpt.workflows.experiment import run_experiment

    config = parse_config(ExperimentConfig, FOUR_ARMS, source="four_arms.yaml")
    out = tmp_path_factory.mktemp("four_arms") / "run"
    initial = {}
    original = stages._initial_model

    def recording(train_config, train, dtype):
        model = original(train_config, train, dtype)
        initial[train_config.out.resolve()] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return model

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stages, "_initial_model", recording)
        results = run_experiment(config, out, progress=False, executor=InlineExecutor())
    return out, results, initial


def test_every_arm_trains_on_the_same_frames_and_is_reported(run):
    out, results, _ = run
    saved = json.loads((out / "results.json").read_text())
    assert list(saved["arms"]) == ARMS
    frames = {arm: (out / f"{arm}_n4_s0" / "train.extxyz").read_bytes() for arm in ARMS}
    assert len(set(frames.values())) == 1 and frames["mace-cli"].count(b"Properties=") == 4
    assert (out / "mace-cli_n4_s0" / "valid.extxyz").read_bytes() == (out / "abinitio" / "valid.extxyz").read_bytes()
    for arm in ARMS:
        r = saved["arms"][arm]
        assert r["force_mae_mev_per_a"] > 0 and r["energy_mae_mev_per_atom"] >= 0, arm
        lo, hi = r["stable_fraction_ci95"]
        assert 0 <= lo <= r["stable_fraction"] <= hi <= 1, arm
        assert (out / f"stability_{arm}_n4_s0" / "batch.json").exists()
    assert saved["arms"]["mace-ffpt-ft"]["architecture"] == "mace" and saved["arms"]["mace-cli"]["trained_by"] == "mace-cli"
    mace_model = read_model_file(out / "mace-scratch_n4_s0" / "model" / "model.pt")
    assert mace_model["architecture"] == "mace" and mace_model["hparams"]["n_features"] == 4
    assert (out / "mace-cli_n4_s0" / "mace" / "mace_stagetwo.model").exists()
    entry = saved["stability"]["4"]
    assert set(entry["arms"]) == set(ARMS)
    best = entry["best_scratch"]
    scratch = ["scratch", "mace-scratch", "mace-cli"]
    assert entry["arms"][best["arm"]]["stable_fraction"] == max(entry["arms"][a]["stable_fraction"] for a in scratch)
    pairs = {tuple(c["arms"]) for c in entry["comparisons"]}
    assert ("ffpt-ft", "scratch") in pairs and ("mace-ffpt-ft", "mace-scratch") in pairs
    assert ("ffpt-ft", best["arm"]) in pairs and ("mace-ffpt-ft", best["arm"]) in pairs
    assert all(0 <= c["pvalue"] <= 1 for c in entry["comparisons"])
    report = (out / "report.md").read_text()
    assert f"Best scratch arm: {best['arm']}" in report and "mace-cli" in report
    assert "time guard" in report
    rows = {(r["arm"], r["budget"]) for r in saved["rows"]}
    assert rows == {(arm, 4) for arm in ARMS}
    stops = {arm: saved["arms"][arm]["by_budget"]["4"]["stopped_by"] for arm in ARMS}
    assert stops["mace-cli"] == {"0": "max_epochs"}  # 3 epochs, no patience stop in its log
    assert all(set(s.values()) <= {"max_epochs", "early_stopping", "max_time"} and s for s in stops.values()), stops
    assert saved["time_guard_fired"] == [] and "fired for no model" in report
    accuracy = {tuple(c["arms"]): c for c in saved["accuracy"]["4"]}  # the same frames, arm by arm
    most_accurate = min(scratch, key=lambda a: saved["arms"][a]["force_mae_mev_per_a"])
    assert set(accuracy) == {("ffpt-ft", "scratch"), ("mace-ffpt-ft", "mace-scratch"),
                             ("ffpt-ft", most_accurate), ("mace-ffpt-ft", most_accurate)}
    for (arm, other), c in accuracy.items():
        difference = saved["arms"][arm]["force_mae_mev_per_a"] - saved["arms"][other]["force_mae_mev_per_a"]
        assert c["forces_mae_mev_per_a"]["mean"] == pytest.approx(difference, abs=1e-9)
        assert c["forces_mae_mev_per_a"]["n"] == saved["n_test"]
    assert "Accuracy: FFPT-FT against scratch on the same test frames" in report


def test_mace_fine_tuning_starts_from_the_pretrained_weights(run):
    out, _, initial = run
    pretrained_path = out / "pretrain_mace_s0" / "model.pt"
    pretrained = read_model_file(pretrained_path)
    assert pretrained["architecture"] == "mace"
    start = initial[(out / "mace-ffpt-ft_n4_s0" / "model").resolve()]
    weights = {k: v for k, v in pretrained["state_dict"].items() if k != "references"}  # refitted on the labels
    assert set(weights) <= set(start) and len(weights) > 10
    for name, value in weights.items():
        assert torch.equal(start[name], value.to(start[name].dtype)), name
    scratch_start = initial[(out / "mace-scratch_n4_s0" / "model").resolve()]
    assert any(not torch.equal(scratch_start[k], v.to(scratch_start[k].dtype)) for k, v in weights.items())
    tuned = read_model_file(out / "mace-ffpt-ft_n4_s0" / "model" / "model.pt")
    assert tuned["provenance"]["parent"]["path"] == str(pretrained_path)
    assert any(not torch.equal(tuned["state_dict"][k], v) for k, v in weights.items())  # and it trained


def test_mace_takes_its_recipe_under_the_shared_sections_and_its_own_keys_over_it():
    config = parse_config(ExperimentConfig, {**TOY, "architectures": ["newtonnet", "mace"],
                                             "finetune": {"max_epochs": 400, "early_stopping_patience": 60},
                                             "per_architecture": {"mace": {"pretrain": {"swa_start": None},
                                                                           "model": {"options": {"correlation": 2}}}}},
                          source="four_arms.yaml")
    newtonnet, mace = config.architecture_runs
    assert newtonnet.finetune.optimizer == "adamw" and newtonnet.finetune.swa_start is None  # shared, untouched
    assert newtonnet.model.n_layers == 1 and mace.model.n_layers == 2 and mace.model.dtype == "float64"
    assert mace.model.options == {"max_ell": 3, "max_L": 1, "correlation": 2}  # merged key by key
    assert mace.model.cutoff == 4.0  # shared
    f = mace.finetune
    assert (f.optimizer, f.amsgrad, f.lr, f.forces_weight, f.batch_size) == ("adam", True, 0.01, 100.0, 5)
    assert f.ema_warmup and f.weight_decay_groups == "mace" and not newtonnet.finetune.ema_warmup
    assert (f.max_epochs, f.early_stopping_patience, f.swa_start, f.swa_energy_weight) == (400, 60, 300, 1000.0)
    assert mace.pretrain.swa_start is None and mace.pretrain.swa_lr is None  # stage two turned off
    assert [a.name for a in config.arms] == ["ffpt-ft", "scratch", "mace-ffpt-ft", "mace-scratch"]


@pytest.mark.parametrize("extra, message", [
    ({"per_architecture": {"mace": {"model": {"n_featres": 4}}}},
     "per_architecture.mace.model: key 'n_featres': unknown key"),
    ({"per_architecture": {"mace": {"model": {"options": {"zbl": True}}}}}, "no ZBL repulsion prior"),
    ({"per_architecture": {"newtonnet": {}, "maze": {}}}, r"per_architecture \['maze'\]: not among architectures"),
    ({"model": {"architecture": "mace"}}, "model.architecture 'mace' must be the first of architectures"),
    ({"architectures": ["newtonnet", "nequip"]}, r"architectures: unknown \['nequip'\]"),
    ({"mace_reference": {"hidden_irrep": "8x0e"}}, "mace_reference.hidden_irrep.*unknown key"),
])
def test_architecture_errors_name_the_key(extra, message):
    from ffpt.config import ConfigError

    with pytest.raises(ConfigError, match=message):
        parse_config(ExperimentConfig, {**TOY, "architectures": ["newtonnet", "mace"], **extra}, source="four_arms.yaml")

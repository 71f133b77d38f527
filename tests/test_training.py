"""Training stages: learning, fine-tuning from pre-trained weights, reference refit, freezing,
config validation and resume after a kill."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from ffpt.data import read_frames, set_labels, write_frames
from ffpt.models import load_model, read_model_file
from ffpt.models.inference import network_energies, predict_frames
from ffpt.training import ConfigError, TrainConfig, parse_config, train
from ffpt.training.stages import _initial_model, set_references

TINY = {"n_features": 16, "n_layers": 2, "n_basis": 8, "cutoff": 4.0}


def config(train_path, valid_path, out, **training):
    training = {"max_epochs": 4, "batch_size": 8, "lr": 1e-2, "ema_decay": 0.5, "progress_bar": False, **training}
    stage = training.pop("stage", "scratch")
    finetune = training.pop("finetune", {})
    return parse_config(
        TrainConfig,
        {
            "data": {"train": str(train_path), "valid": str(valid_path)},
            "model": TINY,
            "training": {"stage": stage, **training},
            "finetune": finetune,
            "out": str(out),
        },
    )


@pytest.fixture(scope="module")
def pretrained(emt_dataset, tmp_path_factory):
    train_path, valid_path = emt_dataset
    out = tmp_path_factory.mktemp("pretrain")
    return train(config(train_path, valid_path, out, stage="pretrain", max_epochs=12))


def test_training_learns(emt_dataset, pretrained, tmp_path):
    _, valid_path = emt_dataset
    untrained = train(config(*emt_dataset, tmp_path / "zero", max_epochs=1, lr=1e-9))
    assert pretrained.metrics["forces_mae_mev_per_a"] < 0.7 * untrained.metrics["forces_mae_mev_per_a"]
    payload = read_model_file(pretrained.model_path)
    assert payload["provenance"]["stage"] == "pretrain"
    assert payload["provenance"]["teachers"] == ["emt"]
    assert payload["hparams"]["elements"] == [1, 6, 8]
    log = (pretrained.model_path.parent / "logs" / "version_0" / "metrics.csv").read_text()
    assert not (pretrained.model_path.parent / "logs" / "version_1").exists()
    assert "val_forces_mae_mev_per_a" in log


def test_finetune_starts_from_pretrained_weights(emt_dataset, pretrained, tmp_path):
    cfg = config(*emt_dataset, tmp_path / "ft", stage="finetune",
                 finetune={"init": str(pretrained.model_path), "refit_references": False})
    start = _initial_model(cfg, read_frames(emt_dataset[0]), torch.float32)
    reference = load_model(pretrained.model_path)
    for (name, a), (_, b) in zip(start.state_dict().items(), reference.state_dict().items()):
        torch.testing.assert_close(a, b, msg=name)
    scratch = _initial_model(config(*emt_dataset, tmp_path / "sc"), read_frames(emt_dataset[0]), torch.float32)
    assert not torch.allclose(scratch.layers[0].radial_filter.weight, reference.layers[0].radial_filter.weight)
    refit = train(config(*emt_dataset, tmp_path / "ft_refit", stage="finetune",
                         finetune={"init": str(pretrained.model_path)}))
    train_frames = read_frames(emt_dataset[0])
    energies, _ = predict_frames(load_model(refit.model_path), train_frames)
    residual = energies - np.array([a.info["REF_energy"] for a in train_frames])
    assert abs(residual.mean()) < 1e-3  # eV: offsets refitted after fine-tuning
    result = train(cfg)
    provenance = read_model_file(result.model_path)["provenance"]
    assert provenance["stage"] == "finetune"
    assert provenance["parent"]["provenance"]["stage"] == "pretrain"


def test_refit_moves_offset_not_network(emt_dataset, pretrained):
    """Labels shifted by per-element constants: the refit recovers the shifts, weights untouched."""
    frames = read_frames(emt_dataset[0])
    model = load_model(pretrained.model_path)
    shift = {1: 0.5, 6: -3.0, 8: 7.25}
    shifted = []
    for a in frames:
        b = a.copy()
        set_labels(b, a.info["REF_energy"] + sum(shift[z] for z in a.numbers), a.arrays["REF_forces"])
        shifted.append(b)
    before_refs = model.references.clone()
    before_weights = {k: v.clone() for k, v in model.state_dict().items() if k != "references"}
    net_before = network_energies(model, frames)
    set_references(model, frames)
    refs_fit = model.references.clone()
    set_references(model, shifted)
    np.testing.assert_allclose((model.references - refs_fit).numpy(), [0.5, -3.0, 7.25], atol=1e-4)
    for k, v in model.state_dict().items():
        if k != "references":
            torch.testing.assert_close(v, before_weights[k], msg=k)
    np.testing.assert_allclose(network_energies(model, frames), net_before, rtol=1e-6)
    # the fitted references make the mean energy residual vanish on the training labels
    energies, _ = predict_frames(model, shifted)
    residual = energies - np.array([a.info["REF_energy"] for a in shifted])
    assert abs(residual.mean()) < 1e-3 * np.abs(energies).mean()
    assert not torch.allclose(before_refs, model.references)


def test_freeze_keeps_named_parts(emt_dataset, pretrained, tmp_path):
    cfg = config(*emt_dataset, tmp_path / "frozen", stage="finetune", max_epochs=2,
                 finetune={"init": str(pretrained.model_path), "freeze": ["embedding", "layers.0"], "lr": 1e-2})
    result = train(cfg)
    before, after = load_model(pretrained.model_path), load_model(result.model_path)
    torch.testing.assert_close(after.embedding.weight, before.embedding.weight)
    torch.testing.assert_close(after.layers[0].radial_filter.weight, before.layers[0].radial_filter.weight)
    assert not torch.allclose(after.layers[1].radial_filter.weight, before.layers[1].radial_filter.weight)
    bad = config(*emt_dataset, tmp_path / "bad", stage="finetune",
                 finetune={"init": str(pretrained.model_path), "freeze": ["encoder"]})
    with pytest.raises(ValueError, match="'encoder' matches no parameter"):
        train(bad)


def test_finetune_refuses_new_elements(tmp_path, pretrained):
    from ase.build import molecule

    nh3 = molecule("NH3")
    set_labels(nh3, -1.0, np.zeros((4, 3)))
    path = write_frames(tmp_path / "nh3.extxyz", [nh3, nh3.copy()])
    cfg = config(path, path, tmp_path / "n", stage="finetune", finetune={"init": str(pretrained.model_path)})
    with pytest.raises(ValueError, match=r"lacks element\(s\) \['N'\]"):
        train(cfg)


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"key 'training.max_epoch': unknown key"):
        parse_config(TrainConfig, {"data": {"train": "x"}, "training": {"max_epoch": 3}}, "cfg.yaml")
    with pytest.raises(ConfigError, match=r"cfg.yaml: key 'training.batch_size'"):
        parse_config(TrainConfig, {"data": {"train": "x"}, "training": {"batch_size": "many"}}, "cfg.yaml")
    with pytest.raises(ConfigError, match=r"key 'data'"):
        parse_config(TrainConfig, {}, "cfg.yaml")


def test_cli_train_flags_then_eval(emt_dataset, tmp_path):
    train_path, valid_path = emt_dataset
    out = tmp_path / "cli"
    yaml_path = tmp_path / "cfg.yaml"
    yaml_path.write_text("model:\n  n_features: 8\n  n_layers: 1\n  n_basis: 4\ntraining:\n  progress_bar: false\n")
    cmd = [sys.executable, "-m", "ffpt.cli", "train", str(yaml_path), "--train", str(train_path),
           "--valid", str(valid_path), "--max-epochs", "1", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    model_path = proc.stdout.strip().splitlines()[-1]
    assert model_path.endswith("model.pt") and os.path.exists(model_path)
    js = tmp_path / "errors.json"
    proc = subprocess.run([sys.executable, "-m", "ffpt.cli", "eval", model_path, str(valid_path), "--json", str(js)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    errors = json.loads(js.read_text())
    for key in ("n_frames", "energy_mae_mev_per_atom", "energy_rmse_mev_per_atom",
                "forces_mae_mev_per_a", "forces_rmse_mev_per_a"):
        assert errors[key] >= 0
    assert errors["n_frames"] == 15
    assert js.with_suffix(".png").stat().st_size > 1000


def test_resume_after_kill(emt_dataset, tmp_path):
    """Kill a training process once it has checkpointed, rerun it, and it continues to max_epochs."""
    train_path, valid_path = emt_dataset
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "ffpt.cli", "train", "model.n_features=8", "model.n_layers=1",
           "training.progress_bar=false", "--train", str(train_path), "--valid", str(valid_path),
           "--max-epochs", "400", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    last = out / "checkpoints" / "last.ckpt"
    deadline = time.time() + 120
    while time.time() < deadline:
        if last.exists() and torch.load(last, weights_only=False)["epoch"] >= 2:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    epoch_at_kill = torch.load(last, weights_only=False)["epoch"]
    assert 2 <= epoch_at_kill < 400
    cmd[cmd.index("400")] = str(epoch_at_kill + 3)  # epochs are 0-based: two more than done
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert torch.load(last, weights_only=False)["epoch"] == epoch_at_kill + 2
    assert (out / "model.pt").exists()
    # the first run's log is kept; the resumed run logs beside it
    assert (out / "logs" / "version_0" / "metrics.csv").exists()
    resumed = (out / "logs" / "version_1" / "metrics.csv").read_text().splitlines()
    epochs = {int(line.split(",")[0]) for line in resumed[1:]}
    assert epochs == {epoch_at_kill + 1, epoch_at_kill + 2}  # continued, not restarted at 0

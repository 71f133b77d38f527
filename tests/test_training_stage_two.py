"""MACE's trainer in ffpt: Adam + AMSGrad with MACE's weight-decay groups, the stage-two switch of loss
weights and learning rate at its epoch (resumable across it), and how each run stopped."""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from ffpt.cli import main
from ffpt.models import read_model_file
from ffpt.models.model_file import build_model
from ffpt.training import ConfigError, TrainConfig, parse_config, stages, train
from ffpt.training.module import PotentialModule
from test_training_resume import KILLED_TRAIN, MAX_EPOCHS, _tensors, argv

TINY = {"n_features": 8, "n_layers": 1, "n_basis": 4, "cutoff": 4.0}
STAGE_TWO = {"swa_start": 2, "swa_lr": 0.003, "swa_energy_weight": 7.0, "swa_forces_weight": 3.0}


def config(train_path, valid_path, out, **training):
    training = {"max_epochs": 4, "batch_size": 8, "lr": 0.05, "ema_decay": 0.5, "progress_bar": False, **training}
    return parse_config(TrainConfig, {"data": {"train": str(train_path), "valid": str(valid_path)},
                                      "model": TINY, "training": training, "out": str(out)})


class Record(Callback):
    """(epoch, learning rates, energy weight, forces weight) at every training batch."""

    def __init__(self):
        self.seen = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        lrs = {g["lr"] for g in trainer.optimizers[0].param_groups}
        self.seen.append((trainer.current_epoch, lrs, pl_module.energy_weight, pl_module.forces_weight))


def test_stage_two_switches_weights_and_lr_at_its_epoch(emt_dataset, tmp_path, monkeypatch):
    record = Record()
    make = stages._callbacks
    monkeypatch.setattr(stages, "_callbacks", lambda *args: make(*args) + [record])
    out = tmp_path / "run"
    # lr_patience 0: the plateau scheduler halves the lr every epoch without improvement in stage one
    result = train(config(*emt_dataset, out, lr_patience=0, lr_factor=0.5, **STAGE_TWO))
    by_epoch = {}
    for epoch, lrs, w_e, w_f in record.seen:
        by_epoch.setdefault(epoch, set()).add((tuple(sorted(lrs)), w_e, w_f))
    assert sorted(by_epoch) == [0, 1, 2, 3]
    for epoch in (0, 1):
        (lrs, w_e, w_f), = by_epoch[epoch]
        assert (w_e, w_f) == (1.0, 10.0) and max(lrs) <= 0.05
    for epoch in (2, 3):
        assert by_epoch[epoch] == {((0.003,), 7.0, 3.0)}
    # the best checkpoint is chosen within stage two (the loss changed meaning at the switch)
    assert torch.load(out / "checkpoints" / "best.ckpt", weights_only=False)["epoch"] >= STAGE_TWO["swa_start"]
    # how it stopped, in metrics.json and in the model's provenance
    n_batches = -(-60 // 8)
    stop = {k: result.metrics[k] for k in stages.STOP_KEYS}
    assert stop["stopped_by"] == "max_epochs" and stop["epochs"] == 4 and stop["steps"] == 4 * n_batches
    assert stop["wall_seconds"] > 0
    assert json.loads((out / "metrics.json").read_text())["stopped_by"] == "max_epochs"
    assert read_model_file(out / "model.pt")["provenance"]["valid_metrics"]["steps"] == 4 * n_batches


def test_killed_run_resumes_across_the_stage_two_switch(emt_dataset, tmp_path):
    """Killed as epoch 2 starts (epoch 1 checkpointed), stage two from epoch 2: the switch happens in the
    resumed session; everything (the warmed-up EMA's average and count included) equals the
    uninterrupted run bitwise."""
    extra = [f"training.{k}={v}" for k, v in STAGE_TWO.items()] + ["training.ema_warmup=true"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert main(argv(*emt_dataset, whole, *extra)) == 0
    env = {**os.environ, "FFPT_TEST_KILL_AT_EPOCH": "2"}
    proc = subprocess.run([sys.executable, "-c", KILLED_TRAIN, *argv(*emt_dataset, killed, *extra)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert main(argv(*emt_dataset, killed, *extra)) == 0
    for name in ("last.ckpt", "best.ckpt"):
        a = torch.load(whole / "checkpoints" / name, weights_only=False)
        b = torch.load(killed / "checkpoints" / name, weights_only=False)
        assert a["epoch"] == b["epoch"] and a["global_step"] == b["global_step"]
        for entry in ("state_dict", "averaging_state", "optimizer_states", "lr_schedulers"):
            ta, tb = _tensors(a[entry]), _tensors(b[entry])
            assert ta.keys() == tb.keys()
            for key, va in ta.items():
                assert torch.equal(va, tb[key]) if isinstance(va, torch.Tensor) else va == tb[key], f"{name} {entry}{key}"
    last = torch.load(killed / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["epoch"] == MAX_EPOCHS - 1
    assert last["optimizer_states"][0]["param_groups"][0]["lr"] == STAGE_TWO["swa_lr"]
    metrics = json.loads((killed / "metrics.json").read_text())
    assert metrics["epochs"] == MAX_EPOCHS and metrics["stopped_by"] == "max_epochs"
    assert metrics["steps"] == json.loads((whole / "metrics.json").read_text())["steps"]


def test_early_stopping_and_time_guard_are_recorded(emt_dataset, tmp_path):
    # lr 0 and no EMA: the validation loss never improves, so patience 1 stops after the second epoch
    early = train(config(*emt_dataset, tmp_path / "early", lr=0.0, ema_decay=0.0, early_stopping_patience=1,
                         max_epochs=20))
    assert early.metrics["stopped_by"] == "early_stopping" and early.metrics["epochs"] == 2
    timed = train(config(*emt_dataset, tmp_path / "timed", max_epochs=50, max_time_minutes=1e-4))
    assert timed.metrics["stopped_by"] == "max_time" and timed.metrics["epochs"] < 50


def test_mace_weight_decay_groups_and_amsgrad():
    pytest.importorskip("mace")
    model = build_model("mace", elements=[1, 6, 8], cutoff=4.0, n_features=4, n_layers=2, n_basis=4,
                        avg_num_neighbors=4.0)
    module = PotentialModule(model, weight_decay=0.1, optimizer="adam", amsgrad=True, weight_decay_groups="mace")
    decayed, kept = module.parameter_groups()
    names = {id(p): n for n, p in model.named_parameters()}
    decayed_names = {names[id(p)] for p in decayed["params"]}
    kept_names = {names[id(p)] for p in kept["params"]}
    assert (decayed["weight_decay"], kept["weight_decay"]) == (0.1, 0.0)
    assert {"interactions.0.linear.weight", "interactions.1.linear.weight"} <= decayed_names
    assert any(n.startswith("products.") for n in decayed_names)
    assert not [n for n in decayed_names if n.startswith(("embedding", "head", "interactions.0.conv_tp_weights"))]
    assert len(decayed_names) + len(kept_names) == len(list(model.parameters()))
    optimizer = module.configure_optimizers()["optimizer"]
    assert type(optimizer) is torch.optim.Adam and optimizer.defaults["amsgrad"] is True


def test_mace_groups_need_a_mace_model():
    model = build_model("newtonnet", elements=[1, 8], cutoff=4.0, n_features=4, n_layers=1, n_basis=4)
    with pytest.raises(ConfigError, match="weight_decay_groups"):
        PotentialModule(model, weight_decay=0.1, weight_decay_groups="mace").parameter_groups()


def test_stage_two_settings_need_their_start():
    with pytest.raises(ValueError, match="swa_start"):
        parse_config(TrainConfig, {"data": {"train": "x.extxyz"}, "training": {"swa_lr": 1e-3}})
    with pytest.raises(ValueError, match="swa_start"):
        parse_config(TrainConfig, {"data": {"train": "x.extxyz"}, "training": {"max_epochs": 5, "swa_start": 5}})


def test_warm_ema_follows_torch_ema():
    """ema_warmup: the average of Lightning's AveragedModel follows torch_ema's (MACE's) schedule;
    without it the average still holds much of the first weights after 20 steps."""
    torch_ema = pytest.importorskip("torch_ema")
    from torch.optim.swa_utils import AveragedModel, get_ema_avg_fn

    from ffpt.training.module import ema

    torch.manual_seed(0)
    steps = [torch.randn(1, 5, dtype=torch.float64) for _ in range(20)]
    net = torch.nn.Linear(5, 1, bias=False).double()
    net.weight.data.copy_(steps[0])
    reference = torch_ema.ExponentialMovingAverage(net.parameters(), decay=0.99)
    warm = AveragedModel(net, avg_fn=ema(0.99, warmup=True))
    plain = AveragedModel(net, avg_fn=ema(0.99))
    for values in steps:  # the first step does not move (torch_ema starts from the initial weights)
        net.weight.data.copy_(values)
        reference.update(net.parameters())
        warm.update_parameters(net)
        plain.update_parameters(net)
    shadow = reference.shadow_params[0]
    assert torch.allclose(warm.module.weight, shadow, rtol=0, atol=1e-12)
    assert (plain.module.weight - shadow).abs().max() > 0.1
    lightning = AveragedModel(net, avg_fn=get_ema_avg_fn(0.99))
    for values in steps:
        net.weight.data.copy_(values)
        lightning.update_parameters(net)
    assert torch.allclose(plain.module.weight, lightning.module.weight, rtol=0, atol=1e-14)  # Lightning's EMA


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")  # e3nn's TorchScript chatter
def test_the_average_keeps_integer_buffers():
    """MACE's cutoff-envelope order (int) and atomic numbers (long) are the model's, not averaged and
    truncated (they were: order 5 became 4, so the validated and saved average was another function),
    while the parameters are averaged."""
    from torch.optim.swa_utils import AveragedModel

    from ffpt.models import build_model
    from ffpt.training.module import ema

    torch.manual_seed(0)
    model = build_model("mace", elements=[1, 6, 8], cutoff=4.0, n_features=4, n_layers=1, max_ell=1,
                        correlation=1, radial_mlp=[8]).double()
    integers = {n: b.clone() for n, b in model.named_buffers() if not b.is_floating_point()}
    assert integers["radial.cutoff_fn.p"].item() == 5
    for warmup in (True, False):
        average = AveragedModel(model, use_buffers=True, avg_fn=ema(0.99, warmup=warmup))
        for _ in range(60):
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(0.01 * torch.randn_like(p))
            average.update_parameters(model)
        kept = dict(average.module.named_buffers())
        assert all(torch.equal(kept[n], b) for n, b in integers.items())
        first = next(model.parameters())
        assert not torch.equal(next(average.module.parameters()), first)


def test_committee_stopping_sums_up_its_members():
    from ffpt.training.committee import committee_stopping

    members = [{"stopped_by": "max_epochs", "epochs": 40, "steps": 400, "wall_seconds": 10.0},
               {"stopped_by": "early_stopping", "epochs": 25, "steps": 250, "wall_seconds": 6.5}]
    assert committee_stopping(members) == {"stopped_by": "early_stopping+max_epochs", "epochs": 40, "steps": 400,
                                           "wall_seconds": 16.5}
    assert committee_stopping(members[:1])["stopped_by"] == "max_epochs"

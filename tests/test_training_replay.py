"""Replay fine-tuning: force-field frames mixed into every epoch at the stated fraction, drawn from
(seed, epoch); their energies left out of the loss by default; a resumed replay run repeats the
uninterrupted one."""

import csv

import pytest
import torch

from ffpt.data import write_frames
from ffpt.models import build_model, load_model
from ffpt.models.graph import collate
from ffpt.models.model_file import save_model
from ffpt.training import ConfigError, TrainConfig, parse_config, train
from ffpt.training.dataset import EpochShuffle, GraphDataset, ReplayMix, replay_count
from ffpt.training.module import loss_terms
from ffpt.training.stages import _shift_energies
from conftest import emt_frames

TINY = {"n_features": 8, "n_layers": 1, "n_basis": 4, "cutoff": 4.0}


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.75])
def test_replay_mixes_the_stated_fraction_of_ff_frames_per_epoch(fraction):
    main = [("dft", k) for k in range(30)]
    pool = [("ff", k) for k in range(200)]
    mix = ReplayMix(main, pool, replay_count(len(main), fraction), seed=3)
    sampler = EpochShuffle(mix, seed=3)
    drawn = []
    for epoch in range(3):
        mix.set_epoch(epoch)
        sampler.set_epoch(epoch)
        samples = [mix[k] for k in sampler]
        ff = [s for s in samples if s[0] == "ff"]
        assert len(samples) == len(main) + len(ff)
        assert sorted(s for s in samples if s[0] == "dft") == main  # every fine-tuning frame, once
        assert len(set(ff)) == len(ff)  # no replay frame twice while the pool lasts
        assert abs(len(ff) / len(samples) - fraction) <= 1 / len(samples)
        drawn.append(sorted(ff))
    assert drawn[0] != drawn[1]  # a fresh draw every epoch ...
    mix.set_epoch(1)
    assert sorted(mix[k] for k in range(len(main), len(mix))) == drawn[1]  # ... a function of (seed, epoch)


def test_small_pool_repeats_only_once_used_up():
    mix = ReplayMix(list(range(30)), ["a", "b", "c"], replay_count(30, 0.2), seed=0)
    ff = [mix[k] for k in range(30, len(mix))]
    assert len(ff) == 8 and set(ff) == {"a", "b", "c"}


def test_ff_frames_add_no_energy_loss_when_energies_are_left_out():
    frames = emt_frames(n=6)
    model = build_model("newtonnet", elements=[1, 6, 8], **TINY)
    graphs = GraphDataset(frames, model.elements, model.cutoff).graphs
    for g in graphs[3:]:  # replayed force-field frames
        g.energy_weight = torch.zeros(1)
    batch = collate(graphs)
    base = loss_terms(model, batch, training=False)
    shifted = collate(graphs)
    shifted.energy = batch.energy.clone()
    shifted.energy[3:] += 100.0  # another energy zero
    moved = loss_terms(model, shifted, training=False)
    assert moved["energy_loss"].item() == pytest.approx(base["energy_loss"].item(), rel=1e-6)
    assert moved["energy_mae"].item() == pytest.approx(base["energy_mae"].item(), rel=1e-6)
    only_dft = loss_terms(model, collate(graphs[:3]), training=False)
    assert base["energy_loss"].item() == pytest.approx(only_dft["energy_loss"].item(), rel=1e-5)
    shifted.energy[:3] += 1.0  # the fine-tuning frames' energies do count
    assert loss_terms(model, shifted, training=False)["energy_loss"].item() > base["energy_loss"].item() + 0.02
    pushed = collate(graphs)
    pushed.forces = batch.forces.clone()
    pushed.forces[batch.batch >= 3] += 1.0  # replay forces do count
    assert loss_terms(model, pushed, training=False)["forces_loss"].item() > base["forces_loss"].item() + 0.1


@pytest.fixture(scope="module")
def replay_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("replay")
    model = build_model("newtonnet", elements=[1, 6, 8], **TINY)
    init = save_model(model, root / "init.pt")
    ff = emt_frames(n=20, seed=5)
    for atoms in ff:
        atoms.info["REF_energy"] += 50.0  # a force field's own energy zero
    return {
        "train": write_frames(root / "train.extxyz", emt_frames(n=8, seed=0)),
        "valid": write_frames(root / "valid.extxyz", emt_frames(n=3, seed=1)),
        "ff": write_frames(root / "ff.extxyz", ff),
        "init": init,
    }


def replay_config(files, out, **overrides):
    data = {
        "data": {"train": str(files["train"]), "valid": str(files["valid"])},
        "model": TINY,
        "training": {"stage": "finetune", "max_epochs": 2, "batch_size": 4, "lr": 1e-2, "ema_decay": 0.5,
                     "progress_bar": False, "seed": 7},
        "finetune": {"init": str(files["init"]), "replay": {"frames": str(files["ff"]), "fraction": 0.5}},
        "out": str(out),
    }
    for key, value in overrides.items():
        section, name = key.split(".")
        data[section][name] = value
    return parse_config(TrainConfig, data)


def test_replay_finetuning_runs_and_resumes_to_the_uninterrupted_weights(replay_files, tmp_path, monkeypatch):
    epochs = []
    set_epoch = ReplayMix.set_epoch

    def recording(self, epoch):
        epochs.append(epoch)
        set_epoch(self, epoch)

    monkeypatch.setattr(ReplayMix, "set_epoch", recording)
    whole = train(replay_config(replay_files, tmp_path / "whole"))
    assert epochs == [0, 0, 1]  # at construction, then before each training epoch
    assert whole.metrics["forces_mae_mev_per_a"] > 0
    with open(tmp_path / "whole" / "logs" / "version_0" / "metrics.csv") as handle:
        assert {row["epoch"] for row in csv.DictReader(handle)} == {"0", "1"}
    train(replay_config(replay_files, tmp_path / "split", **{"training.max_epochs": 1}))
    epochs.clear()
    resumed = train(replay_config(replay_files, tmp_path / "split"))  # resumes epoch 1 from last.ckpt
    assert epochs == [0, 1]
    a, b = load_model(whole.model_path).state_dict(), load_model(resumed.model_path).state_dict()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_replay_is_a_finetune_option(replay_files, tmp_path):
    with pytest.raises(ConfigError, match="finetune.replay"):
        train(replay_config(replay_files, tmp_path / "x", **{"training.stage": "scratch"}))


def test_replay_energies_kept_are_moved_onto_the_finetuning_zero():
    dft = emt_frames(n=9, seed=2)
    ff = [a.copy() for a in dft]
    offsets = {1: 3.0, 6: -2.0, 8: 1.5}  # eV per atom of each element: a force field's own zero
    for atoms in ff:
        atoms.info["REF_energy"] += sum(offsets[int(z)] for z in atoms.numbers)
    _shift_energies(ff, dft, [1, 6, 8], "ff.extxyz")
    for a, b in zip(ff, dft):
        assert a.info["REF_energy"] == pytest.approx(b.info["REF_energy"], abs=1e-6)
    with pytest.raises(ConfigError, match="ff.extxyz"):  # no fine-tuning frame holds carbon
        _shift_energies(emt_frames(n=3), [a for a in dft if 6 not in a.numbers], [1, 6, 8], "ff.extxyz")

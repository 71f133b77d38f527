"""Training on two CPU processes (DDP, gloo): it trains, only global rank zero writes the run's files,
each rank draws its shard of a shuffle that is a function of (seed, epoch), and the run resumes."""

import csv
import json
import math
import subprocess
import sys

import pytest
import torch
from torch.utils.data import DistributedSampler

from ffpt.data import read_frames

SEED = 3  # not Lightning's default sampler seed (0), so the test sees that training.seed reaches the shards
BATCH = 8

# `ffpt train` with two probes, recorded to $OUT/probe.jsonl from every process (rank from Lightning's
# launcher, which re-runs this script with LOCAL_RANK set): every file the run writes (the
# run record, model and metrics through ffpt, checkpoints through Lightning's checkpoint IO) and the
# frame indices the rank's sampler draws in each epoch.
PROBED_TRAIN = r"""
import json, os, sys
from ffpt.training.checkpoint_io import AtomicCheckpointIO as TorchCheckpointIO  # ffpt's checkpoint IO
from lightning.pytorch.callbacks import Callback
from ffpt.cli import main
from ffpt.training import run_folder, stages

RANK = int(os.environ.get("LOCAL_RANK", 0))
PROBE = sys.argv[sys.argv.index("--out") + 1] + "-probe.jsonl"

def note(**entry):
    with open(PROBE, "a") as f:
        f.write(json.dumps({"rank": RANK, **entry}) + "\n")

def writer(module, name, at):  # at: the position of the path argument
    write = getattr(module, name)
    def probed(*args, **kwargs):
        note(write=os.path.basename(str(args[at])))
        return write(*args, **kwargs)
    setattr(module, name, probed)

for module, name, at in [(run_folder, "save_config", 1), (run_folder, "atomic_write_json", 0),
                         (stages, "save_model", 1), (stages, "atomic_write_json", 0)]:
    writer(module, name, at)
save_checkpoint = TorchCheckpointIO.save_checkpoint
def probed_checkpoint(self, checkpoint, path, storage_options=None):
    note(write=os.path.basename(str(path)))
    return save_checkpoint(self, checkpoint, path, storage_options)
TorchCheckpointIO.save_checkpoint = probed_checkpoint

class Shards(Callback):
    def on_train_epoch_start(self, trainer, pl_module):
        sampler = trainer.train_dataloader.sampler
        note(epoch=trainer.current_epoch, sampler=type(sampler).__name__, seed=getattr(sampler, "seed", None),
             indices=list(iter(sampler)))

make = stages._callbacks
stages._callbacks = lambda *args: make(*args) + [Shards()]
sys.exit(main(sys.argv[1:]))
"""


def ddp_train(script, train_path, valid_path, out, max_epochs):
    args = [sys.executable, str(script), "train", "model.n_features=8", "model.n_layers=1", "model.n_basis=4",
            "model.cutoff=4.0", "training.progress_bar=false", f"training.batch_size={BATCH}",
            "training.lr=0.05", "training.ema_decay=0.5", f"training.seed={SEED}",
            "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp",
            "--train", str(train_path), "--valid", str(valid_path), "--max-epochs", str(max_epochs),
            "--out", str(out)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    probe = out.parent / f"{out.name}-probe.jsonl"
    entries = [json.loads(line) for line in probe.read_text().splitlines()]
    probe.unlink()
    return proc.stdout, entries


def expected_shard(n_frames, rank, epoch):
    sampler = DistributedSampler(range(n_frames), num_replicas=2, rank=rank, shuffle=True, seed=SEED)
    sampler.set_epoch(epoch)
    return list(sampler)


def check_shards(entries, n_train, epochs):
    """Each rank draws, each epoch, its half of a permutation that depends on (seed, epoch) only."""
    shards = {(e["rank"], e["epoch"]): e for e in entries if "epoch" in e}
    assert sorted(shards) == [(rank, epoch) for rank in (0, 1) for epoch in epochs]
    for epoch in epochs:
        halves = [shards[rank, epoch] for rank in (0, 1)]
        assert all(h["sampler"] == "DistributedSampler" and h["seed"] == SEED for h in halves)
        assert [h["indices"] for h in halves] == [expected_shard(n_train, rank, epoch) for rank in (0, 1)]
        assert sorted(halves[0]["indices"] + halves[1]["indices"]) == list(range(n_train))  # disjoint, complete
    return shards


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_trains_writes_once_and_resumes(emt_dataset, tmp_path):
    script = tmp_path / "probed_train.py"
    script.write_text(PROBED_TRAIN)
    out = tmp_path / "run"
    n_train = len(read_frames(emt_dataset[0]))
    assert n_train % 2 == 0  # the two shards split it exactly
    steps_per_epoch = math.ceil(n_train / 2 / BATCH)  # each rank trains on half the frames

    stdout, entries = ddp_train(script, *emt_dataset, out, max_epochs=1)
    # one process prints; the last line is the model file
    assert stdout.count("validation:") == 1 and stdout.strip().splitlines()[-1] == str(out / "model.pt")
    # every file is written by rank zero, once
    writes = [e["write"] for e in entries if "write" in e]
    assert {e["rank"] for e in entries if "write" in e} == {0}
    assert sorted(writes) == sorted(["config.yaml", "inputs_sha256.json", "best.ckpt", "last.ckpt", "model.pt",
                                     "metrics.json"])
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["checkpoints", "config.yaml", "inputs_sha256.json", "logs", "metrics.json", "model.pt"])
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert sorted(p.name for p in (out / "logs").iterdir()) == ["version_0"]
    first_shards = check_shards(entries, n_train, epochs=[0])

    # it trains: finite validation errors, from a model that two ranks trained on half the batches each
    metrics = json.loads((out / "metrics.json").read_text())
    assert all(math.isfinite(metrics[k]) for k in ("energy_mae_mev_per_atom", "forces_mae_mev_per_a"))
    with open(out / "logs" / "version_0" / "metrics.csv") as f:
        val_losses = [float(row["val_loss"]) for row in csv.DictReader(f) if row["val_loss"]]
    assert len(val_losses) == 1 and math.isfinite(val_losses[0])
    first = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
    assert first["epoch"] == 0 and first["global_step"] == steps_per_epoch

    # one more epoch resumes the run under DDP: the checkpoint's epoch and step go on, the shards of
    # the new epoch are those of (seed, 1), the weights move, and rank zero alone writes again
    stdout, entries = ddp_train(script, *emt_dataset, out, max_epochs=2)
    assert stdout.count("validation:") == 1
    writes = [e["write"] for e in entries if "write" in e]
    assert {e["rank"] for e in entries if "write" in e} == {0}
    assert writes.count("config.yaml") == writes.count("model.pt") == writes.count("last.ckpt") == 1
    shards = check_shards(entries, n_train, epochs=[1])
    assert shards[0, 1]["indices"] != first_shards[0, 0]["indices"]  # reshuffled each epoch
    second = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
    assert second["epoch"] == 1 and second["global_step"] == 2 * steps_per_epoch
    changed = [k for k, v in first["state_dict"].items() if not torch.equal(v, second["state_dict"][k])]
    assert len(changed) > len(first["state_dict"]) // 2
    assert sorted(p.name for p in (out / "logs").iterdir()) == ["version_0", "version_1"]
    resumed = (out / "logs" / "version_1" / "metrics.csv").read_text().splitlines()
    assert {int(line.split(",")[0]) for line in resumed[1:]} == {1}  # only the new epoch


def test_strategy_is_checked_and_plain_ddp_tolerates_unused_parameters(tmp_path):
    from ffpt.config import ConfigError
    from ffpt.training import TrainConfig, parse_config
    from ffpt.training.stages import _strategy

    data = {"train": str(tmp_path / "train.extxyz")}
    assert parse_config(TrainConfig, {"data": data}).training.strategy == "auto"
    with pytest.raises(ConfigError, match=r"training\.strategy.*unknown strategy 'dpp'.*ddp_fork"):
        parse_config(TrainConfig, {"data": data, "training": {"strategy": "dpp"}})
    with pytest.raises(ConfigError, match=r"training\.strategy.*'ddp_spawn' is not supported.*use ddp"):
        parse_config(TrainConfig, {"data": data, "training": {"strategy": "ddp_spawn"}})
    # NewtonNet's last vector gate gets no gradient: plain DDP launchers search for such parameters
    assert _strategy("ddp") == "ddp_find_unused_parameters_true"
    assert _strategy("ddp_fork") == "ddp_fork_find_unused_parameters_true"
    assert _strategy("ddp_find_unused_parameters_false") == "ddp_find_unused_parameters_false"
    assert _strategy("auto") == "auto" and _strategy("fsdp") == "fsdp"

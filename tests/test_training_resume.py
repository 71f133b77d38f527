"""A training folder holds one run: a killed run resumes to the weights of the uninterrupted one,
a folder of another run (config or data) is refused, and damaged checkpoints or too few frames are
user errors (exit status 2, one line naming the file), not tracebacks."""

import os
import shutil
import signal
import subprocess
import sys

import pytest
import torch

from ffpt.cli import main
from ffpt.data import read_frames, write_frames
from ffpt.models import load_model
from ffpt.training import TrainConfig, parse_config
from ffpt.training.run_folder import run_record

MAX_EPOCHS = 5
KILL_AT_EPOCH = 2  # 0-based: killed as the third epoch starts, the second one checkpointed

# Runs `ffpt train` with one more callback that SIGKILLs the process as epoch KILL_AT_EPOCH starts,
# after the checkpoints of the epoch before are written: a real kill at a known point.
KILLED_TRAIN = r"""
import os, signal, sys
from lightning.pytorch.callbacks import Callback
from ffpt.cli import main
from ffpt.training import stages

class Kill(Callback):
    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == int(os.environ["FFPT_TEST_KILL_AT_EPOCH"]):
            os.kill(os.getpid(), signal.SIGKILL)

make = stages._callbacks
stages._callbacks = lambda *args: make(*args) + [Kill()]
sys.exit(main(sys.argv[1:]))
"""


def argv(train_path, valid_path, out, *extra):
    # lr_patience=0: the plateau scheduler halves the learning rate during these few epochs, so its
    # state has to survive the kill too
    return ["train", "model.n_features=8", "model.n_layers=1", "model.n_basis=4", "model.cutoff=4.0",
            "training.progress_bar=false", "training.batch_size=8", "training.lr=0.05",
            "training.ema_decay=0.5", "training.lr_patience=0", *extra,
            "--train", str(train_path), "--valid", str(valid_path),
            "--max-epochs", str(MAX_EPOCHS), "--out", str(out)]


@pytest.fixture(scope="module")
def uninterrupted(emt_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("resume") / "uninterrupted"
    assert main(argv(*emt_dataset, out)) == 0
    return out


def _tensors(value, prefix=""):
    """Every tensor and plain value in a nested checkpoint entry, by path."""
    if isinstance(value, dict):
        items = {}
        for key, child in value.items():
            items.update(_tensors(child, f"{prefix}/{key}"))
        return items
    if isinstance(value, (list, tuple)):
        items = {}
        for k, child in enumerate(value):
            items.update(_tensors(child, f"{prefix}/{k}"))
        return items
    return {prefix: value}


def test_killed_run_resumes_to_the_uninterrupted_weights(emt_dataset, uninterrupted, tmp_path):
    """Real kill: ``ffpt train`` in a subprocess SIGKILLs itself as epoch KILL_AT_EPOCH starts, the
    epoch before checkpointed; the same command then resumes it. Final weights, EMA, optimizer and scheduler
    states equal the uninterrupted run's bitwise (same machine, CPU, deterministic kernels)."""
    out = tmp_path / "killed"
    env = {**os.environ, "FFPT_TEST_KILL_AT_EPOCH": str(KILL_AT_EPOCH)}
    proc = subprocess.run([sys.executable, "-c", KILLED_TRAIN, *argv(*emt_dataset, out)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    last = out / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["epoch"] == KILL_AT_EPOCH - 1
    assert not (out / "model.pt").exists()

    assert main(argv(*emt_dataset, out)) == 0  # the same command resumes

    a = torch.load(uninterrupted / "checkpoints" / "last.ckpt", weights_only=False)
    b = torch.load(last, weights_only=False)
    assert a["epoch"] == b["epoch"] == MAX_EPOCHS - 1
    assert a["global_step"] == b["global_step"]
    # the learning rate did drop, so the scheduler state mattered
    assert a["optimizer_states"][0]["param_groups"][0]["lr"] < 0.05
    compared = 0
    for entry in ("state_dict", "current_model_state", "averaging_state", "optimizer_states", "lr_schedulers"):
        ta, tb = _tensors(a[entry]), _tensors(b[entry])
        assert ta.keys() == tb.keys(), entry
        for key, va in ta.items():
            if isinstance(va, torch.Tensor):
                assert torch.equal(va, tb[key]), f"{entry}{key}"
                compared += 1
            else:
                assert va == tb[key], f"{entry}{key}"
    assert compared > 20
    final_a = load_model(uninterrupted / "model.pt").state_dict()
    final_b = load_model(out / "model.pt").state_dict()
    assert final_a.keys() == final_b.keys()
    for key in final_a:
        assert torch.equal(final_a[key], final_b[key]), key

    # more epochs (extend a finished run) is a resume, not another run
    extended = argv(*emt_dataset, out)
    extended[extended.index("--max-epochs") + 1] = str(MAX_EPOCHS + 1)
    assert main(extended) == 0
    resumed = (out / "logs" / "version_2" / "metrics.csv").read_text().splitlines()
    assert {int(line.split(",")[0]) for line in resumed[1:]} == {MAX_EPOCHS}  # one more epoch, 0-based


def test_folder_of_another_run_is_refused(emt_dataset, uninterrupted, tmp_path, capsys):
    config_before = (uninterrupted / "config.yaml").read_text()
    # another learning rate: refused, naming the folder and the key, and the folder is left as it was
    assert main(argv(*emt_dataset, uninterrupted, "training.lr=0.02")) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert str(uninterrupted) in err and "training.lr: 0.05 -> 0.02" in err
    assert (uninterrupted / "config.yaml").read_text() == config_before
    # a moved folder: Lightning would forget which checkpoint is best, so it is not resumed either
    moved = shutil.copytree(uninterrupted, tmp_path / "moved")
    assert main(argv(*emt_dataset, moved)) == 2
    err = capsys.readouterr().err
    assert f"checkpoint written in {uninterrupted}, a moved folder" in err and "training.lr" not in err


def test_changed_data_file_is_refused(emt_dataset, tmp_path, capsys):
    """Same path, other frames: the checkpoint's record of the data's SHA-256 no longer matches."""
    train_path = shutil.copy(emt_dataset[0], tmp_path / "train.extxyz")
    out = tmp_path / "run"
    args = argv(train_path, emt_dataset[1], out)
    config = parse_config(TrainConfig, {"data": {"train": str(train_path), "valid": str(emt_dataset[1])},
                                        "out": str(out)})
    (out / "checkpoints").mkdir(parents=True)  # a checkpoint recording this data (no training needed)
    torch.save({"epoch": 0, "state_dict": {}, "ffpt_run": run_record(config)}, out / "checkpoints" / "last.ckpt")
    write_frames(train_path, read_frames(train_path)[:-1])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "content of data.train (sha256) differs" in err and "Traceback" not in err


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_damaged_checkpoint_names_the_file(emt_dataset, uninterrupted, tmp_path, capsys, damage):
    out = tmp_path / damage
    last = out / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    data = (uninterrupted / "checkpoints" / "last.ckpt").read_bytes()
    last.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not a checkpoint\n" * 10)
    assert main(argv(*emt_dataset, out)) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert str(last) in err and "delete it or use a new --out" in err


def test_too_few_frames_name_the_file(emt_dataset, tmp_path, capsys):
    frames = read_frames(emt_dataset[0])
    one = write_frames(tmp_path / "one.extxyz", frames[:1])
    two = write_frames(tmp_path / "two.extxyz", frames[:2])
    empty = tmp_path / "empty.extxyz"
    empty.write_text("")
    cases = [
        ([str(one), "--valid", str(two)], [str(one), "1 training frame(s)"]),  # one-frame training set
        ([str(two)], [str(two), "2 frame(s)", "leaves 1 for training"]),  # split leaves one frame
        ([str(one)], [str(one), "1 frame(s)", "leaves 0 for training"]),  # split leaves nothing
        ([str(empty), "--valid", str(two)], [str(empty)]),  # empty training file
        ([str(two), "--valid", str(empty)], [str(empty)]),  # empty validation file
    ]
    for data, expected in cases:
        assert main(["train", "training.progress_bar=false", "--out", str(tmp_path / "out"),
                     "--train", *data]) == 2, data
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        for text in expected:
            assert text in err, (text, err)
    assert not (tmp_path / "out").exists()  # refused before the folder was made

"""benchmarks/carry_stages.py: finished stages carried out of a run folder and back are found up to date
(not rerun), without their checkpoints; the exported packages are left out and not made again; killed stages
travel with their progress (label cache, checkpoints) and resume from it."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ffpt.workflows.stages import RunDirectory

ROOT = Path(__file__).resolve().parents[1]


def carry(*args):
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "carry_stages.py"), *map(str, args)], check=True,
                   capture_output=True, timeout=60)


def stages(run: Path, calls: list[str]):
    """A toy chain as an experiment's: data -> training (a model file and a checkpoint) -> MD stability
    of its export, keyed by the model file and made only when the MD runs."""
    directory = RunDirectory(run, echo=lambda line: None)

    def write(folder: Path, name: str, text: str) -> str:
        calls.append(folder.name)
        (folder / "checkpoints").mkdir(exist_ok=True)
        (folder / "checkpoints" / "last.ckpt").write_text("resume state")
        (folder / name).write_text(text)
        return str(folder / name)

    data = directory.stage("abinitio", {"n": 3}, lambda d: {"frames": write(d, "pool.extxyz", "frames")})
    model = directory.stage("scratch_n3_s0", {"data": data["frames"]}, lambda d: {"model": write(d, "model.pt", "weights")})

    def package() -> str:
        return directory.stage("export_scratch_n3_s0", {"model": model["model"]},
                               lambda d: {"package": write(d, "model.pt2", "compiled")})["package"]

    directory.stage("stability_scratch_n3_s0", {"model": {"exported": {"model": model["model"]}}},
                    lambda d: {"runs": [write(d, "x", package())]})
    return directory.log


def test_carried_training_stages_are_up_to_date_after_the_trip(tmp_path):
    run, carried = tmp_path / "run", tmp_path / "carried"
    first: list[str] = []
    stages(run, first)
    carry("pack", run, carried)
    assert first == ["abinitio", "scratch_n3_s0", "export_scratch_n3_s0", "stability_scratch_n3_s0"]
    assert sorted(p.name for p in carried.iterdir()) == ["abinitio", "scratch_n3_s0", "stability_scratch_n3_s0"]
    assert not list(carried.rglob("checkpoints")) and (carried / "scratch_n3_s0" / "model.pt").read_text() == "weights"
    shutil.rmtree(run)  # a new session: the run folder is gone
    carry("unpack", carried, run)
    again: list[str] = []
    log = stages(run, again)
    assert log.status("abinitio") == log.status("scratch_n3_s0") == log.status("stability_scratch_n3_s0") == "skipped"
    assert again == [] and not (run / "export_scratch_n3_s0").exists()  # the package is not needed
    assert json.loads((run / "scratch_n3_s0" / "stage.json").read_text())["outputs"]["model"] == str(run / "scratch_n3_s0" / "model.pt")


def test_a_killed_labelling_stage_is_carried_with_its_label_cache_and_resumes(tmp_path):
    """Labels done before a kill travel with the run (PySCF minutes each); the stage resumes with them and
    labels only the rest."""
    run, carried = tmp_path / "run", tmp_path / "carried"
    frames = ["a", "b", "c"]

    def label(folder: Path, labelled: list[str], kill_after: int | None = None) -> dict:
        cache = folder / "label_cache"
        cache.mkdir(exist_ok=True)
        for k, frame in enumerate(frames):
            if kill_after is not None and k == kill_after:
                raise KeyboardInterrupt  # killed mid-way
            if not (cache / frame).exists():
                labelled.append(frame)
                (cache / frame).write_text(f"label of {frame}")
        return {"labels": sorted(p.read_text() for p in cache.iterdir())}

    first: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        RunDirectory(run, echo=lambda line: None).stage("abinitio", {"n": 3}, lambda d: label(d, first, kill_after=2))
    assert first == ["a", "b"]
    carry("pack", run, carried)
    assert sorted(p.name for p in (carried / "abinitio" / "label_cache").iterdir()) == ["a", "b"]
    shutil.rmtree(run)
    carry("unpack", carried, run)
    again: list[str] = []
    directory = RunDirectory(run, echo=lambda line: None)
    outputs = directory.stage("abinitio", {"n": 3}, lambda d: label(d, again))
    assert directory.log.status("abinitio") == "resumed" and again == ["c"]
    assert outputs["labels"] == ["label of a", "label of b", "label of c"]


def test_a_killed_training_stage_is_carried_with_its_checkpoints_and_resumes_from_them(tmp_path):
    """A training run killed at the session's end (mace_run_train's checkpoints in a folder of its own inside
    the stage) travels with its checkpoints and goes on from the last one, not from epoch 0."""
    run, carried = tmp_path / "run", tmp_path / "carried"

    def train(folder: Path, epochs_run: list[int], kill_at: int | None = None) -> dict:
        checkpoints = folder / "mace_cli" / "checkpoints"
        checkpoints.mkdir(parents=True, exist_ok=True)
        (folder / "logs").mkdir(exist_ok=True)
        (folder / "logs" / "train.log").write_text("log")
        start = int((checkpoints / "latest.pt").read_text()) if (checkpoints / "latest.pt").exists() else 0
        for epoch in range(start, 5):
            if epoch == kill_at:
                raise KeyboardInterrupt
            epochs_run.append(epoch)
            (checkpoints / "latest.pt").write_text(str(epoch + 1))
        (folder / "model.pt").write_text("weights")
        return {"model": str(folder / "model.pt")}

    first: list[int] = []
    with pytest.raises(KeyboardInterrupt):
        RunDirectory(run, echo=lambda line: None).stage("mace-cli_n3_s0", {"n": 3}, lambda d: train(d, first, kill_at=3))
    RunDirectory(run, echo=lambda line: None).stage("abinitio", {"n": 3}, lambda d: {})
    (run / "export_mace-cli_n3_s0" / "checkpoints").mkdir(parents=True)  # a killed export is not carried
    (run / "export_mace-cli_n3_s0" / "inputs.json").write_text("{}")
    carry("pack", run, carried)
    assert sorted(p.name for p in carried.iterdir()) == ["abinitio", "mace-cli_n3_s0"]
    assert (carried / "mace-cli_n3_s0" / "mace_cli" / "checkpoints" / "latest.pt").read_text() == "3"
    assert not (carried / "mace-cli_n3_s0" / "logs").exists()
    shutil.rmtree(run)
    carry("unpack", carried, run)
    again: list[int] = []
    directory = RunDirectory(run, echo=lambda line: None)
    directory.stage("mace-cli_n3_s0", {"n": 3}, lambda d: train(d, again))
    assert directory.log.status("mace-cli_n3_s0") == "resumed" and first == [0, 1, 2] and again == [3, 4]


def test_a_killed_md_stage_is_carried_with_its_runs_checkpoints(tmp_path):
    """MD killed mid-way (each run's checkpoint.json, as ffpt md writes them) goes on from there."""
    run, carried = tmp_path / "run", tmp_path / "carried"

    def md(folder: Path, steps_run: list[tuple[int, int]], kill_at: int | None = None) -> dict:
        for seed in (0, 1):
            checkpoint = folder / f"seed_{seed}" / "checkpoint.json"
            checkpoint.parent.mkdir(exist_ok=True)
            start = json.loads(checkpoint.read_text())["step"] if checkpoint.exists() else 0
            for step in range(start, 4):
                if (seed, step) == (1, kill_at):
                    raise KeyboardInterrupt
                steps_run.append((seed, step))
                checkpoint.write_text(json.dumps({"step": step + 1}))
        return {"runs": 2}

    first: list[tuple[int, int]] = []
    with pytest.raises(KeyboardInterrupt):
        RunDirectory(run, echo=lambda line: None).stage("stability_x_n3_s0_1000K", {"T": 1000},
                                                        lambda d: md(d, first, kill_at=2))
    carry("pack", run, carried)
    assert json.loads((carried / "stability_x_n3_s0_1000K" / "seed_1" / "checkpoint.json").read_text()) == {"step": 2}
    shutil.rmtree(run)
    carry("unpack", carried, run)
    again: list[tuple[int, int]] = []
    directory = RunDirectory(run, echo=lambda line: None)
    directory.stage("stability_x_n3_s0_1000K", {"T": 1000}, lambda d: md(d, again))
    assert directory.log.status("stability_x_n3_s0_1000K") == "resumed" and again == [(1, 2), (1, 3)]

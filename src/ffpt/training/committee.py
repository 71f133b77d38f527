"""Committees: K models of one family trained side by side, whose disagreement says where they are unsure.

Member k trains like a single run (:func:`ffpt.training.stages.train`) in ``out/member_k`` with seed
``training.seed + k`` on a bootstrap resample (drawn with replacement, seeded by k) of the training
frames; all members share the validation frames. For fine-tuning, ``finetune.init`` is one pre-trained
model all members start from, or a committee file with K members (member k warm-starts from member k,
as active-learning rounds do). ``out/committee.json`` lists the members (:mod:`ffpt.models.committee`).
A committee costs K times one run; each member resumes after a kill like a single run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ffpt.config import ConfigError
from ffpt.data.io import write_frames
from ffpt.fileio import atomic_write_json
from ffpt.models.committee import COMMITTEE_FILE, is_committee_file, read_committee_file, write_committee_file
from ffpt.training.config import DataConfig, TrainConfig
from ffpt.training.stages import TrainResult, load_sets, train


def committee_stopping(member_metrics: list[dict]) -> dict:
    """How the members' training stopped, as one run's keys (:data:`ffpt.training.stages.STOP_KEYS`):
    ``stopped_by`` the members' reasons (distinct ones joined by '+'), ``epochs`` and ``steps`` the most
    of any member, ``wall_seconds`` their sum."""
    reasons = sorted({m["stopped_by"] for m in member_metrics})
    return {"stopped_by": "+".join(reasons), "epochs": max(m["epochs"] for m in member_metrics),
            "steps": max(m["steps"] for m in member_metrics),
            "wall_seconds": round(sum(m["wall_seconds"] for m in member_metrics), 3)}


def bootstrap(frames: list, seed: int) -> list:
    """A resample of ``frames`` of the same size, drawn with replacement (seeded)."""
    picks = np.random.default_rng(seed).integers(0, len(frames), size=len(frames))
    return [frames[i] for i in picks]


def member_inits(init: Path | None, size: int) -> list[Path | None]:
    """The model each of ``size`` members starts from: one model for all, or member k of a committee."""
    if init is None or not is_committee_file(init):
        return [init] * size
    members = read_committee_file(init)
    if len(members) != size:
        raise ConfigError(f"{init}: committee of {len(members)} members, cannot warm-start {size} "
                          "(key 'committee.size')")
    return members


def train_committee(config: TrainConfig) -> TrainResult:
    """Train ``config.committee.size`` members into ``config.out``; returns the committee file and the
    committee's (mean) validation errors, with each member's under ``members``."""
    from ffpt.models.inference import calculator_predictions
    from ffpt.models.loading import load_calculator
    from ffpt.observables.errors import error_table

    size, out = config.committee.size, Path(config.out)
    train_frames, valid_frames = load_sets(config)
    valid_path = write_frames(out / "valid.extxyz", valid_frames)
    inits = member_inits(config.finetune.init, size)
    paths, member_metrics = [], []
    for k in range(size):
        folder = out / f"member_{k}"
        frames = bootstrap(train_frames, config.training.seed + k) if config.committee.bootstrap else train_frames
        train_path = write_frames(folder / "train.extxyz", frames)
        member = config.model_copy(update={
            "data": DataConfig(train=train_path, valid=valid_path),
            "training": config.training.model_copy(update={"seed": config.training.seed + k}),
            "finetune": config.finetune.model_copy(update={"init": inits[k]}),
            "committee": config.committee.model_copy(update={"size": 1}),
            "out": folder,
        })
        result = train(member)
        paths.append(result.model_path)
        member_metrics.append(result.metrics)
    committee_path = write_committee_file(out / COMMITTEE_FILE, paths)
    predictions = calculator_predictions(load_calculator(paths), valid_frames)
    metrics = {**error_table(valid_frames, *predictions).as_dict(), **committee_stopping(member_metrics),
               "members": member_metrics}
    atomic_write_json(out / "metrics.json", metrics)
    return TrainResult(model_path=committee_path, metrics=metrics)

"""Metadynamics stages of reactive experiments: each arm's model from the channels' TS geometries,
``runs`` independent runs per arm and channel, one cached stage each."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class MetadRun:
    """One metadynamics run of an experiment: ``arm``'s model on ``channel``, run ``run`` (0, 1, ...)
    in stage folder ``stage``."""

    arm: str
    channel: str
    run: int
    stage: str


def metad_runs(stage, arm: str) -> list[MetadRun]:
    """The runs of ``arm`` under a ``metad`` section (:class:`~ffpt.workflows.config.MetadStageConfig`):
    ``metad/{arm}/{channel}/run{k}``; a single ``channel`` with one run keeps the stage of earlier
    versions, ``metad_{arm}``."""
    if stage.channel is not None and stage.runs == 1:
        return [MetadRun(arm, stage.channel, 0, f"metad_{arm}")]
    return [MetadRun(arm, channel, k, f"metad/{arm}/{channel}/run{k}")
            for channel in stage.channel_list for k in range(stage.runs)]


def check_metad(stage) -> None:
    """Each channel's TS geometry, CVs and walls as its runs will build them, before hours of training:
    a problem is a ConfigError naming the key and the channel."""
    from ffpt.config import ConfigError
    from ffpt.jobs.metad import prepare

    for channel in stage.channel_list:
        try:
            prepare(stage.job_config("model", channel))
        except ValueError as exc:  # UserError is one
            raise ConfigError(f"key 'metad' (channel {channel}): {exc}") from None


def metad_inputs(stage, model_path: str, run: MetadRun) -> dict:
    """The stage key of ``run``: the model, the channel, the geometry and reaction files, the channel's
    options as given and, from the second run on, its MD seed (the first run's key is that of earlier
    versions' single run)."""
    options = stage.given_options(run.channel)
    if run.run:
        options["seed"] = stage.run_seed(run.run)
    return {"model": model_path, "metad": {"channel": run.channel, **stage.model_dump(
        mode="json", include={"geometries", "reactions"}), "options": options}}


def metad_stage(stage, folder: Path, model_path: str, progress: bool, run: MetadRun, label: str | None = None) -> dict:
    """Well-tempered metadynamics of ``run`` on the channel's coordination CVs; returns the run
    summary (outcome, final species, unphysical frames, FES convergence, barriers) with the FES
    written into ``folder``, its figure titled with the arm, ``label`` (which model), the run and
    its MD seed."""
    from ffpt.jobs.metad import run_metad_job

    name = ", ".join([run.arm, *([label] if label else []),
                      f"run {run.run + 1} of {stage.runs} (MD seed {stage.run_seed(run.run)})"])
    return run_metad_job(stage.job_config(model_path, run.channel, run.run), folder, progress=progress, name=name)

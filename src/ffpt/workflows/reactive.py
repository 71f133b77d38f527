"""Metadynamics stage of reactive experiments: each arm's model from the channel's TS geometry."""

from __future__ import annotations

from pathlib import Path


def metad_stage(stage, folder: Path, model_path: str, progress: bool, arm: str | None = None) -> dict:
    """Well-tempered metadynamics on the channel's coordination CVs; returns the run summary
    (outcome, final species, unphysical frames) with the FES written into ``folder`` (its figure
    titled with ``arm``)."""
    from ffpt.jobs.metad import run_metad_job

    return run_metad_job(stage.job_config(model_path), folder, progress=progress, name=arm)

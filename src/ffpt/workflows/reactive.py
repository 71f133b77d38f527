"""Metadynamics stage of reactive experiments: each arm's model from the channel's TS geometry."""

from __future__ import annotations

from pathlib import Path


def metad_stage(stage, folder: Path, model_path: str, progress: bool) -> dict:
    """Well-tempered metadynamics on the channel's coordination CVs; returns the run summary
    (outcome, final species, unphysical frames) with the FES written into ``folder``."""
    from ffpt.jobs.metad import MetadConfig, run_metad_job
    from ffpt.systems.h2combustion import stationary_point_path

    config = MetadConfig.model_validate({
        "calculator": model_path,
        "structure": str(stationary_point_path(stage.geometries, "TS", stage.channel)),
        "channel": stage.channel,
        "reactions": str(stage.reactions),
        **stage.options,
    })
    return run_metad_job(config, folder, progress=progress)

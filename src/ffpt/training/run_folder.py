"""A training folder holds one run: every checkpoint records the resolved config and the SHA-256 of
the files the run reads, and ``ffpt train`` resumes only from a checkpoint of the same run.
"""

from __future__ import annotations

from pathlib import Path

from ffpt.errors import short_reason
from ffpt.config import ConfigError, save_config
from ffpt.fileio import atomic_write_json, file_sha256
from ffpt.training.config import TrainConfig

# Keys that may differ between a checkpoint and the run that resumes it. Only these leave what is
# trained, and in which order, unchanged:
# - training.max_epochs, training.max_time_minutes: where the run stops (extend a finished run);
# - training.progress_bar: output only;
# - training.accelerator: where the same arithmetic runs (resume a GPU run on the CPU);
# - out: compared as the resolved folder instead ("folder"), so runs/x and ./runs/x are one folder;
#   a moved folder is refused, since Lightning drops its best-checkpoint record when the folder moves.
# Not training.devices, training.num_nodes or training.strategy: under DDP they change the effective
# batch, each device's share of the shuffled frames or how gradients are reduced. Data and init-model paths are compared by content
# (FILE_KEYS) instead of by name, so a moved data file with the same frames still resumes.
RESUMABLE_KEYS = frozenset(
    {"training.max_epochs", "training.max_time_minutes", "training.progress_bar", "training.accelerator", "out"}
)

REMEDY = "delete it or use a new --out"


def input_files(config: TrainConfig) -> dict[str, Path]:
    """The files the run reads, by config key."""
    files = {"data.train": config.data.train}
    if config.data.valid is not None:
        files["data.valid"] = config.data.valid
    if config.training.stage == "finetune" and config.finetune.init is not None:
        files["finetune.init"] = config.finetune.init
    if config.training.stage == "finetune" and config.finetune.replay is not None:
        files["finetune.replay.frames"] = config.finetune.replay.frames
    return files


def run_record(config: TrainConfig) -> dict:
    """What identifies a run: the resolved config, its folder and the SHA-256 of each input file."""
    return {
        "config": config.model_dump(mode="json"),
        "folder": str(Path(config.out).resolve()),
        "sha256": {key: file_sha256(path) for key, path in input_files(config).items()},
    }


def _flatten(values: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def differences(old: dict, new: dict) -> list[str]:
    """What differs between two run records, beyond :data:`RESUMABLE_KEYS`; one phrase per key."""
    found = []
    if old.get("folder") != new["folder"]:
        found.append(f"checkpoint written in {old.get('folder')}, a moved folder")
    same_content = {key for key, digest in new["sha256"].items() if old["sha256"].get(key) == digest}
    for key in sorted(set(old["sha256"]) | set(new["sha256"])):
        if key not in same_content:
            found.append(f"content of {key} (sha256) differs")
    a, b = _flatten(old["config"]), _flatten(new["config"])
    for key in sorted(set(a) | set(b)):
        if key in RESUMABLE_KEYS or key in same_content or a.get(key) == b.get(key):
            continue
        found.append(f"{key}: {a.get(key, '<unset>')!r} -> {b.get(key, '<unset>')!r}")
    return found


def read_checkpoint(path: Path) -> dict:
    """A Lightning checkpoint; a truncated or corrupted file is a :class:`ConfigError` naming it."""
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch/pickle raise many types for damaged files
        reason = short_reason(exc)
        raise ConfigError(f"{path}: unreadable checkpoint ({reason}); {REMEDY}") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "epoch" not in checkpoint:
        raise ConfigError(f"{path}: not a Lightning checkpoint; {REMEDY}")
    return checkpoint


def start_run(config: TrainConfig, record: dict, write: bool = True) -> Path | None:
    """Check the folder ``config.out`` and record this run in it; returns the checkpoint to resume, if any.

    A checkpoint of a different run (config beyond :data:`RESUMABLE_KEYS`, or input file content)
    is refused with a :class:`ConfigError` that names the folder and what differs. Under DDP every
    rank checks (and so refuses alike) but only global rank zero passes ``write`` and records the run.
    """
    out = Path(config.out)
    last = out / "checkpoints" / "last.ckpt"
    resume = None
    if last.exists():
        checkpoint = read_checkpoint(last)
        if not checkpoint.get("ffpt_run"):
            raise ConfigError(f"{last}: checkpoint has no ffpt run record (made by an older ffpt); {REMEDY}")
        found = differences(checkpoint["ffpt_run"], record)
        if found:
            raise ConfigError(
                f"{out}: holds a checkpoint of a different run ({'; '.join(found)}); "
                f"rerun with its config to resume, or use a new --out"
            )
        resume = last
    if not write:
        return resume
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "config.yaml")
    atomic_write_json(out / "inputs_sha256.json", {k: {"path": str(p), "sha256": record["sha256"][k]}
                                                    for k, p in input_files(config).items()})
    return resume

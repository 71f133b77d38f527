"""Self-describing model files: one ``torch.save`` dict that ``load_model`` rebuilds with one call.

Contents: format tag and version, architecture name and hyper-parameters (elements, cutoff, ...),
state dict (weights, per-element references, energy scale), and provenance (stage, data hash,
teacher, parent model).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ffpt import __version__
from ffpt.config import ConfigError
from ffpt.errors import UserError, short_reason
from ffpt.fileio import atomic_torch_save
from ffpt.models.potential import InteratomicPotential

FORMAT = "ffpt-model"
FORMAT_VERSION = 1


class ModelFileError(UserError):
    """A model file that is missing, truncated, corrupted or not an ffpt model; names the file."""


def _architectures() -> dict:
    from ffpt.models import ARCHITECTURES

    return ARCHITECTURES


def build_model(architecture: str, **hparams) -> InteratomicPotential:
    """Instantiate an architecture by name."""
    archs = _architectures()
    if architecture not in archs:
        raise ConfigError(f"key 'model.architecture': unknown architecture '{architecture}'; "
                          f"known: {', '.join(sorted(archs))}")
    return archs[architecture](**hparams)


def save_model(model: InteratomicPotential, path: str | os.PathLike, provenance: dict | None = None) -> Path:
    """Write a model file atomically; returns its path."""
    path = Path(path)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "ffpt_version": __version__,
        "architecture": model.architecture,
        "hparams": model.hparams(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "provenance": provenance or {},
    }
    return atomic_torch_save(payload, path)


def read_model_file(path: str | os.PathLike) -> dict:
    """The raw content of a model file, checked for format; any problem is a :class:`ModelFileError`."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    if path.suffix == ".pt2":
        raise ModelFileError(f"{path}: an exported package (compiled, for MD and eval only); this needs the "
                             "model file (.pt) or committee file it was exported from")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        reason = short_reason(exc)
        raise ModelFileError(f"{path}: cannot read model file, truncated or corrupted? ({reason})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not an ffpt model file (missing format tag '{FORMAT}')")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise ModelFileError(f"{path}: model file version {payload['format_version']} is newer than this ffpt")
    missing = [key for key in ("architecture", "hparams", "state_dict") if key not in payload]
    if missing:
        raise ModelFileError(f"{path}: model file lacks {', '.join(missing)}")
    return payload


def load_model(path: str | os.PathLike, device: str = "cpu") -> InteratomicPotential:
    """Rebuild the model of a file, weights and references included, in its saved dtype."""
    payload = read_model_file(path)
    try:
        # in the saved dtype before the weights arrive: float64 weights copied into float32 ones would round
        dtype = getattr(torch, payload.get("dtype", "float32"))
        architecture = _architectures().get(payload["architecture"])
        hparams = architecture.saved_hparams(payload["hparams"]) if architecture else payload["hparams"]
        model = build_model(payload["architecture"], **hparams).to(dtype)
        model.load_state_dict(payload["state_dict"])
    except (UserError, TypeError, RuntimeError) as exc:  # unknown architecture, hparams or weights
        reason = short_reason(exc)
        raise ModelFileError(f"{path}: cannot rebuild the model ({reason})") from None
    model.to(device=device)
    model.provenance = payload["provenance"]
    return model.eval()

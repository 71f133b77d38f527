"""Turn a calculator spec (teacher name or model file) into an ASE calculator.

Specs: ``"mmff94"``, ``"gfn2:accuracy=0.5,charge=0"`` (teacher name with options; values are
parsed as YAML scalars), or a path to an ffpt model file.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from ase.calculators.calculator import Calculator

from ffpt.config import ConfigError


def _parse_options(spec: str, text: str) -> dict:
    options = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"calculator '{spec}': option '{item}' must look like key=value")
        options[key.strip()] = yaml.safe_load(value.strip()) if value.strip() else None
    return options


def resolve(spec: str, device: str = "cpu") -> Calculator:
    """A teacher (``ffpt.teachers.get``) if ``spec`` names one, else ``ffpt.load_calculator(spec)``."""
    from ffpt import teachers

    name, _, option_text = spec.partition(":")
    if name.lower() in teachers.REGISTRY:
        return teachers.get(name, **_parse_options(spec, option_text))
    path = Path(spec)
    if path.is_file():
        from ffpt import load_calculator

        return load_calculator(path, device=device)
    raise ConfigError(
        f"calculator '{spec}' is neither a registered teacher ({', '.join(teachers.available())}) "
        "nor an existing model file"
    )

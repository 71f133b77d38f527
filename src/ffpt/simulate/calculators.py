"""Turn a calculator spec (teacher name or model file) and teacher options into an ASE calculator.

Specs: ``"mmff94"`` with options ``{"accuracy": 0.5}`` (``--teacher-option accuracy=0.5``, config
key ``teacher_options``), or a path to an ffpt model file or an exported ``.pt2`` package. The older ``"gfn2:accuracy=0.5,charge=0"``
(options in the spec, values read as YAML) still works for one release: :func:`split_legacy_spec`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ase.calculators.calculator import Calculator

from ffpt.config import ConfigError, parse_option_items


def split_legacy_spec(spec: str) -> tuple[str, dict[str, Any]] | None:
    """``"gfn2:accuracy=0.5,charge=0"`` -> ``("gfn2", {"accuracy": 0.5, "charge": 0})`` when the part
    before ``:`` names a registered teacher; ``None`` for any other spec (a plain name, a file)."""
    from ffpt import teachers

    name, sep, option_text = spec.partition(":")
    if not sep or name.lower() not in teachers.REGISTRY:
        return None
    items = [part.strip() for part in option_text.split(",") if part.strip()]
    for item in items:
        if "=" not in item:
            raise ConfigError(f"calculator '{spec}': option '{item}' must look like key=value")
    return name, parse_option_items(items, what=f"calculator '{spec}': option")


def resolve(spec: str | Sequence[str], device: str = "cpu", options: dict[str, Any] | None = None,
            compile: bool = False) -> Calculator:
    """A teacher (``ffpt.teachers.get(spec, **options)``) if ``spec`` names one, else the model file
    ``spec`` (:func:`ffpt.load_calculator`: an ffpt model file, an exported ``.pt2`` package or a
    committee file), which takes no options; a list of model files is a committee. ``compile``: run
    a model file through ``torch.compile`` (a ``.pt2`` is compiled already; a teacher cannot be)."""
    from ffpt import teachers

    options = dict(options or {})
    if not isinstance(spec, str):
        return _committee([str(s) for s in spec], device, options, compile)
    legacy = split_legacy_spec(spec)
    if legacy is not None:
        spec, options = legacy[0], {**legacy[1], **options}
    if spec.lower() in teachers.REGISTRY:
        if compile:
            raise ConfigError(f"calculator '{spec}' is a teacher; --compile applies to model files only")
        return teachers.get(spec, **options)
    path = Path(spec)
    if path.is_file():
        from ffpt import load_calculator

        if options:
            raise ConfigError(f"calculator '{spec}' is a model file; it takes no teacher options ({options})")
        return load_calculator(path, device=device, compile=compile)
    raise ConfigError(
        f"calculator '{spec}' is neither a registered teacher ({', '.join(teachers.available())}) "
        "nor an existing model file (.pt, or .pt2 from ffpt export)"
    )


def _committee(specs: list[str], device: str, options: dict[str, Any], compile: bool) -> Calculator:
    """The committee of model files ``specs`` (teachers cannot be members)."""
    from ffpt import load_calculator, teachers

    if options:
        raise ConfigError(f"calculator {specs}: a committee of model files takes no teacher options ({options})")
    for spec in specs:
        if spec.lower() in teachers.REGISTRY or not Path(spec).is_file():
            raise ConfigError(f"calculator {specs}: committee member '{spec}' is not an existing model file "
                              "(.pt or .pt2); teachers cannot be committee members")
    return load_calculator(specs, device=device, compile=compile)

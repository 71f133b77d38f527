"""Teachers label frames: classical force fields per isolated molecule, and ab initio methods.

``get(name, **options)`` returns a :class:`~ffpt.teachers.base.Teacher` (also an ASE calculator).
"""

from __future__ import annotations

import importlib

from ffpt.teachers.base import Label, LabelFailure, Teacher, TeacherInfo

# name -> "module:factory"; modules are imported on first use so heavy backends load lazily
REGISTRY: dict[str, str] = {
    "mmff94": "ffpt.teachers.forcefield:mmff94",
    "uff": "ffpt.teachers.forcefield:uff",
    "spcfw": "ffpt.teachers.water:spcfw",
    "tip3p": "ffpt.teachers.water_box:tip3p",
    "pyscf": "ffpt.teachers.pyscf_dft:PySCFTeacher",
    "gfn2": "ffpt.teachers.xtb:GFN2Teacher",
}


def register(name: str, target: str) -> None:
    REGISTRY[name] = target


def get(name: str, **options) -> Teacher:
    """Build the teacher called ``name`` with backend ``options``; an unknown name or an option the
    teacher does not take is a :class:`ffpt.config.ConfigError`."""
    import inspect

    from ffpt.config import ConfigError

    key = name.lower()
    if key not in REGISTRY:
        raise ConfigError(f"unknown teacher '{name}'; known: {', '.join(sorted(REGISTRY))}")
    module_name, factory_name = REGISTRY[key].split(":")
    factory = getattr(importlib.import_module(module_name), factory_name)
    try:
        inspect.signature(factory).bind(**options)
    except TypeError as exc:
        raise ConfigError(f"teacher '{name}': bad --teacher-option ({exc}); given: {options}") from None
    return factory(**options)


def available() -> list[str]:
    return sorted(REGISTRY)


__all__ = ["Label", "LabelFailure", "REGISTRY", "Teacher", "TeacherInfo", "available", "get", "register"]

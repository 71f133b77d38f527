"""Teachers label frames: classical force fields per isolated molecule, and ab initio methods.

``get(name, **options)`` returns a :class:`~ffpt.teachers.base.Teacher` (also an ASE calculator).
"""

from __future__ import annotations

import importlib

from ffpt.config import ConfigError
from ffpt.errors import UserError
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


class TeacherOptionError(ConfigError, TypeError):
    """An option a teacher does not take, or a value it refuses (also a ``TypeError``, as before)."""


def get(name: str, **options) -> Teacher:
    """Build the teacher called ``name`` with backend ``options``; an unknown name or an option the
    teacher does not take is a :class:`ffpt.config.ConfigError`."""
    key = name.lower()
    if key not in REGISTRY:
        raise ConfigError(f"unknown teacher '{name}'; known: {', '.join(sorted(REGISTRY))}")
    module_name, factory = REGISTRY[key].split(":")
    try:
        return getattr(importlib.import_module(module_name), factory)(**options)
    except UserError:
        raise
    except (TypeError, ValueError) as exc:  # construction only reads the options: an unknown one or a bad value
        raise TeacherOptionError(f"teacher '{name}': bad --teacher-option ({exc}); given: {options}") from exc


def available() -> list[str]:
    return sorted(REGISTRY)


__all__ = ["Label", "LabelFailure", "REGISTRY", "Teacher", "TeacherInfo", "TeacherOptionError", "available", "get", "register"]
